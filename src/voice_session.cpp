// The voice session; see voice_session.hpp. The protocol runs on the connection's io thread;
// the source, playout and fetch threads hand work to it through an SPSC ring and posts.
#include "olympus/voice_session.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "olympus/audio/jitter_buffer.hpp"
#include "olympus/audio/opus_decoder.hpp"
#include "olympus/audio/opus_encoder.hpp"
#include "olympus/audio/resampler.hpp"
#include "olympus/audio/spsc_ring.hpp"
#include "olympus/error.hpp"
#include "olympus/log.hpp"

#include "audio_fetcher.hpp"
#include "voice_stream_impl.hpp"
#include "while_alive.hpp"

namespace olympus {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Json = nlohmann::json;

namespace {

constexpr std::size_t kMaxUplinkBytes = 60 * 48 * 2;   // 60 ms of 48 kHz 16-bit PCM
constexpr std::size_t kUplinkFrames = 128;             // 2.56 s of 20 ms frames
constexpr std::size_t kMaxQueuedFetches = 16;          // audio_url replies waiting to download
constexpr std::size_t kMaxLatencySamples = 200'000;    // about an hour of 20 ms frames
constexpr std::int64_t kLatestExpiry = 8'000'000'000;  // year 2223: the clock's nanoseconds hold it
/// A downlink this long without a message or frame, and nothing playing, ends the greeting.
constexpr std::chrono::milliseconds kGreetingQuiet{500};

bool valid_rate(int rate) {
    return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

bool valid_frame_ms(int ms) {
    return ms == 10 || ms == 20 || ms == 40 || ms == 60;
}

std::int64_t to_ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

float level_dbfs(const float* pcm, std::size_t n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
        sum += static_cast<double>(pcm[i]) * static_cast<double>(pcm[i]);
    }
    return static_cast<float>(
        20.0 * std::log10(std::max(std::sqrt(sum / std::max<std::size_t>(n, 1)), 1e-6)));
}

// A number field as a whole number, or nothing. A float is taken only when it fits: converting
// one out of range (a server's "duration_ms":1e300) is undefined behaviour.
std::optional<std::int64_t> whole_number(const Json& object, const char* key) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_number()) {
        return std::nullopt;
    }
    if (it->is_number_float()) {
        auto value = it->get<double>();
        if (!std::isfinite(value) || std::fabs(value) >= 9.2e18) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(value);
    }
    if (it->is_number_unsigned()) {
        auto value = it->get<std::uint64_t>();
        return value > static_cast<std::uint64_t>(INT64_MAX) ? std::nullopt
                                                             : std::optional<std::int64_t>(value);
    }
    return it->get<std::int64_t>();
}

// The `exp` claim of a JWT, without verifying it: only to schedule re-authentication.
std::optional<std::chrono::system_clock::time_point> jwt_expiry(const std::string& token) {
    auto first = token.find('.');
    auto second = token.find('.', first + 1);
    if (first == std::string::npos || second == std::string::npos) {
        return std::nullopt;
    }
    static const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string payload;
    unsigned buffer = 0;
    int bits = 0;
    for (char c : token.substr(first + 1, second - first - 1)) {
        auto pos = alphabet.find(c);
        if (pos == std::string::npos) {
            return std::nullopt;
        }
        buffer = (buffer << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            payload += static_cast<char>((buffer >> bits) & 0xff);
        }
    }
    auto claims = Json::parse(payload, nullptr, false);
    auto exp = claims.is_object() ? whole_number(claims, "exp") : std::nullopt;
    if (!exp || *exp < 0 || *exp > kLatestExpiry) {
        return std::nullopt;  // absent, or a time the clock cannot hold
    }
    return std::chrono::system_clock::time_point(std::chrono::seconds(*exp));
}

// Typed field readers for network input: a field of the wrong type reads as the fallback.
std::string str(const Json& message, const char* key, std::string fallback = {}) {
    auto it = message.find(key);
    return it != message.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::int64_t integer(const Json& message, const char* key) {
    return whole_number(message, key).value_or(0);
}

// One encoded uplink frame between the source thread and the io thread; no allocation.
struct UplinkFrame {
    std::int64_t captured_ns = 0;
    std::uint16_t size = 0;
    std::array<std::uint8_t, kMaxUplinkBytes> bytes{};
};

// A sink that only counts, for sessions that do not play replies.
class DiscardSink final : public VoiceSink {
public:
    int sample_rate() const override { return 48000; }
    std::error_code write(audio::Span<const float> pcm) override {
        written_.fetch_add(pcm.size(), std::memory_order_relaxed);
        return {};
    }
    void fade_out_and_flush(audio::Span<const float>) override {}
    std::uint64_t written_samples() const override { return written_.load(); }
    std::uint64_t played_samples() const override { return written_.load(); }

private:
    std::atomic<std::uint64_t> written_{0};
};

}  // namespace

// ---- formats, names, options ----

Json AudioFormat::to_json() const {
    return {{"encoding", encoding == Encoding::opus ? "opus" : "pcm_s16le"},
            {"sample_rate", sample_rate},
            {"channels", 1},
            {"frame_ms", frame_ms}};
}

std::optional<AudioFormat> AudioFormat::from_json(const Json& audio) {
    if (!audio.is_object()) {
        return std::nullopt;
    }
    AudioFormat format;
    auto encoding = str(audio, "encoding", "opus");
    if (encoding != "opus" && encoding != "pcm_s16le") {
        return std::nullopt;
    }
    format.encoding = encoding == "opus" ? Encoding::opus : Encoding::pcm_s16le;
    auto rate = audio.value("sample_rate", Json(48000));
    auto frame = audio.value("frame_ms", Json(20));
    if (!rate.is_number_integer() || !valid_rate(rate.get<int>()) || !frame.is_number_integer() ||
        !valid_frame_ms(frame.get<int>()) || audio.value("channels", Json(1)) != 1) {
        return std::nullopt;
    }
    format.sample_rate = rate.get<int>();
    format.frame_ms = frame.get<int>();
    return format;
}

bool AudioFormat::operator==(const AudioFormat& other) const {
    return encoding == other.encoding && sample_rate == other.sample_rate &&
           frame_ms == other.frame_ms;
}

const char* to_string(VoiceState state) {
    switch (state) {
        case VoiceState::idle:
            return "idle";
        case VoiceState::connecting:
            return "connecting";
        case VoiceState::starting:
            return "starting";
        case VoiceState::active:
            return "active";
        case VoiceState::resuming:
            return "resuming";
        case VoiceState::ending:
            return "ending";
        case VoiceState::ended:
            return "ended";
    }
    return "unknown";
}

const char* to_string(VoiceEvent::Kind kind) {
    using K = VoiceEvent::Kind;
    switch (kind) {
        case K::state_changed:
            return "state_changed";
        case K::session_started:
            return "session_started";
        case K::partial_transcript:
            return "partial_transcript";
        case K::final_transcript:
            return "final_transcript";
        case K::final_response:
            return "final_response";
        case K::response_audio_done:
            return "response_audio_done";
        case K::interrupt:
            return "interrupt";
        case K::barge_in:
            return "barge_in";
        case K::audio_url_played:
            return "audio_url_played";
        case K::session_ended:
            return "session_ended";
        case K::error:
            return "error";
    }
    return "unknown";
}

