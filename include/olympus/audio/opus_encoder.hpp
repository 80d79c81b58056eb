// RAII wrapper around a libopus encoder for one mono or stereo stream. Created at setup time on
// any thread; encode() then runs on the encoder thread only (one thread at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>

#include "olympus/audio/encoded_frame.hpp"
#include "olympus/audio/error.hpp"
#include "olympus/audio/span.hpp"

struct OpusEncoder;

namespace olympus::audio {

/// Opus application mode.
enum class OpusMode {
    voip,                  ///< speech-tuned (OPUS_APPLICATION_VOIP), 6.5 ms look-ahead
    restricted_low_delay,  ///< CELT only (OPUS_APPLICATION_RESTRICTED_LOWDELAY), 2.5 ms
};

struct EncoderConfig {
    int sample_rate = 48000;  ///< 8000, 12000, 16000, 24000 or 48000 Hz
    int channels = 1;         ///< 1 or 2
    int frame_ms = 20;        ///< 10, 20, 40 or 60 ms
    int bitrate = 24000;      ///< bits per second, 6000..510000
    int complexity = 5;       ///< 0 (cheapest) .. 10 (best)
    OpusMode mode = OpusMode::voip;
    bool inband_fec = false;        ///< add redundancy that lets the receiver rebuild a lost frame
    int expected_loss_percent = 0;  ///< 0..100; the encoder spends FEC bits according to it
    bool dtx = false;               ///< send (almost) nothing during silence
};

/// Encodes frames of exactly frame_samples() samples per channel, interleaved float in
/// [-1, 1].
class OpusEncoder {
public:
    /// Validates `config` and creates the encoder. Errors name the offending value.
    static Result<OpusEncoder> create(const EncoderConfig& config);

    /// Encodes one frame into `out.bytes`; sets out.size (a size of 1 or 2 bytes is a DTX
    /// frame). Returns Opus's error, or errc::invalid_argument when pcm.size() is not
    /// frame_samples() * channels. Does not allocate.
    std::error_code encode(Span<const float> pcm, EncodedFrame& out) noexcept;

    /// Samples per channel in one frame.
    int frame_samples() const noexcept { return frame_samples_; }

    /// The encoder's algorithmic delay in samples per channel (OPUS_GET_LOOKAHEAD).
    int lookahead() const noexcept { return lookahead_; }

    const EncoderConfig& config() const noexcept { return config_; }

private:
    struct Deleter {
        void operator()(::OpusEncoder* encoder) const noexcept;
    };

    OpusEncoder(std::unique_ptr<::OpusEncoder, Deleter> state, const EncoderConfig& config);

    std::unique_ptr<::OpusEncoder, Deleter> state_;
    EncoderConfig config_;
    int frame_samples_ = 0;
    int lookahead_ = 0;
};

/// True when `rate` is one of the rates Opus codes at.
bool is_opus_rate(int rate) noexcept;

}  // namespace olympus::audio
