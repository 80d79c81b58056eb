// The lane's audio at the post; see lane_audio.hpp. The device thread owns the device lifecycle
// (Core::run), the audio worker owns the processing (run_audio), and the session adapters
// (Source, Sink) only touch rings and a snapshot of the current device generation.
#include "olympus/lane/lane_audio.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <future>
#include <optional>

#include "olympus/audio/resampler.hpp"
#include "olympus/log.hpp"

namespace olympus::lane {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t kUplinkSamples = 1 << 15;      // 2 s at 16 kHz
constexpr std::size_t kSpeakerTapSamples = 1 << 15;  // 680 ms at 48 kHz
constexpr std::uint64_t kFramesPerPublish = 50;      // processor figures twice a second

std::int64_t to_ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point from_ns(std::int64_t ns) {
    return Clock::time_point(std::chrono::nanoseconds(ns));
}

float level_dbfs(audio::Span<const float> pcm) {
    double sum = 0;
    for (float x : pcm) {
        sum += static_cast<double>(x) * static_cast<double>(x);
    }
    const double rms = std::sqrt(sum / static_cast<double>(std::max<std::size_t>(pcm.size(), 1)));
    return static_cast<float>(20.0 * std::log10(std::max(rms, 1e-9)));
}

}  // namespace

const char* to_string(DeviceState state) {
    switch (state) {
        case DeviceState::opening:
            return "opening";
        case DeviceState::running:
            return "running";
        case DeviceState::lost:
            return "lost";
    }
    return "unknown";
}

// One opening of the devices: the streams, the canceller made for their rates, and the ring the
// speaker callback fills for the recording. Destroyed as a whole once its streams are closed.
struct DeviceGeneration {
    DeviceGeneration() : speaker(kSpeakerTapSamples) {}

    // The far-end tap, on the speaker callback: wait-free copies only.
    static void on_far_end(void* context, const float* samples, std::size_t count) noexcept {
        auto* self = static_cast<DeviceGeneration*>(context);
        const audio::Span<const float> played(samples, count);
        if (auto* processor = self->processor_ptr.load(std::memory_order_acquire)) {
            (void)processor->push_far_end(played);
        }
        (void)self->speaker.try_push_bulk(played);
    }

    audio::SpscRing<float> speaker;                              // speaker callback -> audio worker
    std::atomic<audio::VoiceProcessor*> processor_ptr{nullptr};  // release once built
    std::unique_ptr<audio::VoiceProcessor> processor;            // audio worker, once published
    std::optional<audio::Resampler> speaker_to_lane;             // audio worker
    // Declared last, destroyed first: the streams (and the tap) stop before the rest goes.
    std::unique_ptr<PostIo> io;
};

/*
 * The device thread, Core::run():
 *
 *   opening ─open ok─► running ─audio worker reports a loss (error, stall)─► closing ─┐
 *      ▲  │ open failed                                                              │
 *      │  ▼                                                                          ▼
 *      └── lost: backoff (retry_initial doubling to retry_max) ◄── closed, or abandoned
 *                                                    (a close stuck past close_within)
 *
 * After an abandoned close PortAudio is still inside that close on another thread, and it is
 * not reentrant: the thread waits for it to return before it opens anything again.
 */
struct LaneAudio::Core {
    Core(LaneAudioOptions o, std::unique_ptr<PostDevices> d, LaneMetrics& m, Events e)
        : options(std::move(o)), devices(std::move(d)), metrics(m), events(std::move(e)) {}

    // Any thread.
    std::shared_ptr<DeviceGeneration> snapshot() {
        std::lock_guard lock(mutex);
        return current;
    }

    // Audio worker: the devices must be reopened.
    void request_loss(const std::string& why) {
        {
            std::lock_guard lock(mutex);
            if (loss.empty()) {
                loss = why;
            }
        }
        wake.notify_all();
    }

    void beat() { heartbeat_ns.store(to_ns(Clock::now()), std::memory_order_relaxed); }

    // The device thread inside one driver call (or waiting for an abandoned close) for longer
    // than three bounded closes, and at least 5 s, is stuck rather than retrying.
    bool responsive() const {
        const auto stuck_after =
            std::max<Clock::duration>(std::chrono::seconds(5), 3 * options.close_within);
        return Clock::now() - from_ns(heartbeat_ns.load(std::memory_order_relaxed)) < stuck_after;
    }