void VoiceSessionOptions::validate() const {
    connection.validate();
    if (!valid_rate(audio.sample_rate) || !valid_frame_ms(audio.frame_ms)) {
        throw std::invalid_argument(
            "audio.sample_rate must be 8000..48000 (an Opus rate) and "
            "audio.frame_ms 10, 20, 40 or 60");
    }
    if (start_timeout.count() <= 0 || end_timeout.count() <= 0 || audio_url_timeout.count() <= 0 ||
        outage_buffer.count() < 0 || audio_url_grace.count() < 0 || greeting_wait.count() < 0) {
        throw std::invalid_argument("voice session timeouts must be positive");
    }
    if (location_id.empty() || channel.empty()) {
        throw std::invalid_argument("location_id and channel are required");
    }
}

/*
 * The session's state machine. Each arrow is one function of Impl.
 *
 *   idle ─start()─► connecting ─link open: start_session─► starting ─session_started─► active
 *                                                             │ no answer / error     │   │
 *                                                             ▼                       │   │
 *   ended ◄── fail(): start timeout, error answer, rejected token, retries exhausted ──┘   │
 *     ▲                                                                                   │
 *     │          ┌── link lost: frames wait in the outage buffer ◄────────────────────────┤
 *     │          ▼                                                                        │
 *     │      resuming ─reconnected: start_session{resume_session_id}, session_started─► active
 *     └── ending ◄─end(): end_session───────────────────────────────────────────────────┘
 *          (session_ended, or end_timeout)
 *
 * Riding a warm VoiceStream (hosted_), "connecting" waits for the stream's authenticated link,
 * start_session goes out as an ordinary frame, a link drop while starting goes back to
 * connecting (the start timer bounds it), and "ended" detaches from the stream instead of
 * closing the link.
 *
 * Uplink: source thread ─read, encode─► uplink_ (SPSC) ─post drain─► io thread: outage_
 *         buffer while not active, else send (latency measured here).
 * Downlink: io thread ─check format─► jitter_ (Opus) or pcm_down_ (PCM) ─pull every frame─►
 *         playout thread ─resample─► sink. audio_url: io thread ─grace─► fetch thread ─PCM─►
 *         url_pcm_ ─► playout thread.
 */
