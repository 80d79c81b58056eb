// RAII wrapper around a libopus decoder, with packet loss concealment and in-band FEC recovery.
// Created at setup time on any thread; then used by the playout thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <system_error>

#include "olympus/audio/error.hpp"
#include "olympus/audio/span.hpp"

struct OpusDecoder;

namespace olympus::audio {

/// Decodes Opus packets to interleaved float samples in [-1, 1].
class OpusDecoder {
public:
    /// `sample_rate` is one of 8000, 12000, 16000, 24000, 48000; `channels` 1 or 2.
    static Result<OpusDecoder> create(int sample_rate, int channels = 1);

    /// Decodes `packet` into `out` and sets `samples` (per channel). `out` must hold the
    /// packet's duration. A corrupt packet returns Opus's error (OPUS_INVALID_PACKET) and
    /// leaves `out` untouched; the caller conceals it with conceal().
    std::error_code decode(Span<const std::uint8_t> packet, Span<float> out, int& samples) noexcept;

    /// Rebuilds the frame that was lost just before `next_packet` from the redundancy the
    /// encoder put into `next_packet` (in-band FEC). Fills all of `out` (one frame). When the
    /// packet carries no FEC data, libopus falls back to concealment.
    std::error_code decode_fec(Span<const std::uint8_t> next_packet, Span<float> out) noexcept;

    /// Fills `out` (one frame) by packet loss concealment: a continuation of the last decoded
    /// audio that decays towards silence over consecutive calls.
    std::error_code conceal(Span<float> out) noexcept;

    int sample_rate() const noexcept { return sample_rate_; }
    int channels() const noexcept { return channels_; }

private:
    struct Deleter {
        void operator()(::OpusDecoder* decoder) const noexcept;
    };

    OpusDecoder(std::unique_ptr<::OpusDecoder, Deleter> state, int sample_rate, int channels);

    std::unique_ptr<::OpusDecoder, Deleter> state_;
    int sample_rate_ = 0;
    int channels_ = 0;
};

/// True when the first frame of `packet` carries in-band FEC data (SILK LBRR) for the frame
/// before it. False for CELT-only packets, packets without FEC and unparsable packets.
bool opus_packet_has_fec(Span<const std::uint8_t> packet) noexcept;

/// Samples per channel in `packet` at `sample_rate`, or a negative Opus error.
int opus_packet_samples(Span<const std::uint8_t> packet, int sample_rate) noexcept;

}  // namespace olympus::audio
