// PortAudio capture into an SPSC ring, resampled on the reader's side; see capture_stream.hpp.
#include "olympus/audio/capture_stream.hpp"

#include <thread>

#include <portaudio.h>

#include "device_stream.hpp"

namespace olympus::audio {

Result<std::unique_ptr<CaptureStream>> CaptureStream::open(const DeviceStreamConfig& config) {
    // PortAudio, the device, its rate and the converter back to the codec rate.
    auto prepared = detail::prepare_device(Direction::capture, config);
    if (!prepared) {
        return prepared.error();
    }
    auto& p = prepared.value();
    std::unique_ptr<CaptureStream> self(new CaptureStream(
        std::move(p.library), std::move(p.device), config, p.device_rate, std::move(p.resampler)));

    // Open the device stream with the callback bound to the new object.
    PaStream* stream = nullptr;
    double latency_ms = 0;
    Error error;
    if (detail::open_stream(Direction::capture, self->device_, self->device_rate_, config,
                            &CaptureStream::on_audio, self.get(), stream, latency_ms, error)) {
        return error;
    }
    self->stream_ = stream;
    self->latency_ms_.store(latency_ms, std::memory_order_relaxed);
    return self;
}

CaptureStream::CaptureStream(PortAudioLibrary library, DeviceInfo device,
                             const DeviceStreamConfig& config, int device_rate, Resampler resampler)
    : library_(std::move(library)),
      device_(std::move(device)),
      config_(config),
      device_rate_(device_rate),
      ring_(config.ring_samples),
      resampler_(std::move(resampler)),
      scratch_(4096) {}

CaptureStream::~CaptureStream() {
    detail::close_stream(stream_);
}

std::error_code CaptureStream::start() {
    return detail::start_stream(stream_);
}

std::error_code CaptureStream::stop() {
    return detail::stop_stream(stream_);
}

int CaptureStream::on_audio(const void* input, void*, unsigned long frames,
                            const PaStreamCallbackTimeInfo*, unsigned long status_flags,
                            void* user) noexcept {
    auto* self = static_cast<CaptureStream*>(user);
    self->callbacks_.fetch_add(1, std::memory_order_relaxed);
    if ((status_flags & (paInputOverflow | paInputUnderflow)) != 0) {
        self->xruns_.fetch_add(1, std::memory_order_relaxed);
    }
    if (input != nullptr) {
        const std::size_t pushed =
            self->ring_.try_push_bulk(Span<const float>(static_cast<const float*>(input), frames));
        self->samples_in_.fetch_add(pushed, std::memory_order_relaxed);
    }
    return paContinue;
}

std::size_t CaptureStream::read(Span<float> out) noexcept {
    std::size_t written = 0;
    while (written < out.size()) {
        // Take more device samples from the ring when the last batch is used up.
        if (scratch_pos_ == scratch_len_) {
            scratch_len_ = ring_.try_pop_bulk(Span<float>(scratch_));
            scratch_pos_ = 0;
            if (scratch_len_ == 0) {
                break;
            }
        }

        // Convert what is there into the caller's buffer.
        std::size_t consumed = 0, produced = 0;
        resampler_.process(
            Span<const float>(scratch_.data() + scratch_pos_, scratch_len_ - scratch_pos_),
            out.subspan(written, out.size() - written), consumed, produced);
        scratch_pos_ += consumed;
        written += produced;
        if (consumed == 0 && produced == 0) {
            break;
        }
    }
    samples_out_.fetch_add(written, std::memory_order_relaxed);
    return written;
}

std::size_t CaptureStream::read_frame(Span<float> out, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t filled = read(out);
    while (filled < out.size() && std::chrono::steady_clock::now() < deadline) {
        // TODO: wake on a semaphore from the callback instead of polling; polling adds up to
        // 2 ms of delay and wakes the worker 500 times a second.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        filled += read(out.subspan(filled, out.size() - filled));
    }
    return filled;
}

StreamStats CaptureStream::stats() const noexcept {
    StreamStats s;
    s.callbacks = callbacks_.load(std::memory_order_relaxed);
    s.samples_in = samples_in_.load(std::memory_order_relaxed);
    s.samples_out = samples_out_.load(std::memory_order_relaxed);
    s.ring_overflows = ring_.overflows();
    s.device_xruns = xruns_.load(std::memory_order_relaxed);
    s.ring_fill = ring_.size();
    s.ring_peak = ring_.peak_fill();
    s.latency_ms = latency_ms_.load(std::memory_order_relaxed);
    s.device_rate = device_rate_;
    return s;
}

}  // namespace olympus::audio
