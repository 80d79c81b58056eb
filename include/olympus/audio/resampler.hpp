// Sample-rate conversion of a mono float stream with speexdsp. Created at setup time; then used
// by one thread at a time (the capture or playout worker, or the file source).
#pragma once

#include <cstddef>
#include <memory>

#include "olympus/audio/error.hpp"
#include "olympus/audio/span.hpp"

struct SpeexResamplerState_;

namespace olympus::audio {

/// Streams mono float samples from one rate to another. When the rates are equal it copies.
class Resampler {
public:
    /// `quality` is speexdsp's 0 (fastest) .. 10 (best); 5 is its VoIP default.
    static Result<Resampler> create(int input_rate, int output_rate, int quality = 5);

    /// Converts as much of `in` as fits in `out`: `consumed` input samples were used and
    /// `produced` output samples written. Does not allocate.
    void process(Span<const float> in, Span<float> out, std::size_t& consumed,
                 std::size_t& produced) noexcept;

    /// Output samples that `input_samples` input samples turn into, rounded up.
    std::size_t output_size(std::size_t input_samples) const noexcept;

    /// The converter's delay in output samples.
    int latency() const noexcept;

    int input_rate() const noexcept { return input_rate_; }
    int output_rate() const noexcept { return output_rate_; }

private:
    struct Deleter {
        void operator()(SpeexResamplerState_* state) const noexcept;
    };

    Resampler(std::unique_ptr<SpeexResamplerState_, Deleter> state, int input_rate,
              int output_rate);

    std::unique_ptr<SpeexResamplerState_, Deleter> state_;  // null when the rates are equal
    int input_rate_ = 0;
    int output_rate_ = 0;
};

}  // namespace olympus::audio