class VoiceSession::Impl : public std::enable_shared_from_this<VoiceSession::Impl>,
                           public detail::StreamTenant {
public:
    Impl(VoiceSessionOptions options, std::shared_ptr<VoiceStream::Impl> stream,
         std::unique_ptr<VoiceSource> source, std::unique_ptr<VoiceSink> sink,
         EventHandler on_event)
        : options_(std::move(options)),
          logger_(log::get("voice")),
          source_(std::move(source)),
          sink_(sink ? std::move(sink) : std::make_unique<DiscardSink>()),
          on_event_(std::move(on_event)),
          uplink_(kUplinkFrames),
          pcm_down_(1 << 17),
          bad_log_(std::chrono::seconds(5)),
          stream_(std::move(stream)) {
        auto frame_ms = options_.audio.frame_ms;
        outage_capacity_ = static_cast<std::size_t>(options_.outage_buffer.count() / frame_ms);
    }

    // Setup: the connection's hooks hold a weak reference, so this runs after make_shared.
    void init() {
        // On a warm stream the session rides the stream's link; else it opens its own.
        if (stream_ && stream_->mode() != StreamMode::per_session) {
            hosted_ = true;
            link_ = &stream_->connection();
            return;
        }
        stream_.reset();
        auto connection_options = options_.connection;
        connection_options.auth_mode = AuthMode::first_message;
        // TODO: a resume that the server accepts but never answers waits start_timeout (10 s by
        // default) before the next attempt; the audio of that wait outlasts the 2 s outage
        // buffer and is lost (counted in outage_dropped). A shorter deadline for resumes would
        // keep such outages inside the buffer.
        connection_options.auth_timeout = options_.start_timeout;
        connection_options.logger = "voice";
        std::weak_ptr<Impl> weak = weak_from_this();
        Connection::Hooks hooks;
        hooks.opening_frame = detail::while_alive(weak, &Impl::opening_frame);
        hooks.on_link_down = detail::while_alive(weak, &Impl::on_link_down);
        hooks.on_message = detail::while_alive(weak, &Impl::on_message);
        hooks.on_binary = detail::while_alive(weak, &Impl::on_binary);
        connection_ = std::make_unique<Connection>(connection_options, std::move(hooks));
        link_ = connection_.get();
        link_->add_state_observer(detail::while_alive(weak, &Impl::on_connection_state));
    }

    // ---- any thread ----

    void start() {
        if (started_.exchange(true)) {
            return;
        }
        auto self = shared_from_this();
        link_->post([self] {
            self->set_state(VoiceState::connecting, {});
            if (self->hosted_) {
                self->attach_to_stream();
            }
        });
        source_thread_ = std::thread([this] { run_source(); });
        playout_thread_ = std::thread([this] { run_playout(); });
        fetch_thread_ = std::thread([this] { run_fetches(); });
        if (!hosted_) {
            link_->start();
        }
    }

    void barge_in() {
        link_->post([weak = weak_from_this()] {
            if (auto self = weak.lock())
                self->begin_barge_in(self->current_response_);
        });
    }

    void end(const std::string& reason) {
        if (source_) {
            source_->stop();
        }
        link_->post([weak = weak_from_this(), reason] {
            if (auto self = weak.lock())
                self->begin_end(reason);
        });
    }

    void close() {
        link_->post([weak = weak_from_this()] {
            if (auto self = weak.lock())
                self->finish(VoiceState::ended, {});
        });
    }

    // Owner's thread, from ~VoiceSession: every thread of ours stops before members go.
    void shutdown() {
        stopping_.store(true);
        if (source_) {
            source_->stop();
        }
        if (hosted_) {
            leave_stream();
        } else {
            link_->close();
        }
        wake_fetch_thread();
        state_cv_.notify_all();
        for (auto* thread : {&source_thread_, &playout_thread_, &fetch_thread_}) {
            if (thread->joinable()) {
                thread->join();
            }
        }
        if (auto ec = sink_->finish()) {
            logger_->error("finishing the sink failed: {}", ec.message());
        }
    }

    // After stopping_ or cancel_fetch_ changed: taking the mutex first means the fetch thread
    // is either about to check them or already waiting, so the wake-up cannot be lost.
    void wake_fetch_thread() {
        { std::lock_guard lock(fetch_mutex_); }
        fetch_cv_.notify_all();
    }

    bool wait_for(VoiceState wanted, milliseconds timeout) const {
        std::unique_lock lock(state_mutex_);
        state_cv_.wait_for(lock, timeout, [&] {
            auto s = state_.load();
            return s == wanted || s == VoiceState::ended;
        });
        return state_.load() == wanted;
    }

    bool wait_until(const std::function<bool()>& done, milliseconds timeout) const {
        auto deadline = Clock::now() + timeout;
        while (!done()) {
            if (Clock::now() >= deadline) {
                return false;
            }
            std::this_thread::sleep_for(milliseconds(5));
        }
        return true;
    }

    bool source_done() const {
        return (source_done_.load() || !source_) && uplink_.size() == 0 && outage_size_.load() == 0;
    }

    bool replies_done(milliseconds quiet) const {
        auto idle_for =
            Clock::now().time_since_epoch() - std::chrono::nanoseconds(last_activity_ns_.load());
        return pending_replies_.load() == 0 && !playing_.load() && idle_for >= quiet;
    }

    VoiceStats stats() const;

    // Fixed at construction.
    const VoiceSessionOptions options_;
    const std::shared_ptr<spdlog::logger> logger_;
    std::unique_ptr<VoiceSource> source_;  // source thread, except stop()
    std::unique_ptr<VoiceSink> sink_;      // playout thread, except the const getters
    const EventHandler on_event_;

    // State: written on the io thread, read anywhere.
    std::atomic<VoiceState> state_{VoiceState::idle};
    mutable std::mutex state_mutex_;  // guards the strings below and pairs with state_cv_
    mutable std::condition_variable state_cv_;
    std::string session_id_;
    std::error_code error_;
    std::atomic<bool> started_{false}, stopping_{false};

    // Counters, relaxed: statistics only.
    std::atomic<std::uint64_t> frames_captured_{0}, frames_sent_{0}, uplink_overflows_{0},
        outage_dropped_{0}, outage_peak_{0}, reply_frames_{0}, bad_frames_{0},
        unexpected_format_{0}, frames_played_{0}, concealed_{0}, discarded_{0}, barge_ins_{0},
        replies_{0}, urls_played_{0}, resumes_{0}, link_drops_{0}, reply_dropped_{0};
    std::atomic<float> input_dbfs_{-120}, output_dbfs_{-120};
    std::atomic<double> first_audio_ms_{-1};
    std::atomic<std::int64_t> last_activity_ns_{0};
    std::atomic<int> pending_replies_{0};
    std::atomic<bool> playing_{false};
    std::atomic<bool> source_done_{false};
    std::atomic<std::size_t> outage_size_{0};
    mutable std::mutex latency_mutex_;
    std::vector<std::uint32_t> latencies_us_;  // guarded by latency_mutex_

    // Source thread -> io thread.
    audio::SpscRing<UplinkFrame> uplink_;
    std::atomic<bool> drain_posted_{false};

    // io thread -> playout thread.
    std::atomic<audio::JitterBuffer*> jitter_{nullptr};  // release on publish
    std::unique_ptr<audio::JitterBuffer> jitter_owner_;  // io thread: created once
    audio::SpscRing<float> pcm_down_;
    std::atomic<int> down_rate_{0}, down_frame_ms_{0};
    std::atomic<bool> down_opus_{true};
    std::atomic<bool> barge_requested_{false};
    std::atomic<std::int64_t> transcript_ns_{0};  // last final_transcript, for time to audio
    std::mutex barge_mutex_;
    std::string barge_response_;  // guarded by barge_mutex_

    // Fetch thread <-> io thread <-> playout thread.
    std::mutex fetch_mutex_;
    std::condition_variable fetch_cv_;
    std::deque<std::pair<std::string, std::string>> fetch_queue_;  // (response id, url)
    std::deque<float> url_pcm_;                                    // guarded by fetch_mutex_
    std::atomic<bool> cancel_fetch_{false};

    // io thread only.
    std::deque<std::pair<std::int64_t, std::string>> outage_;  // (captured ns, bytes)
    std::size_t outage_capacity_ = 0;
    /// The last frames handed to the link (as many as the outage buffer holds), so that those
    /// a dropped link swallowed can be sent again after a resume.
    std::deque<std::pair<std::int64_t, std::string>> sent_history_;
    std::uint64_t sent_in_session_ = 0;  ///< frames handed to the link in this session
    std::optional<AudioFormat> down_format_;
    std::uint32_t down_sequence_ = 0;
    std::string current_response_;
    enum class Reply { awaiting, streaming, fetching, done };
    std::map<std::string, Reply> responses_;
    std::map<std::string, std::string> response_urls_;
    bool discard_reply_ = false;
    bool ever_active_ = false;
    Connection::TimerId end_timer_ = 0;
    log::RateLimit bad_log_;

    std::thread source_thread_, playout_thread_, fetch_thread_;

    // The link: the warm stream's (hosted_) or connection_. Fixed after init().
    std::shared_ptr<VoiceStream::Impl> stream_;
    bool hosted_ = false;
    Connection* link_ = nullptr;
    // io thread, hosted mode: the session left the stream; nothing reaches the application.
    bool silenced_ = false;
    Connection::TimerId start_timer_ = 0;

    // Declared last, destroyed first: its io thread stops while everything above still lives.
    std::unique_ptr<Connection> connection_;

    // ---- io thread: transitions ----

    void set_state(VoiceState to, std::error_code reason) {
        auto from = state_.load();
        if (from == to || from == VoiceState::ended) {
            return;
        }
        {
            // Only an end keeps its reason as the session's error: a drop that was resumed
            // from is no failure.
            std::lock_guard lock(state_mutex_);
            state_.store(to);
            if (reason && !error_ && to == VoiceState::ended) {
                error_ = reason;
            }
        }
        state_cv_.notify_all();
        logger_->info("voice state from={} to={}{}", to_string(from), to_string(to),
                      reason ? " reason=\"" + reason.message() + "\"" : "");
        VoiceEvent event;
        event.kind = VoiceEvent::Kind::state_changed;
        event.state = to;
        event.error = reason;
        emit(event);
    }

    // The link is open: start (or resume) the session in the same frame that authenticates.
    std::string opening_frame(const std::string& token) {
        Json start = {{"type", "start_session"},
                      {"id", "start-" + std::to_string(++start_count_)},
                      {"location_id", options_.location_id},
                      {"channel", options_.channel},
                      {"access_token", token},
                      {"lane", options_.lane},
                      {"language", options_.language},
                      {"audio", options_.audio.to_json()}};
        token_expiry_ = jwt_expiry(token);
        std::string resume;
        {
            std::lock_guard lock(state_mutex_);
            resume = session_id_;
        }
        if (!resume.empty()) {
            start["resume_session_id"] = resume;
        } else {
            set_state(VoiceState::starting, {});
        }
        observe(true, start);
        return start.dump();
    }
    int start_count_ = 0;
    std::optional<std::chrono::system_clock::time_point> token_expiry_;

    void on_session_started(const Json& message) {
        // The answer names the session and the format of the audio coming back.
        auto id = message.find("session_id");
        auto format = message.contains("audio") ? AudioFormat::from_json(message["audio"])
                                                : std::optional<AudioFormat>(AudioFormat{});
        if (id == message.end() || !id->is_string() || !format) {
            link_->report_bad_frame("session_started without session_id or valid audio");
            return;
        }
        if (!prepare_downlink(*format)) {
            return;
        }

        // Resumed, or replaced by a new session the server started instead.
        auto resumed_it = message.find("resumed");
        bool resumed =
            resumed_it != message.end() && resumed_it->is_boolean() && resumed_it->get<bool>();
        std::string previous;
        {
            std::lock_guard lock(state_mutex_);
            previous = session_id_;
            session_id_ = id->get<std::string>();
        }
        if (!previous.empty() && !resumed) {
            report_error(make_error_code(errc::session_lost),
                         "the server could not resume " + previous + "; it started a new session");
        }
        if (resumed) {
            resumes_.fetch_add(1, std::memory_order_relaxed);
            if (auto got = message.find("frames_received");
                got != message.end() && got->is_number_unsigned()) {
                requeue_unreceived(got->get<std::uint64_t>());
            }
            close_cut_replies();
        } else {
            sent_history_.clear();
            sent_in_session_ = 0;
        }

        // Authenticated: the transport core now runs heartbeat and token refresh.
        link_->complete_authentication(token_expiry_);
        if (hosted_) {
            link_->cancel(start_timer_);
        }
        ever_active_ = true;
        set_state(VoiceState::active, {});
        VoiceEvent event;
        event.kind = VoiceEvent::Kind::session_started;
        event.session_id = id->get<std::string>();
        event.resumed = resumed;
        if (auto greeting = message.find("greeting");
            greeting != message.end() && greeting->is_object()) {
            event.text = str(*greeting, "text");
            current_response_ = str(*greeting, "response_id");
            discard_reply_ = false;
        }
        emit(event);

        // Audio held during the outage goes out first, in order.
        drain_uplink();
    }

    bool prepare_downlink(const AudioFormat& format) {
        if (down_format_) {
            if (!(*down_format_ == format)) {
                report_error(make_error_code(errc::unexpected_audio_format),
                             "the resumed session announced a different reply format");
            }
            return true;
        }
        down_format_ = format;
        down_frame_ms_.store(format.frame_ms);
        down_opus_.store(format.encoding == AudioFormat::Encoding::opus);
        if (format.encoding == AudioFormat::Encoding::opus) {
            audio::JitterBufferConfig config;
            config.sample_rate = format.sample_rate;
            config.frame_ms = format.frame_ms;
            auto jitter = audio::JitterBuffer::create(config);
            if (!jitter) {
                fail(make_error_code(errc::unexpected_audio_format), jitter.error().what());
                return false;
            }
            jitter_owner_ = std::move(jitter).value();
            jitter_.store(jitter_owner_.get(), std::memory_order_release);
        }
        // Last: the playout thread starts once it sees the rate, and then reads the rest. Set
        // before the jitter buffer, the playout could take an Opus reply for PCM and stay
        // silent for the whole session.
        down_rate_.store(format.sample_rate);
        return true;
    }

    void on_link_down(std::error_code reason) {
        // The session's own close (end, close(), a failure) is no lost link.
        if (reason == errc::closed_by_application) {
            return;
        }
        auto state = state_.load();
        link_drops_.fetch_add(1, std::memory_order_relaxed);

        // On a warm stream a start in flight is sent again once the stream is back (the start
        // timer still bounds it); on a link of its own, the first start never answered is a
        // typed timeout, not an endless retry.
        if (hosted_ && state == VoiceState::starting && !ever_active_) {
            set_state(VoiceState::connecting, reason);
            return;
        }
        if (state == VoiceState::starting && !ever_active_) {
            fail(reason == errc::timeout ? make_error_code(errc::timeout) : reason,
                 "no session_started after start_session");
            return;
        }
        if (state == VoiceState::ending) {
            finish(VoiceState::ended, {});
            return;
        }
        if (state == VoiceState::active) {
            // TODO: the backoff grows on a link that drops again within stable_after (10 s)
            // of each reconnect; a voice link dropping every few seconds for long ends up
            // waiting past the outage buffer, and the frames beyond it are lost (counted).
            logger_->warn("voice link lost reason=\"{}\"; resuming", reason.message());
            set_state(VoiceState::resuming, reason);
        }
    }

    void on_connection_state(const StateChange& change) {
        if (change.to == ConnectionState::disconnected &&
            change.reason != errc::closed_by_application) {
            fail(change.reason, "the link stopped for good");
        }
    }

    void begin_end(const std::string& reason) {
        auto state = state_.load();
        if (state != VoiceState::active) {
            finish(VoiceState::ended, {});
            return;
        }
        std::string id;
        {
            std::lock_guard lock(state_mutex_);
            id = session_id_;
        }
        drain_uplink();
        send_control({{"type", "end_session"}, {"session_id", id}, {"reason", reason}});
        set_state(VoiceState::ending, {});
        end_timer_ = link_->call_after(options_.end_timeout, [weak = weak_from_this()] {
            if (auto self = weak.lock()) {
                self->logger_->warn("no session_ended in time; closing");
                self->finish(VoiceState::ended, {});
            }
        });
    }

    void finish(VoiceState, std::error_code reason) {
        set_state(VoiceState::ended, reason);
        cancel_fetch_.store(true);
        wake_fetch_thread();
        if (source_) {
            source_->stop();
        }
        if (hosted_) {
            link_->cancel(start_timer_);
            stream_->detach(this);  // the warm link stays up for the next session
        } else {
            link_->close();
        }
    }

    void fail(std::error_code reason, const std::string& detail) {
        if (state_.load() == VoiceState::ended) {
            return;
        }
        logger_->error("voice session failed reason=\"{}\" detail=\"{}\"", reason.message(),
                       detail);
        report_error(reason, detail);
        finish(VoiceState::ended, reason);
    }

    // ---- io thread: inbound ----

    void on_message(const Json& message) {
        touch();
        observe(false, message);
        const auto& type = message["type"].get_ref<const std::string&>();
        if (type == "session_started") {
            on_session_started(message);
        } else if (type == "partial_transcript" || type == "final_transcript") {
            on_transcript(type, message);
        } else if (type == "final_response") {
            on_final_response(message);
        } else if (type == "response_audio_done") {
            auto id = str(message, "response_id");
            set_reply(id, Reply::done);
            VoiceEvent event;
            event.kind = VoiceEvent::Kind::response_audio_done;
            event.id = id;
            event.played_ms = integer(message, "duration_ms");
            emit(event);
        } else if (type == "interrupt") {
            auto id = str(message, "response_id", current_response_);
            VoiceEvent event;
            event.kind = VoiceEvent::Kind::interrupt;
            event.id = id;
            emit(event);
            begin_barge_in(id);
        } else if (type == "session_ended") {
            on_session_ended(message);
        } else if (type == "error") {
            on_error(message);
        } else {
            logger_->debug("unknown voice message type={} dropped", type);
        }
    }

    void on_transcript(const std::string& type, const Json& message) {
        VoiceEvent event;
        event.kind = type == "final_transcript" ? VoiceEvent::Kind::final_transcript
                                                : VoiceEvent::Kind::partial_transcript;
        event.text = str(message, "text");
        event.id = str(message, "utterance_id");
        if (event.kind == VoiceEvent::Kind::final_transcript) {
            transcript_ns_.store(to_ns(Clock::now()));
        }
        emit(event);
    }

    void on_final_response(const Json& message) {
        // A new reply: frames from here on belong to it.
        auto id = str(message, "response_id");
        current_response_ = id;
        discard_reply_ = false;
        replies_.fetch_add(1, std::memory_order_relaxed);
        set_reply(id, Reply::awaiting);
        VoiceEvent event;
        event.kind = VoiceEvent::Kind::final_response;
        event.id = id;
        event.text = str(message, "text");
        if (auto url = message.find("audio_url"); url != message.end() && url->is_string()) {
            event.url = url->get<std::string>();
            response_urls_[id] = event.url;
        }
        emit(event);

        // Streamed frames have a moment to arrive; then the URL (if any) is fetched.
        link_->call_after(options_.audio_url_grace, [weak = weak_from_this(), id] {
            if (auto self = weak.lock())
                self->after_grace(id);
        });
    }

    void after_grace(const std::string& id) {
        // The URL is needed once, now: streamed audio came, or it is fetched.
        std::string url;
        if (auto found = response_urls_.find(id); found != response_urls_.end()) {
            url = std::move(found->second);
            response_urls_.erase(found);
        }
        auto it = responses_.find(id);
        if (it == responses_.end() || it->second != Reply::awaiting) {
            return;
        }
        if (url.empty()) {
            set_reply(id, Reply::done);  // a text-only reply
            return;
        }

        // Downloads wait in a bounded queue: a server cannot pile up work without end.
        bool queued = false;
        {
            std::lock_guard lock(fetch_mutex_);
            if (fetch_queue_.size() < kMaxQueuedFetches) {
                fetch_queue_.emplace_back(id, url);
                queued = true;
            }
        }
        if (!queued) {
            set_reply(id, Reply::done);
            report_error(make_error_code(errc::audio_fetch_failed),
                         log::redact_url(url) + ": too many audio_url replies waiting");
            return;
        }
        set_reply(id, Reply::fetching);
        fetch_cv_.notify_one();
    }

    void on_session_ended(const Json& message) {
        VoiceEvent event;
        event.kind = VoiceEvent::Kind::session_ended;
        event.session_id = str(message, "session_id");
        event.reason = str(message, "reason");
        emit(event);
        link_->cancel(end_timer_);
        bool expected = state_.load() == VoiceState::ending;
        finish(VoiceState::ended, expected || event.reason == "completed"
                                      ? std::error_code{}
                                      : make_error_code(errc::session_lost));
    }

    void on_error(const Json& message) {
        auto code = str(message, "code", "server_error");
        auto text = code + ": " + str(message, "message");

        // An error answering start_session means there is no session.
        if (state_.load() == VoiceState::starting) {
            fail(make_error_code(errc::session_refused), text);
            return;
        }
        report_error(make_error_code(errc_from_protocol(code)), text);
    }

    void on_binary(std::string_view bytes) {
        // Audio only counts inside a session, and not for a reply the customer cut off.
        touch();
        reply_frames_.fetch_add(1, std::memory_order_relaxed);
        if (!down_format_ || state_.load() == VoiceState::ended) {
            link_->report_bad_frame("audio frame outside a session");
            return;
        }
        if (discard_reply_) {
            discarded_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (!current_response_.empty()) {
            set_reply(current_response_, Reply::streaming);
        }

        // Check the frame against the announced format; a bad one leaves a gap to conceal.
        const auto sequence = down_sequence_++;
        const auto frame = static_cast<std::size_t>(down_format_->frame_samples());
        if (down_format_->encoding == AudioFormat::Encoding::pcm_s16le) {
            push_pcm(bytes, frame);
            return;
        }
        audio::Span<const std::uint8_t> packet(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                               bytes.size());
        int samples = bytes.empty() || bytes.size() > audio::kMaxOpusPacketBytes
                          ? -1
                          : audio::opus_packet_samples(packet, down_format_->sample_rate);
        if (samples < 0) {
            count_bad(bad_frames_, errc::bad_audio_frame, "an audio frame is not Opus");
        } else if (static_cast<std::size_t>(samples) != frame) {
            count_bad(unexpected_format_, errc::unexpected_audio_format,
                      "an Opus frame of " + std::to_string(samples) + " samples; " +
                          std::to_string(frame) + " announced");
        } else if (!jitter_owner_->push(sequence, packet)) {
            reply_dropped_.fetch_add(1, std::memory_order_relaxed);  // the queue is full
        }
    }

    void push_pcm(std::string_view bytes, std::size_t frame) {
        // A PCM frame of the wrong size is concealed with silence of the right size.
        std::array<float, audio::kMaxFrameSamples> pcm{};
        if (bytes.size() != frame * 2) {
            count_bad(unexpected_format_, errc::unexpected_audio_format,
                      "a PCM frame of " + std::to_string(bytes.size()) + " bytes");
        } else {
            for (std::size_t i = 0; i < frame; ++i) {
                auto lo = static_cast<std::uint8_t>(bytes[2 * i]);
                auto hi = static_cast<std::uint8_t>(bytes[2 * i + 1]);
                pcm[i] = static_cast<float>(static_cast<std::int16_t>(lo | (hi << 8))) / 32768.0f;
            }
        }
        // Whole frames or none, so that the playout thread stays aligned on frames.
        if (pcm_down_.capacity() - pcm_down_.size() < frame) {
            reply_dropped_.fetch_add(1, std::memory_order_relaxed);  // the ring is full
            return;
        }
        (void)pcm_down_.try_push_bulk(audio::Span<const float>(pcm.data(), frame));
    }

    void count_bad(std::atomic<std::uint64_t>& counter, errc code, const std::string& what) {
        // Every bad frame is counted; the application hears of the first, then at most every 5 s.
        auto n = counter.fetch_add(1, std::memory_order_relaxed) + 1;
        std::size_t suppressed = 0;
        if (bad_log_.allow(suppressed)) {
            report_error(make_error_code(code), what + " (count=" + std::to_string(n) + ")");
        }
    }

    // ---- io thread: barge-in ----

    void begin_barge_in(const std::string& response_id) {
        // Later frames of this reply are dropped; the playout thread fades and flushes.
        discard_reply_ = true;
        set_reply(response_id, Reply::done);
        {
            std::lock_guard lock(barge_mutex_);
            barge_response_ = response_id;
        }
        barge_requested_.store(true, std::memory_order_release);
    }

    void send_barge_in(const std::string& response_id, std::int64_t played_ms) {
        std::string id;
        {
            std::lock_guard lock(state_mutex_);
            id = session_id_;
        }
        send_control({{"type", "barge_in"},
                      {"session_id", id},
                      {"response_id", response_id},
                      {"played_ms", played_ms}});
        barge_ins_.fetch_add(1, std::memory_order_relaxed);
        logger_->info("barge_in response={} played_ms={}", response_id, played_ms);
        VoiceEvent event;
        event.kind = VoiceEvent::Kind::barge_in;
        event.id = response_id;
        event.played_ms = played_ms;
        emit(event);
    }

    // ---- io thread: uplink ----

    void drain_uplink() {
        drain_posted_.store(false, std::memory_order_release);

        // Everything the source queued joins the outage buffer, which is bounded.
        UplinkFrame frame;
        while (uplink_.try_pop(frame)) {
            outage_.emplace_back(
                frame.captured_ns,
                std::string(reinterpret_cast<const char*>(frame.bytes.data()), frame.size));
            if (outage_.size() > outage_capacity_ && state_.load() != VoiceState::active) {
                outage_.pop_front();
                outage_dropped_.fetch_add(1, std::memory_order_relaxed);
            }
        }
        outage_peak_.store(std::max<std::uint64_t>(outage_peak_.load(), outage_.size()));

        // While the session is active, the buffer empties onto the link in order; what was
        // sent is remembered until a resume confirms the server has it.
        while (state_.load() == VoiceState::active && !outage_.empty()) {
            if (link_->send_binary(outage_.front().second)) {
                break;  // the link just went down; on_link_down follows
            }
            record_latency(outage_.front().first);
            sent_history_.push_back(std::move(outage_.front()));
            if (sent_history_.size() > outage_capacity_) {
                sent_history_.pop_front();
            }
            outage_.pop_front();
            ++sent_in_session_;
            frames_sent_.fetch_add(1, std::memory_order_relaxed);
        }
        outage_size_.store(outage_.size());
    }

    // A resumed session's server says how many frames it holds; the ones a dropped link swallowed
    // (still in a socket buffer when it died) go out again, ahead of what waited in the outage
    // buffer. Frames older than the history are lost and counted as dropped.
    void requeue_unreceived(std::uint64_t received) {
        if (received >= sent_in_session_) {
            return;
        }
        auto missing = sent_in_session_ - received;
        auto again = std::min<std::uint64_t>(missing, sent_history_.size());
        for (std::uint64_t i = 0; i < again; ++i) {
            outage_.push_front(std::move(sent_history_.back()));
            sent_history_.pop_back();
        }
        outage_dropped_.fetch_add(missing - again, std::memory_order_relaxed);
        frames_sent_.fetch_sub(missing, std::memory_order_relaxed);
        sent_in_session_ = received;
        logger_->info("voice resume: re-sending {} frames the server did not get ({} lost)", again,
                      missing - again);
    }

    void record_latency(std::int64_t captured_ns) {
        auto us = std::max<std::int64_t>(0, (to_ns(Clock::now()) - captured_ns) / 1000);
        std::lock_guard lock(latency_mutex_);
        if (latencies_us_.size() < kMaxLatencySamples) {
            latencies_us_.push_back(
                static_cast<std::uint32_t>(std::min<std::int64_t>(us, UINT32_MAX)));
        }
    }

    // ---- io thread: helpers ----

    // A reply that was streaming when the link dropped may never get its response_audio_done:
    // the server need not carry it on after a resume. It no longer counts as pending, so that
    // wait_replies_done() ends; whatever of it still comes is played all the same.
    void close_cut_replies() {
        for (auto& [id, reply] : responses_) {
            reply = reply == Reply::streaming ? Reply::done : reply;
        }
        recount_replies();
    }

    void set_reply(const std::string& id, Reply state) {
        if (id.empty()) {
            return;
        }
        auto it = responses_.find(id);
        if (it != responses_.end() && it->second == Reply::done) {
            return;  // a finished reply stays finished
        }
        responses_[id] = state;
        while (responses_.size() > 64) {
            responses_.erase(responses_.begin());
        }
        recount_replies();
    }

    void recount_replies() {
        int pending = 0;
        for (const auto& [key, value] : responses_) {
            pending += value != Reply::done ? 1 : 0;
        }
        pending_replies_.store(pending);
    }

    void touch() { last_activity_ns_.store(to_ns(Clock::now())); }

    void report_error(std::error_code code, const std::string& detail) {
        VoiceEvent event;
        event.kind = VoiceEvent::Kind::error;
        event.error = code;
        event.text = detail;
        emit(event);
    }

    void emit(const VoiceEvent& event) {
        if (!on_event_ || silenced_) {
            return;
        }
        try {
            on_event_(event);
        } catch (const std::exception& e) {
            logger_->error("the application's event handler threw: {}", e.what());
        }
    }

    // Sends a control message, and shows it to the application's observer first.
    void send_control(const Json& message) {
        observe(true, message);
        link_->send_text(message.dump());
    }

    // The application's view of every control message; the token never leaves the library.
    void observe(bool sent, const Json& message) {
        if (!options_.on_control_message || silenced_) {
            return;
        }
        try {
            if (message.contains("access_token")) {
                Json copy = message;
                copy["access_token"] = "<redacted>";
                options_.on_control_message(sent, copy);
            } else {
                options_.on_control_message(sent, message);
            }
        } catch (const std::exception& e) {
            logger_->error("the application's control-message observer threw: {}", e.what());
        }
    }

    // ---- io thread: riding a warm stream (hosted_) ----

    void attach_to_stream() {
        // One session at a time; a second one is refused rather than mixed in.
        if (!stream_->attach(weak_from_this())) {
            fail(make_error_code(errc::session_refused),
                 "another session is riding the voice stream");
            return;
        }

        // The start is bounded as on a link of its own; it goes out now or when the link is up.
        start_timer_ = link_->call_after(options_.start_timeout, [weak = weak_from_this()] {
            auto self = weak.lock();
            if (self && !self->ever_active_ && self->state_.load() != VoiceState::ended) {
                self->fail(make_error_code(errc::timeout), "no session_started in time");
            }
        });
        if (stream_->ready()) {
            on_stream_ready(stream_->token());
        }
    }

    // Owner's thread, hosted mode: detach on the io thread and wait for it (bounded), so that
    // nothing of this session runs or reaches the application after ~VoiceSession.
    void leave_stream() {
        auto leave = [](Impl& self) {
            self.silenced_ = true;
            self.link_->cancel(self.start_timer_);
            self.stream_->detach(&self);
        };
        if (link_->on_io_thread()) {
            leave(*this);
            return;
        }
        auto done = std::make_shared<std::promise<void>>();
        auto left = done->get_future();
        link_->post([weak = weak_from_this(), done, leave] {
            if (auto self = weak.lock()) {
                leave(*self);
            }
            done->set_value();
        });
        if (left.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
            logger_->error("the voice stream's io thread did not answer within 3 s");
        }
    }

    void on_stream_ready(const std::string& token) override {
        // Start (or resume) now that the warm link is authenticated.
        auto state = state_.load();
        if (state == VoiceState::connecting || state == VoiceState::resuming) {
            link_->send_text(opening_frame(token));
        }
    }

    void on_stream_down(std::error_code reason) override { on_link_down(reason); }

    void on_stream_failed(std::error_code reason, const std::string& why) override {
        fail(reason ? reason : make_error_code(errc::session_lost), why);
    }

    void on_stream_message(const Json& message) override { on_message(message); }

    void on_stream_binary(std::string_view bytes) override { on_binary(bytes); }

    // ---- source thread ----

    void run_source();
    bool encode(audio::Span<const float> pcm, audio::OpusEncoder* encoder, UplinkFrame& out);

    // ---- playout thread ----

    void run_playout();
    bool next_frame(std::vector<float>& frame, audio::JitterBuffer* jitter);
    void play_barge_in(std::vector<float>& frame, audio::JitterBuffer* jitter,
                       audio::Resampler& resampler, std::uint64_t reply_start);
    void write_sink(const std::vector<float>& frame, audio::Resampler& resampler, bool fade_only);
    std::vector<float> converted_;

    // ---- fetch thread ----

    void run_fetches();
};

// ---- source thread ----

void VoiceSession::Impl::run_source() {
    if (!source_) {
        return;
    }

    // The file or microphone starts when the session does: nothing waits in a buffer first.
    {
        std::unique_lock lock(state_mutex_);
        while (!state_cv_.wait_for(lock, milliseconds(50), [this] {
            auto s = state_.load();
            return s == VoiceState::active || s == VoiceState::ended || stopping_.load();
        })) {
        }
    }

    // A recorded customer waits for the greeting to play out, as one at the post does: until
    // no reply is pending and the downlink has been quiet a moment, or greeting_wait passes.
    if (options_.greeting_wait.count() > 0) {
        wait_until(
            [this] {
                return stopping_.load() || state_.load() == VoiceState::ended ||
                       replies_done(kGreetingQuiet);
            },
            options_.greeting_wait);
    }
    std::optional<audio::OpusEncoder> encoder;
    if (options_.audio.encoding == AudioFormat::Encoding::opus) {
        audio::EncoderConfig config;
        config.sample_rate = options_.audio.sample_rate;
        config.frame_ms = options_.audio.frame_ms;
        config.bitrate = options_.opus_bitrate;
        auto created = audio::OpusEncoder::create(config);
        if (!created) {
            logger_->error("opus encoder: {}", created.error().what());
            source_done_.store(true);
            return;
        }
        encoder.emplace(std::move(created).value());
    }

    // Read, encode, queue; a device source never waits, a fast file waits for room.
    std::vector<float> pcm(static_cast<std::size_t>(options_.audio.frame_samples()));
    UplinkFrame frame;
    while (!stopping_.load() && state_.load() != VoiceState::ended) {
        Clock::time_point captured;
        auto result = source_->read(pcm, captured);
        if (result != SourceRead::frame) {
            if (result == SourceRead::error) {
                auto detail = source_->error();
                link_->post([weak = weak_from_this(), detail] {
                    if (auto self = weak.lock())
                        self->report_error(make_error_code(audio::errc::file_read_failed), detail);
                });
            }
            break;
        }
        frames_captured_.fetch_add(1, std::memory_order_relaxed);
        input_dbfs_.store(level_dbfs(pcm.data(), pcm.size()), std::memory_order_relaxed);
        if (!encode(pcm, encoder ? &*encoder : nullptr, frame)) {
            continue;
        }
        frame.captured_ns = to_ns(captured);
        while (!uplink_.try_push(frame)) {
            if (source_->realtime() || stopping_.load()) {
                uplink_overflows_.fetch_add(1, std::memory_order_relaxed);
                break;
            }
            std::this_thread::sleep_for(milliseconds(1));
        }
        if (!drain_posted_.exchange(true, std::memory_order_acq_rel)) {
            link_->post([weak = weak_from_this()] {
                if (auto self = weak.lock())
                    self->drain_uplink();
            });
        }
    }
    source_done_.store(true);
}

bool VoiceSession::Impl::encode(audio::Span<const float> pcm, audio::OpusEncoder* encoder,
                                UplinkFrame& out) {
    // Opus: one packet per frame.
    if (encoder != nullptr) {
        audio::EncodedFrame packet;
        if (auto ec = encoder->encode(pcm, packet)) {
            logger_->warn("opus encode failed: {}", ec.message());
            return false;
        }
        out.size = packet.size;
        std::memcpy(out.bytes.data(), packet.bytes.data(), packet.size);
        return true;
    }

    // PCM: little-endian 16-bit, exactly one frame.
    for (std::size_t i = 0; i < pcm.size(); ++i) {
        auto v = static_cast<std::int16_t>(std::lround(std::clamp(pcm[i], -1.0f, 1.0f) * 32767.0f));
        out.bytes[2 * i] = static_cast<std::uint8_t>(v & 0xff);
        out.bytes[2 * i + 1] = static_cast<std::uint8_t>((v >> 8) & 0xff);
    }
    out.size = static_cast<std::uint16_t>(pcm.size() * 2);
    return true;
}

// ---- playout thread ----

void VoiceSession::Impl::run_playout() {
    // The downlink format is known once the session started.
    while (down_rate_.load() == 0) {
        if (stopping_.load() || state_.load() == VoiceState::ended) {
            return;
        }
        std::this_thread::sleep_for(milliseconds(5));
    }
    const int rate = down_rate_.load();
    const auto period = milliseconds(down_frame_ms_.load());
    auto* jitter = jitter_.load(std::memory_order_acquire);
    auto resampler = audio::Resampler::create(rate, sink_->sample_rate());
    if (!resampler) {
        logger_->error("playout resampler: {}", resampler.error().what());
        return;
    }
    std::vector<float> frame(static_cast<std::size_t>(rate / 1000 * down_frame_ms_.load()));
    converted_.resize(resampler.value().output_size(frame.size()) + 64);

    // One frame per period on the steady clock; a reply starts after a gap of silence.
    std::uint64_t reply_start = 0;
    int idle_frames = 0;
    auto next = Clock::now();
    while (!stopping_.load() && state_.load() != VoiceState::ended) {
        next += period;
        std::this_thread::sleep_until(next);
        if (barge_requested_.exchange(false, std::memory_order_acq_rel)) {
            play_barge_in(frame, jitter, resampler.value(), reply_start);
            idle_frames = 3;
            continue;
        }
        if (!next_frame(frame, jitter)) {
            idle_frames += 1;
            playing_.store(idle_frames < 3 ? playing_.load() : false);
            continue;
        }
        if (idle_frames >= 3 || !playing_.load()) {
            reply_start = sink_->written_samples();
            if (auto t = transcript_ns_.exchange(0); t != 0) {
                first_audio_ms_.store(static_cast<double>(to_ns(Clock::now()) - t) / 1e6);
            }
        }
        idle_frames = 0;
        playing_.store(true);
        write_sink(frame, resampler.value(), false);
        frames_played_.fetch_add(1, std::memory_order_relaxed);
        output_dbfs_.store(level_dbfs(frame.data(), frame.size()), std::memory_order_relaxed);
        touch();
    }
    // TODO: the playout clock is the steady clock, not the device's; over a long talk session
    // the two drift apart and the device ring slowly fills or underruns.
}

bool VoiceSession::Impl::next_frame(std::vector<float>& frame, audio::JitterBuffer* jitter) {
    // A fetched audio_url reply plays first.
    {
        std::lock_guard lock(fetch_mutex_);
        if (!url_pcm_.empty()) {
            std::fill(frame.begin(), frame.end(), 0.0f);
            auto n = std::min(frame.size(), url_pcm_.size());
            std::copy_n(url_pcm_.begin(), n, frame.begin());
            url_pcm_.erase(url_pcm_.begin(), url_pcm_.begin() + static_cast<std::ptrdiff_t>(n));
            fetch_cv_.notify_all();  // a fetched reply may be waiting for room
            return true;
        }
    }

    // PCM replies: a whole frame or nothing.
    if (jitter == nullptr) {
        if (pcm_down_.size() < frame.size()) {
            return false;
        }
        return pcm_down_.try_pop_bulk(audio::Span<float>(frame.data(), frame.size())) ==
               frame.size();
    }

    // Opus replies: a frame counts when it was decoded or concealed, not when it is the
    // buffer's own silence between replies.
    auto before = jitter->stats();
    jitter->pull(audio::Span<float>(frame.data(), frame.size()));
    auto after = jitter->stats();
    auto concealed =
        (after.concealed_fec - before.concealed_fec) + (after.concealed_plc - before.concealed_plc);
    concealed_.fetch_add(concealed, std::memory_order_relaxed);
    return after.frames_decoded > before.frames_decoded || concealed > 0;
}

void VoiceSession::Impl::play_barge_in(std::vector<float>& frame, audio::JitterBuffer* jitter,
                                       audio::Resampler& resampler, std::uint64_t reply_start) {
    // Fade out what would have played next, then measure what the listener heard.
    std::int64_t played_ms = 0;
    if (playing_.load()) {
        if (!next_frame(frame, jitter)) {
            std::fill(frame.begin(), frame.end(), 0.0f);
        }
        write_sink(frame, resampler, true);
        auto heard = sink_->played_samples() - std::min(sink_->played_samples(), reply_start);
        played_ms = static_cast<std::int64_t>(heard * 1000 /
                                              static_cast<std::uint64_t>(sink_->sample_rate()));
    }

    // Drop everything queued for the stopped reply.
    if (jitter != nullptr) {
        jitter->flush();
    } else {
        auto queued = pcm_down_.read_regions(pcm_down_.capacity());
        pcm_down_.commit_read(queued.size());
    }
    {
        std::lock_guard lock(fetch_mutex_);
        url_pcm_.clear();
    }
    fetch_cv_.notify_all();
    playing_.store(false);

    // Report it from the io thread.
    std::string response;
    {
        std::lock_guard lock(barge_mutex_);
        response = barge_response_;
    }
    link_->post([weak = weak_from_this(), response, played_ms] {
        if (auto self = weak.lock())
            self->send_barge_in(response, played_ms);
    });
}

void VoiceSession::Impl::write_sink(const std::vector<float>& frame, audio::Resampler& resampler,
                                    bool fade_only) {
    std::size_t consumed = 0, produced = 0;
    resampler.process(frame, converted_, consumed, produced);
    audio::Span<const float> out(converted_.data(), produced);
    if (fade_only) {
        sink_->fade_out_and_flush(out);
    } else if (auto ec = sink_->write(out)) {
        logger_->warn("sink write failed: {}", ec.message());
    }
}

// ---- fetch thread ----

void VoiceSession::Impl::run_fetches() {
    while (true) {
        // One download at a time, in the order the replies came.
        std::pair<std::string, std::string> job;
        {
            std::unique_lock lock(fetch_mutex_);
            fetch_cv_.wait(lock, [this] { return stopping_.load() || !fetch_queue_.empty(); });
            if (stopping_.load()) {
                return;
            }
            job = std::move(fetch_queue_.front());
            fetch_queue_.pop_front();
        }

        // Fetch and decode at the playout rate, under the stream's TLS rules by default.
        std::vector<float> pcm;
        std::string detail;
        auto tls = options_.audio_url_tls.value_or(options_.connection.tls);
        auto ec = detail::fetch_audio(job.second, tls, options_.audio_url_timeout,
                                      down_rate_.load(), cancel_fetch_, pcm, detail);

        // It queues for playout once what waits before it leaves room (bounded memory).
        if (!ec) {
            const auto room = static_cast<std::size_t>(detail::kMaxReplySeconds) *
                              static_cast<std::size_t>(down_rate_.load());
            std::unique_lock lock(fetch_mutex_);
            fetch_cv_.wait(lock, [&] {
                return stopping_.load() || cancel_fetch_.load() || url_pcm_.empty() ||
                       url_pcm_.size() + pcm.size() <= room;
            });
            url_pcm_.insert(url_pcm_.end(), pcm.begin(), pcm.end());
            playing_.store(true);
        }

        // The io thread reports the outcome and closes the reply.
        link_->post([weak = weak_from_this(), job, ec, detail] {
            auto self = weak.lock();
            if (!self) {
                return;
            }
            self->set_reply(job.first, Reply::done);
            if (ec) {
                self->report_error(ec, log::redact_url(job.second) + ": " + detail);
                return;
            }
            self->urls_played_.fetch_add(1, std::memory_order_relaxed);
            VoiceEvent event;
            event.kind = VoiceEvent::Kind::audio_url_played;
            event.id = job.first;
            event.url = log::redact_url(job.second);
            self->emit(event);
        });
    }
}

VoiceStats VoiceSession::Impl::stats() const {
    auto get = [](const std::atomic<std::uint64_t>& v) {
        return v.load(std::memory_order_relaxed);
    };
    VoiceStats s;
    {
        std::lock_guard lock(state_mutex_);
        s.state = state_.load();
        s.error = error_;
        s.session_id = session_id_;
    }
    s.frames_captured = get(frames_captured_);
    s.frames_sent = get(frames_sent_);
    s.uplink_overflows = get(uplink_overflows_);
    s.outage_dropped = get(outage_dropped_);
    s.outage_peak = get(outage_peak_);
    s.reply_frames_received = get(reply_frames_);
    s.unexpected_format_frames = get(unexpected_format_);
    s.frames_played = get(frames_played_);
    s.concealed_frames = get(concealed_);
    s.discarded_after_barge_in = get(discarded_);
    s.reply_frames_dropped = get(reply_dropped_);
    s.barge_ins = get(barge_ins_);
    s.replies = get(replies_);
    s.audio_urls_played = get(urls_played_);
    s.resumes = get(resumes_);
    s.link_drops = get(link_drops_);
    s.reply_first_audio_ms = first_audio_ms_.load();
    s.input_dbfs = input_dbfs_.load();
    s.output_dbfs = output_dbfs_.load();
    s.rtt = link_->stats().last_rtt;
    s.bad_frames = get(bad_frames_);
    if (auto* jitter = jitter_.load(std::memory_order_acquire)) {
        auto js = jitter->stats();
        s.jitter_depth_frames = js.current_depth;
        s.bad_frames += js.corrupt;
        s.reply_frames_dropped += js.depth_dropped + js.late_dropped;
    }

    // Percentiles of the send latency, nearest rank.
    std::vector<std::uint32_t> sorted;
    {
        std::lock_guard lock(latency_mutex_);
        sorted = latencies_us_;
    }
    if (!sorted.empty()) {
        std::sort(sorted.begin(), sorted.end());
        auto at = [&](double p) {
            auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
            return static_cast<double>(sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1]);
        };
        s.send_latency_p50_us = at(0.50);
        s.send_latency_p90_us = at(0.90);
        s.send_latency_p99_us = at(0.99);
        s.send_latency_max_us = static_cast<double>(sorted.back());
    }
    return s;
}