    static void run(const std::shared_ptr<Core>& self);
    bool open_generation(milliseconds& backoff);
    std::string wait_for_loss(const std::shared_ptr<DeviceGeneration>& generation);
    void retire(std::shared_ptr<DeviceGeneration> generation);
    bool wait_backoff(milliseconds delay);
    bool wait_for_abandoned_close();
    void set_state(DeviceState to, const std::string& why);

    const LaneAudioOptions options;
    const std::unique_ptr<PostDevices> devices;
    LaneMetrics& metrics;
    const Events events;
    const std::shared_ptr<spdlog::logger> logger = log::get("lane.audio");

    std::atomic<DeviceState> state{DeviceState::opening};
    std::atomic<std::int64_t> heartbeat_ns{0};
    std::atomic<std::uint64_t> played_base{0};  // speaker samples of retired generations

    std::mutex mutex;  // guards the four below; pairs with wake
    std::condition_variable wake;
    std::shared_ptr<DeviceGeneration> current;
    std::string loss;
    bool stopping = false;
    bool abandoned = false;  // the owner is gone: finish quietly

    // Device thread only: the close that was abandoned, done once it returns.
    std::shared_ptr<std::atomic<bool>> abandoned_close;

    // The device thread and its end, which stop() waits for with a bound.
    std::thread thread;
    std::promise<void> exited_promise;
    std::future<void> exited;
};

void LaneAudio::Core::run(const std::shared_ptr<Core>& self) {
    // The shared_ptr keeps the core alive even when the owner stopped waiting for this thread.
    Core& core = *self;
    milliseconds backoff = core.options.retry_initial;
    while (true) {
        core.beat();
        if (!core.wait_for_abandoned_close()) {
            return;
        }
        if (!core.open_generation(backoff)) {
            if (!core.wait_backoff(backoff)) {
                return;
            }
            backoff = std::min(backoff * 2, core.options.retry_max);
            continue;
        }
        backoff = core.options.retry_initial;
        auto generation = core.snapshot();
        const std::string why = core.wait_for_loss(generation);
        core.retire(std::move(generation));
        if (why.empty()) {
            return;  // stopping
        }
        core.metrics.device_errors.inc();
        core.set_state(DeviceState::lost, why);
        core.logger->error("audio device lost reason=\"{}\"; reopening in {} ms", why,
                           backoff.count());
        if (!core.wait_backoff(backoff)) {
            return;
        }
    }
}

bool LaneAudio::Core::open_generation(milliseconds& backoff) {
    // Open and start both devices; the tap points at a generation that has no canceller yet.
    set_state(DeviceState::opening, "");
    auto generation = std::make_shared<DeviceGeneration>();
    auto io = devices->open(options.rate,
                            audio::PlaybackTap{&DeviceGeneration::on_far_end, generation.get()});
    beat();
    if (!io) {
        metrics.device_errors.inc();
        set_state(DeviceState::lost, io.error().what());
        logger->error("audio device unavailable error=\"{}\"; retrying in {} ms", io.error().what(),
                      backoff.count());
        return false;
    }
    generation->io = std::move(io).value();

    // The canceller for the speaker's rate, told the delay the devices report plus the air.
    auto settings =
        voice_processor_config(options.processing, options.rate, generation->io->far_end_rate());
    settings.delay_ms = std::clamp(
        static_cast<int>(std::lround(generation->io->reported_delay_ms())) + settings.delay_ms, 0,
        500);
    auto processor = audio::VoiceProcessor::create(settings);
    auto resampler = audio::Resampler::create(generation->io->far_end_rate(), options.rate, 3);
    if (!processor || !resampler) {
        retire(std::move(generation));
        metrics.device_errors.inc();
        const std::string why = !processor ? processor.error().what() : resampler.error().what();
        set_state(DeviceState::lost, why);
        logger->error("audio processing refused the devices error=\"{}\"", why);
        return false;
    }
    generation->processor = std::move(processor).value();
    generation->speaker_to_lane.emplace(std::move(resampler).value());
    generation->processor_ptr.store(generation->processor.get(), std::memory_order_release);

    // Publish: from here the audio worker and the session's sink use it.
    logger->info("audio devices running {} rate={} far_end_rate={} echo_delay_ms={}",
                 generation->io->describe(), options.rate, generation->io->far_end_rate(),
                 settings.delay_ms);
    {
        std::lock_guard lock(mutex);
        current = std::move(generation);
        loss.clear();
    }
    set_state(DeviceState::running, "");
    return true;
}

