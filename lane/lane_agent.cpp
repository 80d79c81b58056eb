// The lane agent's state machine; see lane_agent.hpp. The agent thread owns the voice stream,
// the session and its recording; the io thread, the audio threads and trigger() only set flags
// and wake it, so every transition happens on one thread.
#include "olympus/lane/lane_agent.hpp"

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "olympus/error.hpp"
#include "olympus/io_thread.hpp"
#include "olympus/lane/lane_token_provider.hpp"
#include "olympus/log.hpp"
#include "olympus/voice_session.hpp"
#include "olympus/voice_stream.hpp"

namespace olympus::lane {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr auto kLoopPeriod = milliseconds(50);
constexpr auto kNetworkTick = milliseconds(100);  // well inside any watchdog period

// The protocol's lane is a number: the first one in the configured lane id ("lane-3" is 3).
int lane_number(const std::string& lane) {
    int number = 0;
    bool digits = false;
    for (char c : lane) {
        if (std::isdigit(static_cast<unsigned char>(c))) {
            number = number * 10 + (c - '0');
            digits = true;
        } else if (digits) {
            break;
        }
    }
    return digits ? number : 1;
}

// A file name for a session's recording: UTC time and a counter, e.g. 20261204T042847Z-lane-1-3.
std::string recording_name(const std::string& lane, std::uint64_t serial) {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    std::string safe;
    for (char c : lane) {
        safe += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
    }
    return std::string(stamp) + "-" + safe + "-" + std::to_string(serial);
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

}  // namespace

const char* to_string(LaneState state) {
    switch (state) {
        case LaneState::warming:
            return "warming";
        case LaneState::waiting:
            return "waiting";
        case LaneState::in_session:
            return "in_session";
        case LaneState::ending:
            return "ending";
        case LaneState::device_lost:
            return "device_lost";
        case LaneState::stopped:
            return "stopped";
    }
    return "unknown";
}

const char* to_string(TriggerResult result) {
    switch (result) {
        case TriggerResult::accepted:
            return "accepted";
        case TriggerResult::busy:
            return "busy";
        case TriggerResult::not_ready:
            return "not_ready";
        case TriggerResult::no_device:
            return "no_device";
        case TriggerResult::stopping:
            return "stopping";
    }
    return "unknown";
}

/*
 * The lane's state machine; each arrow is one function of Impl.
 *
 *   warming ──devices run, voice stream ready──► waiting ◄─────────────────────────────────┐
 *      ▲                                           │ a car: voice, stdin, POST /trigger       │
 *      │ voice stream restarts                     ▼                                        │
 *      │ (rejected token)                     in_session ──session_ended, failure────────────┤
 *      │                                           │ silence_s, session_max_s, device lost   │
 *      │                                           ▼                                        │
 *      │                                        ending ──session_ended or end_timeout────────┘
 *      │
 *      └── device_lost ──devices back──► waiting (warming while the stream is not ready)
 *   stop(): any state ──end the session (cancelled), finish its recording──► stopped
 *
 * The voice stream is supervised beside the states: it reconnects by itself; when it stops
 * for good (no usable token, token rejected) it is rebuilt after the reconnect backoff.
 */
class LaneAgent::Impl {
public:
    Impl(LaneAgentOptions options, MetricsRegistry& registry)
        : options_(std::move(options)),
          config_(options_.config),
          logger_(log::get("lane")),
          metrics_(registry, {{"lane", config_.lane}}),
          tokens_(std::make_shared<LaneTokenProvider>(config_.token, metrics_.token_errors)),
          io_(std::make_shared<IoThread>()) {
        // The voice client's options are checked now: a bad URL fails the start, not a car.
        connection_options().validate();
        session_options().validate();
        LaneAudioOptions audio;
        audio.rate = options_.rate;
        audio.processing = config_.audio_processing;
        audio.voice_to_arrive = config_.triggers.voice;
        audio.retry_max = config_.timeouts.device_retry_max;
        audio.retry_initial = std::min(milliseconds(250), audio.retry_max);
        audio.stall_after = config_.timeouts.device_stall;
        audio.close_within = options_.close_within;
        auto devices = options_.devices ? std::move(options_.devices)
                                        : std::make_unique<PortAudioPost>(config_.devices.input,
                                                                          config_.devices.output);
        audio_ = std::make_unique<LaneAudio>(audio, std::move(devices), metrics_, audio_events());
    }

    ~Impl() { stop(); }

    // ---- owner's thread ----

