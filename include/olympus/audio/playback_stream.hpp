// Speaker playback through PortAudio. The playout thread writes codec-rate PCM (resampled to
// the device rate) into an SPSC ring; the device's audio callback only copies it out, counts
// what the device consumed, and honours a fade-out-and-flush request for barge-in.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <vector>

#include "olympus/audio/device.hpp"
#include "olympus/audio/device_stream_config.hpp"
#include "olympus/audio/error.hpp"
#include "olympus/audio/resampler.hpp"
#include "olympus/audio/spsc_ring.hpp"
#include "olympus/audio/stream_stats.hpp"

struct PaStreamCallbackTimeInfo;

namespace olympus::audio {

/// A hook that sees exactly the samples handed to the device, at the device rate, from the
/// playback callback: the echo canceller's reference. `fn` must obey the callback contract (no
/// allocation, lock, log, system call or exception), e.g. VoiceProcessor::push_far_end().
struct PlaybackTap {
    void (*fn)(void* context, const float* samples, std::size_t count) noexcept = nullptr;
    void* context = nullptr;
};

/// Threads: open/start/stop on the setup thread; write() on one playout thread; the PortAudio
/// callback on the device's thread; fade_out_and_flush(), played_samples(), flush_done() and
/// stats() on any thread.
class PlaybackStream {
public:
    /// Finds the device, chooses its rate (the codec rate if it accepts it, else its default),
    /// and opens a mono stream at the lowest latency it accepts. Not started yet.
    /// `tap`, when set, sees every buffer the callback hands to the device.
    static Result<std::unique_ptr<PlaybackStream>> open(const DeviceStreamConfig& config,
                                                        PlaybackTap tap = {});

    ~PlaybackStream();
    PlaybackStream(const PlaybackStream&) = delete;
    PlaybackStream& operator=(const PlaybackStream&) = delete;

    std::error_code start();
    std::error_code stop();

    /// Playout thread. Resamples `pcm` (codec rate) into the ring; returns how many of its
    /// samples were taken (fewer when the ring is full: call again later). Never blocks.
    std::size_t write(Span<const float> pcm) noexcept;

    /// Device samples queued and not yet played.
    std::size_t queued() const noexcept { return ring_.size(); }

    /// Barge-in, any thread: the callback fades the current output to silence over fade_ms,
    /// then discards everything queued. flush_done() turns true when that has happened.
    void fade_out_and_flush() noexcept;
    bool flush_done() const noexcept { return flushed_.load(std::memory_order_acquire); }

    /// Samples the device has consumed from the ring (device rate), and that in ms: what the
    /// listener actually heard, for played_ms after a barge-in.
    std::uint64_t played_samples() const noexcept {
        return played_.load(std::memory_order_acquire);
    }
    double played_ms() const noexcept;

    StreamStats stats() const noexcept;
    const DeviceInfo& device() const noexcept { return device_; }

private:
    PlaybackStream(PortAudioLibrary library, DeviceInfo device, const DeviceStreamConfig& config,
                   int device_rate, Resampler resampler, PlaybackTap tap);

    /// The PortAudio callback. Contract: runs on the device's real-time thread and must not
    /// allocate, lock, log, make system calls or throw. It only copies samples out of ring_,
    /// applies the fade, and bumps atomic counters.
    static int on_audio(const void* input, void* output, unsigned long frames,
                        const PaStreamCallbackTimeInfo* time_info, unsigned long status_flags,
                        void* self) noexcept;
    void fill(float* out, std::size_t frames) noexcept;

    // Setup thread.
    PortAudioLibrary library_;
    DeviceInfo device_;
    DeviceStreamConfig config_;
    int device_rate_ = 0;
    void* stream_ = nullptr;  // PaStream*
    std::atomic<double> latency_ms_{0};
    const PlaybackTap tap_;  // called by the audio callback

    // Playout thread -> audio callback.
    SpscRing<float> ring_;

    // Playout thread only.
    Resampler resampler_;
    std::vector<float> scratch_;

    // Any thread -> callback: fade request (set by fade_out_and_flush, taken by the callback).
    std::atomic<bool> fade_requested_{false};
    std::atomic<bool> flushed_{false};

    // Audio callback only.
    std::size_t fade_left_ = 0;  // samples of fade still to apply, 0 = not fading
    std::size_t fade_length_ = 0;
    bool had_audio_ = false;  // the previous callback played ring samples

    // Bumped by the callback (relaxed unless stated), read by stats().
    std::atomic<std::uint64_t> callbacks_{0}, played_{0} /* release */, underruns_{0}, xruns_{0};
    // Bumped by the playout thread.
    std::atomic<std::uint64_t> samples_in_{0};
};

}  // namespace olympus::audio