std::string LaneAudio::Core::wait_for_loss(const std::shared_ptr<DeviceGeneration>& generation) {
    // Until the audio worker reports a loss, or the lane stops ("" then).
    std::unique_lock lock(mutex);
    while (!stopping && loss.empty()) {
        wake.wait_for(lock, milliseconds(200));
        heartbeat_ns.store(to_ns(Clock::now()), std::memory_order_relaxed);
    }
    (void)generation;
    if (current == generation) {
        current.reset();  // no new user picks it up from here
    }
    return stopping ? std::string() : loss;
}

void LaneAudio::Core::retire(std::shared_ptr<DeviceGeneration> generation) {
    // Wait (briefly) until the audio worker and the sink dropped their snapshots.
    const auto deadline = Clock::now() + milliseconds(1000);
    while (generation.use_count() > 1 && Clock::now() < deadline) {
        std::this_thread::sleep_for(milliseconds(2));
    }
    if (generation->io) {
        played_base.fetch_add(generation->io->played_samples(), std::memory_order_relaxed);
    }

    // Close on a thread of its own, so that a driver that never returns cannot hold this one.
    auto done = std::make_shared<std::atomic<bool>>(false);
    auto closed = std::make_shared<std::promise<void>>();
    auto finished = closed->get_future();
    std::thread closer([generation = std::move(generation), done, closed]() mutable {
        generation.reset();
        done->store(true, std::memory_order_release);
        closed->set_value();
    });
    if (finished.wait_for(options.close_within) == std::future_status::ready) {
        closer.join();
        return;
    }

    // Stuck in the driver: a sound server that died can be let go of (each stream's stop and
    // close waits once, so the release is repeated while the close goes on).
    const auto release_until = Clock::now() + options.close_within;
    while (Clock::now() < release_until && devices->release_stuck_close()) {
        if (finished.wait_for(milliseconds(100)) == std::future_status::ready) {
            closer.join();
            logger->warn(
                "the sound server had died; its streams were released and PortAudio "
                "starts afresh for the next opening");
            return;
        }
    }

    // TODO: an abandoned close leaks its streams, canceller and closing thread until the driver
    // returns (PortAudio's JACK host waits up to 10 minutes for a stalled client that is not
    // known to be dead, e.g. a stopped server) or the process exits. PortAudio is not
    // reentrant, so this process cannot reopen a device until then: the lane stays in
    // device_lost and the watchdog stops being fed, which lets systemd restart the agent with a
    // fresh PortAudio.
    closer.detach();
    abandoned_close = done;
    logger->error(
        "closing the audio device did not return within {} ms; abandoning it (the "
        "device stays lost until the driver returns)",
        options.close_within.count());
}

bool LaneAudio::Core::wait_backoff(milliseconds delay) {
    // Sliced, so the heartbeat shows the thread is alive and a stop is seen at once.
    std::unique_lock lock(mutex);
    const auto until = Clock::now() + delay;
    while (!stopping && Clock::now() < until) {
        wake.wait_until(lock, std::min(until, Clock::now() + milliseconds(200)));
        heartbeat_ns.store(to_ns(Clock::now()), std::memory_order_relaxed);
    }
    return !stopping;
}

bool LaneAudio::Core::wait_for_abandoned_close() {
    // No heartbeat meanwhile: a close stuck in the driver is a stuck pipeline.
    if (!abandoned_close) {
        return true;
    }
    // Meanwhile the driver is asked again to let go, for a sound server that died since.
    const auto since = Clock::now();
    std::unique_lock lock(mutex);
    while (!stopping && !abandoned_close->load(std::memory_order_acquire)) {
        wake.wait_for(lock, milliseconds(500));
        lock.unlock();
        (void)devices->release_stuck_close();
        lock.lock();
    }
    if (stopping) {
        return false;
    }
    abandoned_close.reset();
    logger->warn("the abandoned device close returned after {} s; reopening",
                 std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - since).count());
    return true;
}

void LaneAudio::Core::set_state(DeviceState to, const std::string& why) {
    // Once the owner left, nothing of the lane is told any more.
    state.store(to, std::memory_order_release);
    {
        std::lock_guard lock(mutex);
        if (abandoned) {
            return;
        }
    }
    metrics.device_up.set(to == DeviceState::running ? 1.0 : 0.0);
    if (events.device_changed) {
        events.device_changed(to, why);
    }
}

// ---- the session's adapters ----

