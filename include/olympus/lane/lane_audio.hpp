// The lane's audio at the post, running from start-up to shutdown whether a session is on or
// not: the microphone is read and cleaned (echo cancellation against exactly what the speaker
// was handed, with the devices' reported delay; noise suppression, gain control, voice
// detection), a car is recognised by its driver's voice, and a session borrows the cleaned
// microphone and the speaker through a VoiceSource and a VoiceSink. Devices that fail to open,
// vanish or stall are closed (with a bounded wait) and reopened with backoff; a session carries
// on meanwhile (no audio up, replies dropped).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "olympus/audio/voice_processor.hpp"
#include "olympus/lane/lane_config.hpp"
#include "olympus/lane/lane_metrics.hpp"
#include "olympus/lane/post_devices.hpp"
#include "olympus/lane/session_recorder.hpp"
#include "olympus/voice_io.hpp"

namespace olympus::lane {

struct DeviceGeneration;

/// The devices' side of the lane.
///
///   opening ──devices run──► running ──error, vanished, stalled──► lost ──backoff──► opening
enum class DeviceState { opening, running, lost };
const char* to_string(DeviceState state);

struct LaneAudioOptions {
    int rate = 16000;                                ///< microphone, speaker and codec rate, Hz
    LaneConfig::AudioProcessing processing;          ///< the canceller and friends, from the config
    std::chrono::milliseconds voice_to_arrive{300};  ///< voice that counts as a car
    std::chrono::milliseconds retry_initial{250};    ///< first reopen after a loss
    std::chrono::milliseconds retry_max{10'000};     ///< backoff cap between reopen attempts
    std::chrono::milliseconds stall_after{500};      ///< no device callback this long: lost
    std::chrono::milliseconds close_within{2'000};   ///< a close that takes longer is abandoned
    /// With voice detection off, a frame this loud counts as the customer speaking.
    float speech_dbfs = -45;
};

/// Threads:
///   * constructor, start(), stop(), session_source(), session_sink(), set_recorder(): the lane
///     agent's thread.
///   * the device thread (its own): opens, closes and reopens the devices; PortAudio is only
///     ever called there, and a call into it may block (a stalled JACK client).
///   * the audio worker (its own): reads the microphone, runs the processor, detects voice and
///     stalls, feeds the session's uplink and the recorder. It never blocks on a device.
///   * the speaker callback: only the far-end tap (wait-free rings).
///   * the session's source and playout threads: the VoiceSource and VoiceSink adapters.
///   * the getters: any thread.
///
///   mic callback ─► capture ring ─► audio worker ─► VoiceProcessor ─► uplink ring ─► session
///   session playout ─► sink ─► speaker ring ─► speaker callback ─tap─► processor, recorder
class LaneAudio {
public:
    struct Events {
        /// Audio worker: a car's driver spoke while arrivals were armed (disarms). Must not
        /// block.
        std::function<void()> voice_arrival;
        /// Device thread: the devices opened, or were lost (with the reason). Must not block.
        std::function<void(DeviceState state, const std::string& why)> device_changed;
    };

    /// `metrics` must outlive the LaneAudio. Nothing runs before start().
    LaneAudio(LaneAudioOptions options, std::unique_ptr<PostDevices> devices, LaneMetrics& metrics,
              Events events);
    ~LaneAudio();  ///< stop()
    LaneAudio(const LaneAudio&) = delete;
    LaneAudio& operator=(const LaneAudio&) = delete;

    /// Starts the device thread and the audio worker.
    void start();
    /// Stops both and closes the devices; a device thread stuck in the driver is abandoned
    /// after a bounded wait (logged). Idempotent.
    void stop();

    /// A source of cleaned microphone frames for one session, `frame_ms` each, starting with
    /// the first frame read (nothing older). One at a time.
    std::unique_ptr<VoiceSource> session_source(int frame_ms);
    /// The speaker for one session, at rate(). One at a time.
    std::unique_ptr<VoiceSink> session_sink();
    /// Feeds `recorder` (customer and agent, 10 ms at a time) until set_recorder(nullptr),
    /// which returns once the audio worker let go of it.
    void set_recorder(SessionRecorder* recorder);

    /// While armed, the driver's voice fires Events::voice_arrival once; only voice heard
    /// after arming counts.
    void arm_arrival(bool armed) {
        if (armed && !arrival_armed_.load(std::memory_order_acquire)) {
            restart_voice_.store(true, std::memory_order_release);
        }
        arrival_armed_.store(armed, std::memory_order_release);
    }

    DeviceState device_state() const;
    int rate() const { return options_.rate; }
    /// When the customer last spoke, and when the speaker last played the agent; steady clock.
    std::chrono::steady_clock::time_point last_customer_speech() const;
    std::chrono::steady_clock::time_point last_agent_audio() const;
    /// When the agent was first heard since `since` (zero time point: not yet).
    std::chrono::steady_clock::time_point first_agent_audio_after(
        std::chrono::steady_clock::time_point since) const;

    /// Advances while the pipeline is healthy: frames flow, or the device thread is busy
    /// retrying, not stuck in the driver (for longer than max(5 s, 3 x close_within) in one
    /// call, or waiting for an abandoned close). The watchdog reads it.
    std::uint64_t progress() const { return progress_.load(std::memory_order_relaxed); }
    /// Microphone frames (10 ms) processed since start.
    std::uint64_t frames_processed() const { return frames_.load(std::memory_order_relaxed); }

    struct Core;  // shared with the device thread, which may outlive the LaneAudio (abandoned)
    class Source;
    class Sink;

private:
    void run_audio();
    void process_frame(audio::Span<float> frame, DeviceGeneration& generation);
    void detect_voice(bool voice);
    void record(audio::Span<const float> customer, DeviceGeneration& generation);
    bool stalled(const DeviceGeneration& generation);
    void publish(const DeviceGeneration& generation);

    const LaneAudioOptions options_;
    LaneMetrics& metrics_;
    std::shared_ptr<Core> core_;

    // Audio worker <-> session source: cleaned microphone samples.
    std::unique_ptr<audio::SpscRing<float>> uplink_;
    std::atomic<bool> uplink_open_{false};
    std::atomic<bool> arrival_armed_{false};
    std::atomic<bool> restart_voice_{false};  // the worker forgets the voice heard so far

    // Agent thread <-> audio worker.
    std::mutex recorder_mutex_;
    SessionRecorder* recorder_ = nullptr;  // guarded by recorder_mutex_

    // Written by the audio worker and the sink, read anywhere (steady-clock nanoseconds).
    std::atomic<std::int64_t> last_speech_ns_{0}, last_agent_ns_{0}, first_agent_ns_{0};
    std::atomic<std::uint64_t> progress_{0}, frames_{0};

    // Audio worker only.
    int voiced_ms_ = 0;
    std::uint64_t capture_calls_ = 0, playback_calls_ = 0;
    std::chrono::steady_clock::time_point calls_moved_{};
    const DeviceGeneration* watched_ = nullptr;     // the generation the stall clock is for
    const DeviceGeneration* processing_ = nullptr;  // the generation frames are processed for
    std::vector<float> speaker_pending_;
    std::uint64_t overflows_seen_ = 0;
    std::uint64_t frames_since_publish_ = 0;

    std::atomic<bool> stopping_{false};
    std::thread audio_thread_;
    bool started_ = false;
};

}  // namespace olympus::lane
