// Capture-path processing for a speakerphone post: acoustic echo cancellation against the audio
// handed to the speaker, noise suppression, automatic gain control and voice activity detection,
// on 10 ms frames (webrtc-audio-processing). The playout thread hands over far-end frames; the
// capture worker cleans the microphone frames; stats may be read from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <vector>

#include "olympus/audio/error.hpp"
#include "olympus/audio/span.hpp"
#include "olympus/audio/spsc_ring.hpp"

namespace olympus::audio {

/// Error values are webrtc-audio-processing's AudioProcessing::Error values (kBadSampleRateError,
/// ...); message() names them.
const std::error_category& apm_category() noexcept;

/// How hard the canceller's non-linear stage suppresses residual echo. Stronger suppression
/// removes more of a distorted echo (cheap speakers driven hard) but also more of a customer
/// who talks over the agent.
enum class EchoSuppression { low, moderate, high };

/// What the processor does. Each stage can be switched off on its own.
struct VoiceProcessorConfig {
    /// Rate of the microphone frames, in Hz: 8000, 16000, 32000 or 48000 (the codec rates 16 and
    /// 48 kHz run natively, no resampling).
    int sample_rate = 16000;
    /// Rate of the far-end (speaker) frames, in Hz, from the same list; 0 means sample_rate.
    int far_end_rate = 0;

    /// Acoustic echo cancellation against the far-end frames (webrtc AEC).
    bool echo_cancellation = true;
    EchoSuppression echo_suppression = EchoSuppression::moderate;
    /// Stationary noise suppression (engines idling, fans).
    bool noise_suppression = true;
    /// Adaptive digital gain towards -3 dBFS peak with a limiter, so quiet talkers are heard.
    bool gain_control = true;
    /// Per-frame speech / no-speech decision (webrtc VAD); see VoiceProcessorStats::voice.
    bool voice_detection = true;

    /// Milliseconds between push_far_end() receiving a frame and the microphone frame that
    /// holds its echo reaching process_capture(): output latency + acoustic path + input
    /// latency of the device. 0 .. 500.
    int delay_ms = 0;
    /// Lets the canceller search for the delay itself as well (webrtc "delay agnostic" mode),
    /// for devices whose reported latency is not trustworthy.
    bool delay_agnostic = false;
};

/// A snapshot of the processor's measures. Values that are not measured (stage off, not enough
/// data yet) are NaN (the float ones) or -1 (the delay).
struct VoiceProcessorStats {
    /// Echo return loss enhancement in dB: how much the canceller removed from the echo in the
    /// microphone signal (webrtc's running average, updated about once a second).
    float erle_db = 0;
    /// Echo return loss in dB: far-end power over echo power at the microphone.
    float erl_db = 0;
    /// The canceller's own delay estimate, median over about a second, in ms. It shifts when
    /// delay_ms is off (offline: 16 ms with the right delay, -36 ms with delay_ms 60 ms too
    /// long); its search range is limited, so a grossly wrong delay_ms shows as a low ERLE.
    int delay_median_ms = -1;
    /// Spread of that estimate in ms.
    int delay_std_ms = -1;
    /// The noise suppressor's probability that the last frame held speech, 0..1.
    float speech_probability = 0;
    /// The VAD decision for the last frame.
    bool voice = false;