// Cleaned microphone frames for one session; the source thread only.
class LaneAudio::Source final : public VoiceSource {
public:
    Source(LaneAudio& audio, std::size_t frame) : audio_(audio), frame_(frame) {}
    ~Source() override { audio_.uplink_open_.store(false, std::memory_order_release); }

    SourceRead read(audio::Span<float> out, Clock::time_point& captured) override {
        // The first read opens the uplink: the session hears nothing older than itself.
        if (!opened_) {
            audio_.uplink_open_.store(true, std::memory_order_release);
            auto stale = audio_.uplink_->read_regions(audio_.uplink_->capacity());
            audio_.uplink_->commit_read(stale.size());
            opened_ = true;
        }
        std::size_t got = 0;
        while (got < out.size()) {
            if (stopped_.load(std::memory_order_relaxed)) {
                return SourceRead::end;
            }
            got += audio_.uplink_->try_pop_bulk(out.subspan(got, out.size() - got));
            if (got < out.size()) {
                std::this_thread::sleep_for(milliseconds(2));
            }
        }
        captured = Clock::now();
        return SourceRead::frame;
    }

    bool realtime() const override { return true; }
    void stop() override { stopped_.store(true, std::memory_order_relaxed); }
    double fill_ms() const override {
        return static_cast<double>(audio_.uplink_->size()) * 1000.0 / audio_.options_.rate;
    }

private:
    LaneAudio& audio_;
    std::size_t frame_;
    bool opened_ = false;
    std::atomic<bool> stopped_{false};
};

// The speaker for one session; the playout thread, except the const getters.
class LaneAudio::Sink final : public VoiceSink {
public:
    explicit Sink(LaneAudio& audio)
        : audio_(audio), cushion_(static_cast<std::size_t>(audio.options_.rate / 25), 0.0f) {}

    int sample_rate() const override { return audio_.options_.rate; }

    std::error_code write(audio::Span<const float> pcm) override {
        // Marks for the silence timeout and the time to first audio.
        if (level_dbfs(pcm) > -50.0f) {
            const auto now = to_ns(Clock::now());
            audio_.last_agent_ns_.store(now, std::memory_order_relaxed);
            std::int64_t unset = 0;
            audio_.first_agent_ns_.compare_exchange_strong(unset, now);
        }

        // Without a device the reply is lost (counted); with one, wait (bounded) for room.
        auto generation = audio_.core_->snapshot();
        if (!generation) {
            audio_.metrics_.playback_dropped.inc();
            return {};
        }
        // An empty speaker queue: the start of a reply gets a cushion of silence, so that the
        // playout thread waking a little late does not let the speaker run dry; in the middle
        // of a reply it ran dry already (an underrun; the device's own count would also count
        // the end of every reply).
        const auto now = Clock::now();
        if (generation->io->queued_samples() == 0) {
            if (now - last_write_ < milliseconds(60)) {
                audio_.metrics_.playback_underruns.inc();
            }
            (void)generation->io->write(audio::Span<const float>(cushion_));
        }
        last_write_ = now;
        std::size_t taken = 0;
        for (int tries = 0; taken < pcm.size() && tries < 50; ++tries) {
            taken += generation->io->write(pcm.subspan(taken, pcm.size() - taken));
            if (taken < pcm.size()) {
                std::this_thread::sleep_for(milliseconds(2));
            }
        }
        if (taken < pcm.size()) {
            audio_.metrics_.playback_dropped.inc();
        }
        return {};
    }

    void fade_out_and_flush(audio::Span<const float>) override {
        auto generation = audio_.core_->snapshot();
        if (!generation) {
            return;
        }
        generation->io->fade_out_and_flush();
        const auto deadline = Clock::now() + milliseconds(200);
        while (!generation->io->flush_done() && Clock::now() < deadline) {
            std::this_thread::sleep_for(milliseconds(1));
        }
    }

    std::uint64_t written_samples() const override {
        auto generation = audio_.core_->snapshot();
        return played_samples() + (generation ? generation->io->queued_samples() : 0);
    }

    std::uint64_t played_samples() const override {
        auto generation = audio_.core_->snapshot();
        return audio_.core_->played_base.load(std::memory_order_relaxed) +
               (generation ? generation->io->played_samples() : 0);
    }

private:
    LaneAudio& audio_;
    const std::vector<float> cushion_;  // 40 ms of silence
    Clock::time_point last_write_{};    // playout thread
};

// ---- LaneAudio ----