    void start() {
        logger_->info("lane agent starting lane={} location={} server={} rate={} recording={}",
                      config_.lane, config_.location, log::redact_url(config_.server.url),
                      options_.rate,
                      config_.recording.enabled ? config_.recording.directory : "off");
        start_network_ticks();
        audio_->start();
        thread_ = std::thread([this] { run(); });
    }

    void stop() {
        // The agent thread ends the session and finishes the recording itself, bounded.
        {
            std::lock_guard lock(mutex_);
            if (stopping_ && !thread_.joinable()) {
                return;
            }
            stopping_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) {
            thread_.join();
        }
        audio_->stop();
        stream_.reset();
        ticking_->store(false);
        set_state(LaneState::stopped, "stopped");
    }

    // ---- any thread ----

    TriggerResult trigger(const std::string& source) {
        // Decided against the state now; the agent thread acts on an accepted one at once.
        TriggerResult result = TriggerResult::accepted;
        {
            std::lock_guard lock(mutex_);
            const LaneState state = state_.load();
            if (stopping_) {
                result = TriggerResult::stopping;
            } else if (state == LaneState::waiting) {
                pending_ = pending_.empty() ? source : pending_;
            } else if (state == LaneState::warming) {
                result = TriggerResult::not_ready;
            } else if (state == LaneState::device_lost) {
                result = TriggerResult::no_device;
            } else {
                result = TriggerResult::busy;
            }
        }
        if (result == TriggerResult::accepted) {
            wake_.notify_all();
        } else {
            metrics_.triggers_ignored.inc();
            logger_->info("car arrival ignored source={} result={} state={}", source,
                          to_string(result), to_string(state_.load()));
        }
        return result;
    }

    bool wait_for(LaneState state, milliseconds timeout) const {
        std::unique_lock lock(state_mutex_);
        return state_cv_.wait_for(lock, timeout, [&] { return state_.load() == state; });
    }

    std::string last_recording() const {
        std::lock_guard lock(mutex_);
        return last_recording_;
    }

    LaneState state() const { return state_.load(std::memory_order_acquire); }
    LaneMetrics& metrics() { return metrics_; }
    std::uint64_t audio_progress() const { return audio_->progress(); }
    std::uint64_t network_progress() const { return network_ticks_->load(); }

private:
    // ---- agent thread: the loop ----

    void run() {
        set_state(LaneState::warming, "starting");
        next_health_ = Clock::now() + config_.health.interval;
        while (!wait_a_moment()) {
            supervise_stream();
            step();
            log_health();
        }
        shut_down();
    }

    // Waits for a wake-up or the loop period; true when the agent is to stop.
    bool wait_a_moment() {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, kLoopPeriod, [this] { return stopping_ || !pending_.empty(); });
        return stopping_;
    }

    void step() {
        // A car announced while the state moved on is dropped, and said so.
        std::string source = take_pending();
        if (!source.empty() && state_.load() != LaneState::waiting) {
            logger_->warn("car arrival dropped source={} state={}", source,
                          to_string(state_.load()));
            source.clear();
        }
        switch (state_.load()) {
            case LaneState::warming:
                if (ready()) {
                    set_state(LaneState::waiting, "devices and voice stream ready");
                } else if (audio_->device_state() == DeviceState::lost) {
                    set_state(LaneState::device_lost, "no audio device");
                }
                break;
            case LaneState::waiting:
                on_waiting(source);
                break;
            case LaneState::in_session:
                watch_session();
                break;
            case LaneState::ending:
                if (session_ && session_->state() == VoiceState::ended) {
                    finish_session();
                }
                break;
            case LaneState::device_lost:
                if (audio_->device_state() == DeviceState::running) {
                    set_state(ready() ? LaneState::waiting : LaneState::warming, "devices back");
                }
                break;
            case LaneState::stopped:
                break;
        }
    }

    void on_waiting(const std::string& source) {
        // The devices come first: without them there is nobody to talk to.
        if (audio_->device_state() != DeviceState::running) {
            if (!source.empty()) {
                logger_->warn("car arrival dropped source={}: the audio device is lost", source);
            }
            set_state(LaneState::device_lost, "audio device lost");
            return;
        }
        if (!stream_) {
            set_state(LaneState::warming, "voice stream restarting");
            return;
        }
        if (!source.empty()) {
            begin_session(source);
        }
    }

    // ---- agent thread: transitions ----