    std::uint64_t frames_processed = 0;   ///< microphone frames through process_capture()
    std::uint64_t voice_frames = 0;       ///< of those, frames the VAD called speech
    std::uint64_t far_end_frames = 0;     ///< far-end frames fed to the canceller
    std::uint64_t far_end_dropped = 0;    ///< far-end samples lost because the ring was full
    std::uint64_t processing_errors = 0;  ///< frames the library refused (see last error)
};

/// Threads:
///   * create(), destructor: setup thread, with both other threads stopped.
///   * push_far_end(): the playout thread (PortAudio callback or playout worker) - exactly the
///     samples written to the speaker, at far_end_rate. It only copies into an SPSC ring.
///   * process_capture(), set_delay_ms(): the capture worker, one 10 ms frame at a time. It first
///     feeds the canceller the far-end frame that pairs with this microphone frame (the k-th
///     speaker frame since the far end began goes with the k-th microphone frame from then on),
///     then cleans the microphone frame. So the library itself is only ever called from this one
///     thread.
///   * stats(): any thread (relaxed atomics written by the capture worker).
///
///   playout thread --push_far_end--> [SPSC ring of far-end samples]
///                                              |
///   capture worker --process_capture--> drain ring -> AEC reference -> AEC/NS/AGC/VAD -> out
class VoiceProcessor {
public:
    /// Builds the processing chain; fails with errc::unsupported_rate or errc::invalid_argument
    /// for values outside the legal ranges, or an apm_category() error from the library.
    static Result<std::unique_ptr<VoiceProcessor>> create(const VoiceProcessorConfig& config);

    ~VoiceProcessor();
    VoiceProcessor(const VoiceProcessor&) = delete;
    VoiceProcessor& operator=(const VoiceProcessor&) = delete;

    /// Samples per channel in one 10 ms microphone frame (sample_rate / 100).
    std::size_t frame_size() const noexcept { return frame_size_; }
    /// Samples per channel in one 10 ms far-end frame (far_end_rate / 100).
    std::size_t far_end_frame_size() const noexcept { return far_frame_size_; }

    /// Playout thread. Queues speaker samples (any count, floats in [-1, 1]) as the echo
    /// reference. Contract: safe on the audio callback - no allocation, lock, log, system call
    /// or exception. Returns how many were queued; the rest are counted in far_end_dropped.
    std::size_t push_far_end(Span<const float> samples) noexcept;

    /// Capture worker. Cleans one microphone frame of exactly frame_size() samples in place.
    /// Does not allocate. Errors: errc::invalid_argument for a wrong frame size, else the
    /// library's code (the frame is then left as it came in).
    std::error_code process_capture(Span<float> frame) noexcept;

    /// Capture worker. Updates the device delay (clamped to 0 .. 500 ms), e.g. when the device
    /// reports a new latency after a restart.
    void set_delay_ms(int delay_ms) noexcept;

    /// Any thread.
    VoiceProcessorStats stats() const noexcept;

    const VoiceProcessorConfig& config() const noexcept { return config_; }

private:
    struct Engine;

    VoiceProcessor(const VoiceProcessorConfig& config, std::unique_ptr<Engine> engine);

    void feed_far_end() noexcept;
    void publish_stats() noexcept;

    // Set at creation, read by every thread.
    const VoiceProcessorConfig config_;
    const std::size_t frame_size_;
    const std::size_t far_frame_size_;

    // Playout thread writes, capture worker reads.
    SpscRing<float> far_ring_;

    // Capture worker only.
    std::unique_ptr<Engine> engine_;
    std::vector<float> far_frame_;
    int delay_ms_ = 0;
    std::uint64_t frames_since_metrics_ = 0;
    std::uint64_t mic_frames_ = 0;  // microphone frames processed
    std::uint64_t far_fed_ = 0;     // speaker frames fed to the canceller
    std::int64_t far_shift_ = 0;    // speaker frame j pairs with microphone frame j + far_shift_
    bool far_anchored_ = false;

    // Written by the capture worker (relaxed), read by stats() anywhere.
    std::atomic<float> erle_db_;
    std::atomic<float> erl_db_;
    std::atomic<int> delay_median_ms_{-1};
    std::atomic<int> delay_std_ms_{-1};
    std::atomic<float> speech_probability_;
    std::atomic<bool> voice_{false};
    std::atomic<std::uint64_t> frames_processed_{0};
    std::atomic<std::uint64_t> voice_frames_{0};
    std::atomic<std::uint64_t> far_end_frames_{0};
    std::atomic<std::uint64_t> processing_errors_{0};
};

}  // namespace olympus::audio