LaneAudio::LaneAudio(LaneAudioOptions options, std::unique_ptr<PostDevices> devices,
                     LaneMetrics& metrics, Events events)
    : options_(options),
      metrics_(metrics),
      core_(std::make_shared<Core>(std::move(options), std::move(devices), metrics,
                                   std::move(events))),
      uplink_(std::make_unique<audio::SpscRing<float>>(kUplinkSamples)) {}

LaneAudio::~LaneAudio() {
    stop();
}

void LaneAudio::start() {
    if (started_) {
        return;
    }
    started_ = true;
    core_->beat();
    core_->exited = core_->exited_promise.get_future();
    core_->thread = std::thread([core = core_] {
        Core::run(core);
        core->exited_promise.set_value();
    });
    audio_thread_ = std::thread([this] { run_audio(); });
}

void LaneAudio::stop() {
    if (!started_ || stopping_.exchange(true)) {
        return;
    }

    // The audio worker never blocks on a device: it ends within a frame or two.
    if (audio_thread_.joinable()) {
        audio_thread_.join();
    }

    // The device thread closes the devices; it may be stuck in the driver, so wait bounded.
    {
        std::lock_guard lock(core_->mutex);
        core_->stopping = true;
    }
    core_->wake.notify_all();
    const auto bound = options_.close_within + milliseconds(1000);
    if (core_->exited.wait_for(bound) == std::future_status::ready) {
        core_->thread.join();
        return;
    }

    // TODO: the device thread is stuck inside the audio driver; it is left behind with the core
    // it shares (so nothing it touches goes away) and the process is expected to exit soon.
    {
        std::lock_guard lock(core_->mutex);
        core_->abandoned = true;
    }
    core_->logger->error("the audio device thread did not finish within {} ms; leaving it",
                         bound.count());
    core_->thread.detach();
}

std::unique_ptr<VoiceSource> LaneAudio::session_source(int frame_ms) {
    return std::make_unique<Source>(*this,
                                    static_cast<std::size_t>(options_.rate * frame_ms / 1000));
}

std::unique_ptr<VoiceSink> LaneAudio::session_sink() {
    first_agent_ns_.store(0, std::memory_order_relaxed);
    return std::make_unique<Sink>(*this);
}

void LaneAudio::set_recorder(SessionRecorder* recorder) {
    std::lock_guard lock(recorder_mutex_);
    recorder_ = recorder;
    speaker_pending_.clear();
}

DeviceState LaneAudio::device_state() const {
    return core_->state.load(std::memory_order_acquire);
}

Clock::time_point LaneAudio::last_customer_speech() const {
    return from_ns(last_speech_ns_.load(std::memory_order_relaxed));
}

Clock::time_point LaneAudio::last_agent_audio() const {
    return from_ns(last_agent_ns_.load(std::memory_order_relaxed));
}

Clock::time_point LaneAudio::first_agent_audio_after(Clock::time_point since) const {
    const auto first = first_agent_ns_.load(std::memory_order_relaxed);
    return first != 0 && from_ns(first) >= since ? from_ns(first) : Clock::time_point{};
}

// ---- audio worker ----

void LaneAudio::run_audio() {
    std::vector<float> frame(static_cast<std::size_t>(options_.rate / 100));
    while (!stopping_.load(std::memory_order_relaxed)) {
        // No device: keep ticking (progress only while the device thread is not stuck).
        auto generation = core_->snapshot();
        if (!generation) {
            std::this_thread::sleep_for(milliseconds(10));
            if (core_->responsive()) {
                progress_.fetch_add(1, std::memory_order_relaxed);
            }
            continue;
        }

        // A new opening starts from now: what the microphone queued before the canceller was
        // ready would pair with the wrong speaker frames.
        if (generation.get() != processing_) {
            processing_ = generation.get();
            while (generation->io->read_frame(frame, milliseconds(0)) == frame.size()) {
            }
        }

        // One 10 ms frame, or a short read when the device stalls.
        const std::size_t got = generation->io->read_frame(frame, milliseconds(40));
        if (stalled(*generation)) {
            continue;
        }
        if (got == frame.size()) {
            process_frame(frame, *generation);
            progress_.fetch_add(1, std::memory_order_relaxed);
        }
    }
}