    void set_state(LaneState to, const std::string& why) {
        const LaneState from = state_.exchange(to, std::memory_order_acq_rel);
        if (from == to) {
            return;
        }
        { std::lock_guard lock(state_mutex_); }
        state_cv_.notify_all();
        metrics_.set_state(to_string(to));
        audio_->arm_arrival(to == LaneState::waiting && config_.audio_processing.vad);
        logger_->info("lane state from={} to={} why=\"{}\"", to_string(from), to_string(to), why);
        if (options_.on_state) {
            options_.on_state(to, why);
        }
    }

    void begin_session(const std::string& source) {
        // The recording first, so that it holds the session's first message.
        ++session_serial_;
        start_recording(source);
        auto options = session_options();
        if (recorder_) {
            options.on_control_message = [recorder = recorder_.get()](bool sent,
                                                                      const nlohmann::json& m) {
                recorder->push_message(sent, m);
            };
        }

        // Then the session, on the warm stream (or its own link in per-session mode).
        session_ = std::make_unique<VoiceSession>(
            options, *stream_, audio_->session_source(options_.frame_ms), audio_->session_sink(),
            [this](const VoiceEvent& e) { on_voice_event(e); });
        session_started_at_ = Clock::now();
        ttfa_measured_ = false;
        session_->start();
        metrics_.sessions_started.inc();
        metrics_.session_active.set(1);
        logger_->info("session starting source={} serial={} warm={}", source, session_serial_,
                      session_->rides_stream());
        set_state(LaneState::in_session, "car arrived via " + source);
    }

    void watch_session() {
        // The session ended by itself (session_ended, or it failed).
        const auto now = Clock::now();
        if (session_->state() == VoiceState::ended) {
            finish_session();
            return;
        }
        measure_first_audio();

        // The lane ends it: devices lost, the customer silent, or the session too long.
        const auto quiet_since = std::max(
            {audio_->last_customer_speech(), audio_->last_agent_audio(), session_started_at_});
        if (audio_->device_state() != DeviceState::running) {
            end_session("error", "audio device lost");
        } else if (now - quiet_since >= config_.timeouts.silence) {
            end_session("timeout", "no customer speech for " +
                                       std::to_string(config_.timeouts.silence.count()) + " s");
        } else if (now - session_started_at_ >= config_.timeouts.session_max) {
            end_session("timeout", "session limit of " +
                                       std::to_string(config_.timeouts.session_max.count()) +
                                       " s reached");
        }
    }

    void end_session(const std::string& reason, const std::string& why) {
        session_->end(reason);
        set_state(LaneState::ending, why);
    }

    void finish_session() {
        // The session goes first (it leaves the stream and stops using the recorder).
        measure_first_audio();
        const VoiceStats stats = session_->stats();
        const bool rode = session_->rides_stream();
        session_.reset();
        finish_recording();

        // The figures of the session, and the lane's next state.
        metrics_.sessions_ended.inc();
        metrics_.session_active.set(0);
        if (!rode) {
            metrics_.connected.set(stats.error ? 0 : 1);
            metrics_.reconnects.inc(stats.link_drops);
        }
        logger_->info(
            "session finished session_id={} duration_s={:.1f} frames_sent={} "
            "replies={} barge_ins={} resumes={} error=\"{}\"",
            stats.session_id, seconds_between(session_started_at_, Clock::now()), stats.frames_sent,
            stats.replies, stats.barge_ins, stats.resumes,
            stats.error ? stats.error.message() : "");
        if (audio_->device_state() != DeviceState::running) {
            set_state(LaneState::device_lost, "session over; audio device lost");
        } else {
            set_state(ready() ? LaneState::waiting : LaneState::warming, "session over");
        }
    }

    void shut_down() {
        // A session on at SIGTERM is ended the protocol's way and its recording finished.
        if (session_) {
            if (session_->state() != VoiceState::ended) {
                session_->end("cancelled");
                session_->wait_for(VoiceState::ended, options_.end_timeout + milliseconds(500));
            }
            finish_session();
        }
        if (stream_) {
            stream_->close();
        }
        logger_->info("lane agent stopped sessions={}", metrics_.sessions_started.value());
    }

    // ---- agent thread: recording ----

