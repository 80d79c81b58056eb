// Microphone capture through PortAudio. The device's audio callback only copies samples into an
// SPSC ring and bumps counters; the capture worker thread reads them back, resampled to the
// codec rate.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
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

/// Threads: open/start/stop on the setup thread; read()/read_frame() on one capture worker
/// thread; the PortAudio callback on the device's thread; stats() on any thread.
class CaptureStream {
public:
    /// Finds the device, chooses its rate (the codec rate if it accepts it, else its default),
    /// and opens a mono stream at the lowest latency it accepts. Not started yet.
    static Result<std::unique_ptr<CaptureStream>> open(const DeviceStreamConfig& config);

    ~CaptureStream();
    CaptureStream(const CaptureStream&) = delete;
    CaptureStream& operator=(const CaptureStream&) = delete;

    std::error_code start();
    std::error_code stop();

    /// Capture worker. Moves up to out.size() codec-rate samples into `out`; returns how
    /// many. Never blocks.
    std::size_t read(Span<float> out) noexcept;

    /// Capture worker. Fills all of `out` unless `timeout` passes first (polls every 2 ms);
    /// returns how many samples were written.
    std::size_t read_frame(Span<float> out, std::chrono::milliseconds timeout);

    StreamStats stats() const noexcept;
    const DeviceInfo& device() const noexcept { return device_; }

private:
    CaptureStream(PortAudioLibrary library, DeviceInfo device, const DeviceStreamConfig& config,
                  int device_rate, Resampler resampler);

    /// The PortAudio callback. Contract: runs on the device's real-time thread and must not
    /// allocate, lock, log, make system calls or throw. It only copies `frames` samples into
    /// ring_ and bumps atomic counters.
    static int on_audio(const void* input, void* output, unsigned long frames,
                        const PaStreamCallbackTimeInfo* time_info, unsigned long status_flags,
                        void* self) noexcept;

    // Setup thread.
    PortAudioLibrary library_;
    DeviceInfo device_;
    DeviceStreamConfig config_;
    int device_rate_ = 0;
    void* stream_ = nullptr;  // PaStream*
    std::atomic<double> latency_ms_{0};

    // Audio callback -> capture worker.
    SpscRing<float> ring_;

    // Capture worker only.
    Resampler resampler_;
    std::vector<float> scratch_;
    std::size_t scratch_pos_ = 0;
    std::size_t scratch_len_ = 0;

    // Bumped by the callback (relaxed), read by stats().
    std::atomic<std::uint64_t> callbacks_{0}, samples_in_{0}, xruns_{0};
    // Bumped by the capture worker (relaxed).
    std::atomic<std::uint64_t> samples_out_{0};
};

}  // namespace olympus::audio
