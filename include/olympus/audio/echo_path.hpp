// A simulated speaker-to-microphone coupling: the far-end audio, delayed, attenuated and shaped by
// a short impulse response (the box), added to the near-end audio. For offline echo tests and for
// end-to-end sessions run without a real post. One thread at a time.
#pragma once

#include <cstddef>
#include <vector>

#include "olympus/audio/error.hpp"
#include "olympus/audio/span.hpp"

namespace olympus::audio {

/// The acoustic path between a speaker and a microphone in one box.
struct EchoPathConfig {
    int sample_rate = 16000;  ///< Hz, > 0
    double delay_ms = 40;     ///< bulk delay of the path, 0 .. 1000 ms
    double gain_db = -6;      ///< level of the echo relative to the far end, <= +20 dB
    /// Taps applied after the delay (reflections inside the box), at sample_rate. Empty means a
    /// single unit tap. At most one second long.
    std::vector<float> impulse_response;
};

/// Streams echo into near-end audio. couple() may be called with any block sizes; the output
/// is the same as if the whole signal had been processed at once. Not thread-safe.
class EchoPath {
public:
    /// errc::invalid_argument for values outside the ranges above.
    static Result<EchoPath> create(const EchoPathConfig& config);

    /// Adds the echo of `far_end` (the samples played during this block) into `near_end`, in
    /// place. Both spans must be the same length; extra samples of the longer one are ignored.
    void couple(Span<const float> far_end, Span<float> near_end) noexcept;

    /// The echo alone of `far_end`, for tests that need the echo signal itself.
    std::vector<float> echo_of(Span<const float> far_end);

    /// Samples of bulk delay.
    std::size_t delay_samples() const noexcept { return delay_; }

private:
    EchoPath(std::size_t delay, std::vector<float> taps);

    std::size_t delay_ = 0;
    std::vector<float> taps_;     // impulse response times the gain
    std::vector<float> history_;  // the last delay_ + taps_.size() far-end samples, circular
    std::size_t write_ = 0;       // next slot of history_ to write
};

}  // namespace olympus::audio
