// PortAudio playback from an SPSC ring, with fade-out-and-flush; see playback_stream.hpp.
#include "olympus/audio/playback_stream.hpp"

#include <algorithm>

#include <portaudio.h>

#include "device_stream.hpp"

namespace olympus::audio {

Result<std::unique_ptr<PlaybackStream>> PlaybackStream::open(const DeviceStreamConfig& config,
                                                             PlaybackTap tap) {
    // PortAudio, the device, its rate and the converter from the codec rate.
    auto prepared = detail::prepare_device(Direction::playback, config);
    if (!prepared) {
        return prepared.error();
    }
    auto& p = prepared.value();
    std::unique_ptr<PlaybackStream> self(
        new PlaybackStream(std::move(p.library), std::move(p.device), config, p.device_rate,
                           std::move(p.resampler), tap));

    // Open the device stream with the callback bound to the new object.
    PaStream* stream = nullptr;
    double latency_ms = 0;
    Error error;
    if (detail::open_stream(Direction::playback, self->device_, self->device_rate_, config,
                            &PlaybackStream::on_audio, self.get(), stream, latency_ms, error)) {
        return error;
    }
    self->stream_ = stream;
    self->latency_ms_.store(latency_ms, std::memory_order_relaxed);
    return self;
}

PlaybackStream::PlaybackStream(PortAudioLibrary library, DeviceInfo device,
                               const DeviceStreamConfig& config, int device_rate,
                               Resampler resampler, PlaybackTap tap)
    : library_(std::move(library)),
      device_(std::move(device)),
      config_(config),
      device_rate_(device_rate),
      tap_(tap),
      ring_(config.ring_samples),
      resampler_(std::move(resampler)),
      scratch_(4096),
      fade_length_(static_cast<std::size_t>(std::max(1, device_rate * config.fade_ms / 1000))) {}

PlaybackStream::~PlaybackStream() {
    detail::close_stream(stream_);
}

std::error_code PlaybackStream::start() {
    return detail::start_stream(stream_);
}

std::error_code PlaybackStream::stop() {
    return detail::stop_stream(stream_);
}

std::size_t PlaybackStream::write(Span<const float> pcm) noexcept {
    std::size_t taken = 0;
    while (taken < pcm.size()) {
        // Convert only as much as the ring can take now, so nothing converted is lost.
        auto free = ring_.write_regions(ring_.capacity());
        const std::size_t room = std::min(free.size(), scratch_.size());
        if (room < 16) {
            break;
        }
        std::size_t consumed = 0, produced = 0;
        resampler_.process(pcm.subspan(taken, pcm.size() - taken),
                           Span<float>(scratch_.data(), room - 8), consumed, produced);
        const std::size_t pushed =
            ring_.try_push_bulk(Span<const float>(scratch_.data(), produced));
        samples_in_.fetch_add(pushed, std::memory_order_relaxed);
        taken += consumed;
        if (consumed == 0) {
            break;
        }
    }
    return taken;
}

void PlaybackStream::fade_out_and_flush() noexcept {
    flushed_.store(false, std::memory_order_relaxed);
    fade_requested_.store(true, std::memory_order_release);
}

double PlaybackStream::played_ms() const noexcept {
    return static_cast<double>(played_samples()) * 1000.0 / device_rate_;
}

int PlaybackStream::on_audio(const void*, void* output, unsigned long frames,
                             const PaStreamCallbackTimeInfo*, unsigned long status_flags,
                             void* user) noexcept {
    auto* self = static_cast<PlaybackStream*>(user);
    self->callbacks_.fetch_add(1, std::memory_order_relaxed);
    if ((status_flags & (paOutputUnderflow | paOutputOverflow)) != 0) {
        self->xruns_.fetch_add(1, std::memory_order_relaxed);
    }
    self->fill(static_cast<float*>(output), frames);
    return paContinue;
}

void PlaybackStream::fill(float* out, std::size_t frames) noexcept {
    // Take queued samples; a ring that runs dry after playing audio is an underrun.
    const std::size_t got = ring_.try_pop_bulk(Span<float>(out, frames));
    std::fill(out + got, out + frames, 0.0f);
    if (got < frames && had_audio_) {
        underruns_.fetch_add(1, std::memory_order_relaxed);
    }
    had_audio_ = got == frames;

    // A barge-in request starts a linear fade from the first sample of this buffer.
    if (fade_requested_.exchange(false, std::memory_order_acquire)) {
        fade_left_ = fade_length_;
    }
    if (fade_left_ > 0) {
        for (std::size_t i = 0; i < frames; ++i) {
            out[i] *= fade_left_ > 0 ? static_cast<float>(fade_left_) / fade_length_ : 0.0f;
            fade_left_ -= fade_left_ > 0 ? 1 : 0;
        }
        // Faded out: drop everything still queued and report it.
        if (fade_left_ == 0) {
            auto queued = ring_.read_regions(ring_.capacity());
            ring_.commit_read(queued.size());
            had_audio_ = false;
            flushed_.store(true, std::memory_order_release);
        }
    }
    played_.fetch_add(got, std::memory_order_release);

    // The echo canceller's reference: exactly what the device is handed, fade included.
    if (tap_.fn != nullptr) {
        tap_.fn(tap_.context, out, frames);
    }
}

StreamStats PlaybackStream::stats() const noexcept {
    StreamStats s;
    s.callbacks = callbacks_.load(std::memory_order_relaxed);
    s.samples_in = samples_in_.load(std::memory_order_relaxed);
    s.samples_out = played_.load(std::memory_order_relaxed);
    s.ring_overflows = ring_.overflows();
    s.underruns = underruns_.load(std::memory_order_relaxed);
    s.device_xruns = xruns_.load(std::memory_order_relaxed);
    s.ring_fill = ring_.size();
    s.ring_peak = ring_.peak_fill();
    s.latency_ms = latency_ms_.load(std::memory_order_relaxed);
    s.device_rate = device_rate_;
    return s;
}

}  // namespace olympus::audio
