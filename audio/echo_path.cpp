// The simulated speaker-to-microphone path; see echo_path.hpp.
#include "olympus/audio/echo_path.hpp"

#include <cmath>
#include <string>

namespace olympus::audio {

Result<EchoPath> EchoPath::create(const EchoPathConfig& config) {
    // Bound every input so that a typo in a test cannot allocate gigabytes.
    const bool bad_rate = config.sample_rate <= 0 || config.sample_rate > 192000;
    const bool bad_delay = !(config.delay_ms >= 0 && config.delay_ms <= 1000);
    const bool bad_gain = !(config.gain_db <= 20);
    const bool bad_taps =
        config.impulse_response.size() > static_cast<std::size_t>(config.sample_rate);
    if (bad_rate || bad_delay || bad_gain || bad_taps) {
        return Error{make_error_code(errc::invalid_argument),
                     "echo path rate=" + std::to_string(config.sample_rate) +
                         " delay_ms=" + std::to_string(config.delay_ms) +
                         " gain_db=" + std::to_string(config.gain_db) +
                         " taps=" + std::to_string(config.impulse_response.size())};
    }

    // Fold the gain into the taps once, so that coupling is a plain FIR.
    std::vector<float> taps = config.impulse_response;
    if (taps.empty()) {
        taps.push_back(1.0f);
    }
    const double gain = std::pow(10.0, config.gain_db / 20.0);
    for (float& tap : taps) {
        tap = static_cast<float>(double{tap} * gain);
    }
    const auto delay =
        static_cast<std::size_t>(std::lround(config.delay_ms * config.sample_rate / 1000.0));
    return EchoPath(delay, std::move(taps));
}

EchoPath::EchoPath(std::size_t delay, std::vector<float> taps)
    : delay_(delay), taps_(std::move(taps)), history_(delay_ + taps_.size(), 0.0f) {}

void EchoPath::couple(Span<const float> far_end, Span<float> near_end) noexcept {
    const std::size_t count = far_end.size() < near_end.size() ? far_end.size() : near_end.size();
    const std::size_t length = history_.size();
    for (std::size_t i = 0; i < count; ++i) {
        // Remember this far-end sample, then sum the taps over the delayed past.
        history_[write_] = far_end[i];
        double echo = 0;
        for (std::size_t k = 0; k < taps_.size(); ++k) {
            const std::size_t back = delay_ + k;
            echo += double{taps_[k]} * double{history_[(write_ + length - back) % length]};
        }
        near_end[i] += static_cast<float>(echo);
        write_ = (write_ + 1) % length;
    }
}

std::vector<float> EchoPath::echo_of(Span<const float> far_end) {
    std::vector<float> echo(far_end.size(), 0.0f);
    couple(far_end, Span<float>(echo));
    return echo;
}

}  // namespace olympus::audio