    void start_recording(const std::string& source) {
        if (!config_.recording.enabled) {
            return;
        }
        nlohmann::json header = {
            {"lane", config_.lane}, {"location", config_.location}, {"trigger", source}};
        auto recorder = SessionRecorder::create(config_.recording.directory,
                                                recording_name(config_.lane, session_serial_),
                                                options_.rate, header, metrics_.recording_errors);
        if (!recorder) {
            metrics_.recording_errors.inc();
            logger_->error("recording not started error=\"{}\": the session goes on unrecorded",
                           recorder.error().what());
            return;
        }
        recorder_ = std::move(recorder).value();
        audio_->set_recorder(recorder_.get());
    }

    void finish_recording() {
        if (!recorder_) {
            return;
        }
        audio_->set_recorder(nullptr);
        recorder_->finish();
        std::lock_guard lock(mutex_);
        last_recording_ = recorder_->wav_path();
        recorder_.reset();
    }

    // ---- agent thread: the voice stream ----

    void supervise_stream() {
        // Built at start, and again after it stopped for good, once the backoff has passed.
        const auto now = Clock::now();
        if (!stream_) {
            if (now >= stream_retry_at_) {
                create_stream();
            }
            return;
        }
        const std::error_code stopped = stream_->connection().terminal_reason();
        if (!stopped || stopped == errc::closed_by_application ||
            stream_->mode() == StreamMode::per_session || session_) {
            return;
        }

        // A rejected or missing token: say so, wait, and try again with whatever is there then.
        auto delay =
            std::min(config_.timeouts.reconnect_initial * (1 << std::min(failures_.load(), 10)),
                     config_.timeouts.reconnect_max);
        ++failures_;
        logger_->error(
            "voice stream stopped reason=\"{}\" token_problem=\"{}\"; restarting in "
            "{} ms",
            stopped.message(), tokens_->problem(), delay.count());
        metrics_.connected.set(0);
        stream_.reset();
        stream_retry_at_ = now + delay;
        if (state_.load() == LaneState::waiting) {
            set_state(LaneState::warming, "voice stream stopped");
        }
    }

    void create_stream() {
        stream_ = std::make_unique<VoiceStream>(connection_options());
        stream_->add_state_observer([this](const StateChange& change) {
            metrics_.connected.set(change.to == ConnectionState::connected ? 1 : 0);
            if (change.to == ConnectionState::reconnecting) {
                metrics_.reconnects.inc();
            }
            if (change.to == ConnectionState::connected) {
                failures_ = 0;  // benign race: read by the agent thread for the next backoff
            }
            wake_.notify_all();
        });
        stream_->add_mode_observer([this](StreamMode mode, const std::string&) {
            metrics_.stream_warm.set(mode == StreamMode::warm ? 1 : 0);
            wake_.notify_all();
        });
        stream_->start();
    }

    bool ready() const {
        return audio_->device_state() == DeviceState::running && stream_ &&
               (stream_->mode() == StreamMode::per_session || stream_->idle());
    }

    // ---- helpers ----

    ConnectionOptions connection_options() const {
        ConnectionOptions c;
        c.url = config_.server.url;
        c.token_provider = tokens_;
        c.tls.ca_file = config_.server.ca_file;
        c.heartbeat = options_.heartbeat;
        c.reconnect.base = config_.timeouts.reconnect_initial;
        c.reconnect.cap = config_.timeouts.reconnect_max;
        c.io_thread = io_;
        c.logger = "voice";
        return c;
    }

    VoiceSessionOptions session_options() const {
        VoiceSessionOptions s;
        s.connection = connection_options();
        s.location_id = config_.location;
        s.channel = "drive_thru";
        s.lane = lane_number(config_.lane);
        s.audio.sample_rate = options_.rate;
        s.audio.frame_ms = options_.frame_ms;
        s.start_timeout = options_.start_timeout;
        s.end_timeout = options_.end_timeout;
        return s;
    }

    LaneAudio::Events audio_events() {
        LaneAudio::Events events;
        events.voice_arrival = [this] { (void)trigger("voice"); };
        events.device_changed = [this](DeviceState, const std::string&) { wake_.notify_all(); };
        return events;
    }

    void on_voice_event(const VoiceEvent& e) {
        // io thread: the lines an operator wants; the agent thread reacts to the state.
        using K = VoiceEvent::Kind;
        if (e.kind == K::session_started) {
            logger_->info("session started session_id={} resumed={}", e.session_id, e.resumed);
        } else if (e.kind == K::interrupt || e.kind == K::barge_in) {
            logger_->info("customer talked over the agent event={} response={} played_ms={}",
                          to_string(e.kind), e.id, e.played_ms);
        } else if (e.kind == K::session_ended) {
            logger_->info("session ended by the server session_id={} reason={}", e.session_id,
                          e.reason);
        } else if (e.kind == K::error) {
            logger_->warn("session error error=\"{}\" detail=\"{}\"", e.error.message(), e.text);
        }
        wake_.notify_all();
    }