// ---- VoiceSession ----

VoiceSession::VoiceSession(VoiceSessionOptions options, std::unique_ptr<VoiceSource> source,
                           std::unique_ptr<VoiceSink> sink, EventHandler on_event) {
    options.validate();
    impl_ = std::make_shared<Impl>(std::move(options), nullptr, std::move(source), std::move(sink),
                                   std::move(on_event));
    impl_->init();
}

VoiceSession::VoiceSession(VoiceSessionOptions options, VoiceStream& stream,
                           std::unique_ptr<VoiceSource> source, std::unique_ptr<VoiceSink> sink,
                           EventHandler on_event) {
    options.validate();
    impl_ = std::make_shared<Impl>(std::move(options), stream.impl_, std::move(source),
                                   std::move(sink), std::move(on_event));
    impl_->init();
}

bool VoiceSession::rides_stream() const {
    return impl_->hosted_;
}

VoiceSession::~VoiceSession() {
    impl_->shutdown();

    // A hook or task already running on the io thread holds the Impl; if it let go last, the
    // Impl and its Connection would be destroyed there, and a thread cannot join itself. Wait
    // for the io thread to get past it, so that the Impl goes here, on the owner's thread.
    auto passed = std::make_shared<std::promise<void>>();
    auto future = passed->get_future();
    impl_->link_->post([passed] { passed->set_value(); });
    future.wait_for(std::chrono::seconds(3));
}

void VoiceSession::start() {
    impl_->start();
}

void VoiceSession::barge_in() {
    impl_->barge_in();
}

void VoiceSession::end(const std::string& reason) {
    impl_->end(reason);
}

void VoiceSession::close() {
    impl_->close();
}

bool VoiceSession::wait_for(VoiceState state, milliseconds timeout) const {
    return impl_->wait_for(state, timeout);
}

bool VoiceSession::wait_source_done(milliseconds timeout) const {
    return impl_->wait_until([this] { return impl_->source_done(); }, timeout);
}

bool VoiceSession::wait_replies_done(milliseconds quiet, milliseconds timeout) const {
    return impl_->wait_until([this, quiet] { return impl_->replies_done(quiet); }, timeout);
}

VoiceState VoiceSession::state() const {
    return impl_->state_.load();
}

VoiceStats VoiceSession::stats() const {
    return impl_->stats();
}

std::uint64_t VoiceSession::sink_samples() const {
    return impl_->sink_->written_samples();
}

const Connection& VoiceSession::connection() const {
    return *impl_->link_;
}

}  // namespace olympus
