// speexdsp resampler wrapper; see resampler.hpp. One thread at a time.
#include "olympus/audio/resampler.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include <speex/speex_resampler.h>

namespace olympus::audio {

void Resampler::Deleter::operator()(SpeexResamplerState_* state) const noexcept {
    speex_resampler_destroy(state);
}

Resampler::Resampler(std::unique_ptr<SpeexResamplerState_, Deleter> state, int input_rate,
                     int output_rate)
    : state_(std::move(state)), input_rate_(input_rate), output_rate_(output_rate) {}

Result<Resampler> Resampler::create(int input_rate, int output_rate, int quality) {
    // Rates outside what a voice pipeline meets are most likely a bad file header.
    for (int rate : {input_rate, output_rate}) {
        if (rate < 1000 || rate > 384000) {
            return Error{make_error_code(errc::unsupported_rate),
                         "resampler rate=" + std::to_string(rate)};
        }
    }
    if (quality < 0 || quality > 10) {
        return Error{make_error_code(errc::invalid_argument),
                     "resampler quality=" + std::to_string(quality)};
    }
    if (input_rate == output_rate) {
        return Resampler(nullptr, input_rate, output_rate);
    }

    int status = RESAMPLER_ERR_SUCCESS;
    std::unique_ptr<SpeexResamplerState_, Deleter> state(
        speex_resampler_init(1, static_cast<spx_uint32_t>(input_rate),
                             static_cast<spx_uint32_t>(output_rate), quality, &status));
    if (status != RESAMPLER_ERR_SUCCESS || !state) {
        return Error{make_error_code(errc::resampler_failed),
                     "resampler " + std::to_string(input_rate) + "->" +
                         std::to_string(output_rate) + ": " + speex_resampler_strerror(status)};
    }
    speex_resampler_skip_zeros(state.get());
    return Resampler(std::move(state), input_rate, output_rate);
}

void Resampler::process(Span<const float> in, Span<float> out, std::size_t& consumed,
                        std::size_t& produced) noexcept {
    if (!state_) {
        consumed = produced = std::min(in.size(), out.size());
        std::memcpy(out.data(), in.data(), produced * sizeof(float));
        return;
    }
    auto in_len = static_cast<spx_uint32_t>(in.size());
    auto out_len = static_cast<spx_uint32_t>(out.size());
    speex_resampler_process_float(state_.get(), 0, in.data(), &in_len, out.data(), &out_len);
    consumed = in_len;
    produced = out_len;
}

std::size_t Resampler::output_size(std::size_t input_samples) const noexcept {
    const auto in = static_cast<unsigned long long>(input_samples);
    return static_cast<std::size_t>(
        (in * static_cast<unsigned>(output_rate_) + static_cast<unsigned>(input_rate_) - 1) /
        static_cast<unsigned>(input_rate_));
}

int Resampler::latency() const noexcept {
    return state_ ? speex_resampler_get_output_latency(state_.get()) : 0;
}

}  // namespace olympus::audio