    void measure_first_audio() {
        if (ttfa_measured_) {
            return;
        }
        const auto first = audio_->first_agent_audio_after(session_started_at_);
        if (first != Clock::time_point{}) {
            metrics_.time_to_first_audio.set(seconds_between(session_started_at_, first));
            ttfa_measured_ = true;
        }
    }

    std::string take_pending() {
        std::lock_guard lock(mutex_);
        std::string source;
        source.swap(pending_);
        return source;
    }

    void log_health() {
        const auto now = Clock::now();
        if (now < next_health_) {
            return;
        }
        next_health_ = now + config_.health.interval;
        logger_->info("{}", metrics_.health_line());
    }

    void start_network_ticks() {
        // A timer on the io thread proves it runs; the watchdog reads the count.
        auto timer = std::make_shared<asio::steady_timer>(io_->context());
        auto ticks = network_ticks_;
        auto ticking = ticking_;
        auto tick = std::make_shared<std::function<void()>>();
        *tick = [timer, ticks, ticking, weak = std::weak_ptr<std::function<void()>>(tick)] {
            ticks->fetch_add(1);
            timer->expires_after(kNetworkTick);
            timer->async_wait([timer, ticking, weak](const asio::error_code& ec) {
                auto again = weak.lock();
                if (!ec && again && ticking->load()) {
                    (*again)();
                }
            });
        };
        tick_ = tick;
        asio::post(io_->context(), [tick] { (*tick)(); });
    }

    LaneAgentOptions options_;
    const LaneConfig& config_;
    const std::shared_ptr<spdlog::logger> logger_;
    LaneMetrics metrics_;
    std::shared_ptr<LaneTokenProvider> tokens_;

    // Any thread: the state (its mutex pairs with state_cv_ for wait_for()).
    std::atomic<LaneState> state_{LaneState::warming};
    mutable std::mutex state_mutex_;
    mutable std::condition_variable state_cv_;

    // Any thread: the trigger, the stop request and the last recording, under mutex_.
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::string pending_;
    bool stopping_ = false;
    std::string last_recording_;

    // The io thread of the voice stream, the sessions and the network tick; they go before it.
    std::shared_ptr<IoThread> io_;

    // io thread: the network tick (shared with its own handlers). Its timer belongs to io_'s
    // context, so it is declared after io_ and destroyed before it.
    std::shared_ptr<std::atomic<std::uint64_t>> network_ticks_ =
        std::make_shared<std::atomic<std::uint64_t>>(0);
    std::shared_ptr<std::atomic<bool>> ticking_ = std::make_shared<std::atomic<bool>>(true);
    std::shared_ptr<std::function<void()>> tick_;

    // Agent thread only.
    std::unique_ptr<VoiceStream> stream_;
    std::unique_ptr<VoiceSession> session_;
    std::unique_ptr<SessionRecorder> recorder_;
    std::uint64_t session_serial_ = 0;
    Clock::time_point session_started_at_{};
    bool ttfa_measured_ = false;
    Clock::time_point stream_retry_at_{};
    std::atomic<int> failures_{0};
    Clock::time_point next_health_{};
    std::thread thread_;

    // Declared last, destroyed first: its threads call into everything above.
    std::unique_ptr<LaneAudio> audio_;
};

// ---- LaneAgent ----

LaneAgent::LaneAgent(LaneAgentOptions options, MetricsRegistry& registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

LaneAgent::~LaneAgent() {
    impl_->stop();
}

void LaneAgent::start() {
    impl_->start();
}

void LaneAgent::stop() {
    impl_->stop();
}

TriggerResult LaneAgent::trigger(const std::string& source) {
    return impl_->trigger(source);
}

LaneState LaneAgent::state() const {
    return impl_->state();
}

bool LaneAgent::wait_for(LaneState state, milliseconds timeout) const {
    return impl_->wait_for(state, timeout);
}

LaneMetrics& LaneAgent::metrics() {
    return impl_->metrics();
}

std::uint64_t LaneAgent::audio_progress() const {
    return impl_->audio_progress();
}

std::uint64_t LaneAgent::network_progress() const {
    return impl_->network_progress();
}

std::string LaneAgent::last_recording() const {
    return impl_->last_recording();
}

}  // namespace olympus::lane