bool LaneAudio::stalled(const DeviceGeneration& generation) {
    // Either callback standing still for stall_after means the device is gone or stuck.
    const auto capture = generation.io->capture_stats().callbacks;
    const auto playback = generation.io->playback_stats().callbacks;
    const auto now = Clock::now();
    if (watched_ != &generation || capture != capture_calls_ || playback != playback_calls_) {
        watched_ = &generation;
        capture_calls_ = capture;
        playback_calls_ = playback;
        calls_moved_ = now;
        return false;
    }
    if (now - calls_moved_ < options_.stall_after) {
        return false;
    }
    watched_ = nullptr;
    core_->request_loss(
        "no audio callback for " +
        std::to_string(std::chrono::duration_cast<milliseconds>(now - calls_moved_).count()) +
        " ms (device unplugged, busy or stalled)");
    return true;
}

void LaneAudio::process_frame(audio::Span<float> frame, DeviceGeneration& generation) {
    // Clean the frame: the canceller first takes every speaker frame played before it.
    if (generation.processor->process_capture(frame)) {
        metrics_.capture_dropped.inc();
        return;
    }
    frames_.fetch_add(1, std::memory_order_relaxed);
    metrics_.capture_frames.inc();

    // Is the customer speaking? The VAD when it is on, else the level.
    const bool voice = options_.processing.vad ? generation.processor->stats().voice
                                               : level_dbfs(frame) > options_.speech_dbfs;
    detect_voice(voice);

    // To the session, when one listens, and to the recording.
    if (uplink_open_.load(std::memory_order_acquire) &&
        uplink_->try_push_bulk(audio::Span<const float>(frame.data(), frame.size())) <
            frame.size()) {
        metrics_.capture_dropped.inc();
    }
    record(frame, generation);
    publish(generation);
}

void LaneAudio::detect_voice(bool voice) {
    // Voice accumulates and silence drains it at half the rate: short pauses do not reset it.
    if (restart_voice_.exchange(false, std::memory_order_acq_rel)) {
        voiced_ms_ = 0;
    }
    if (voice) {
        last_speech_ns_.store(to_ns(Clock::now()), std::memory_order_relaxed);
        voiced_ms_ += 10;
    } else {
        voiced_ms_ = std::max(0, voiced_ms_ - 5);
    }
    if (voiced_ms_ >= options_.voice_to_arrive.count() &&
        arrival_armed_.exchange(false, std::memory_order_acq_rel)) {
        voiced_ms_ = 0;
        if (core_->events.voice_arrival) {
            core_->events.voice_arrival();
        }
    }
}

void LaneAudio::record(audio::Span<const float> customer, DeviceGeneration& generation) {
    // The speaker's samples played since the last frame, at the lane's rate.
    float tapped[2048];
    std::size_t n = 0;
    std::lock_guard lock(recorder_mutex_);
    while ((n = generation.speaker.try_pop_bulk(audio::Span<float>(tapped, 2048))) > 0) {
        if (recorder_ == nullptr) {
            continue;  // nobody records: just keep the ring empty
        }
        const std::size_t start = speaker_pending_.size();
        speaker_pending_.resize(start + generation.speaker_to_lane->output_size(n) + 16);
        std::size_t consumed = 0, produced = 0;
        generation.speaker_to_lane->process(
            audio::Span<const float>(tapped, n),
            audio::Span<float>(speaker_pending_.data() + start, speaker_pending_.size() - start),
            consumed, produced);
        speaker_pending_.resize(start + produced);
    }
    if (recorder_ == nullptr) {
        return;
    }

    // One frame of each, side by side; the speaker side runs a frame behind at most.
    std::vector<float>& pending = speaker_pending_;
    const std::size_t take = std::min(pending.size(), customer.size());
    float agent[960] = {};
    std::copy_n(pending.begin(), take, agent);
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(take));
    if (pending.size() > 4 * customer.size()) {
        pending.erase(pending.begin(),
                      pending.end() - static_cast<std::ptrdiff_t>(customer.size()));
    }
    recorder_->push_audio(customer, audio::Span<const float>(agent, customer.size()));
}

void LaneAudio::publish(const DeviceGeneration& generation) {
    // The processor's figures and the devices' counters, twice a second.
    if (++frames_since_publish_ < kFramesPerPublish) {
        return;
    }
    frames_since_publish_ = 0;
    metrics_.publish(generation.processor->stats());
    const auto capture = generation.io->capture_stats();
    if (capture.ring_overflows >= overflows_seen_ && capture.device_rate > 0) {
        const auto per_frame = static_cast<std::uint64_t>(capture.device_rate / 100);
        metrics_.capture_dropped.inc((capture.ring_overflows - overflows_seen_) / per_frame);
    }
    overflows_seen_ = capture.ring_overflows;
}

}  // namespace olympus::lane
