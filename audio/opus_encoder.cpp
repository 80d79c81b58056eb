// libopus encoder wrapper; see opus_encoder.hpp. Encoder thread.
#include "olympus/audio/opus_encoder.hpp"

#include <string>

#include <opus.h>

namespace olympus::audio {
namespace {

Error bad_value(const char* what, int value) {
    return Error{make_error_code(errc::invalid_argument),
                 std::string("opus encoder ") + what + "=" + std::to_string(value)};
}

// Checks every field against the ranges libopus accepts, naming the first bad one.
std::error_code validate(const EncoderConfig& c, Error& error) {
    if (!is_opus_rate(c.sample_rate)) {
        error = Error{make_error_code(errc::unsupported_rate),
                      "opus encoder sample_rate=" + std::to_string(c.sample_rate)};
    } else if (c.channels != 1 && c.channels != 2) {
        error = Error{make_error_code(errc::unsupported_channels),
                      "opus encoder channels=" + std::to_string(c.channels)};
    } else if (c.frame_ms != 10 && c.frame_ms != 20 && c.frame_ms != 40 && c.frame_ms != 60) {
        error = bad_value("frame_ms", c.frame_ms);
    } else if (c.bitrate < 6000 || c.bitrate > 510000) {
        error = bad_value("bitrate", c.bitrate);
    } else if (c.complexity < 0 || c.complexity > 10) {
        error = bad_value("complexity", c.complexity);
    } else if (c.expected_loss_percent < 0 || c.expected_loss_percent > 100) {
        error = bad_value("expected_loss_percent", c.expected_loss_percent);
    } else {
        return {};
    }
    return error.code;
}

}  // namespace

bool is_opus_rate(int rate) noexcept {
    return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

void OpusEncoder::Deleter::operator()(::OpusEncoder* encoder) const noexcept {
    opus_encoder_destroy(encoder);
}

OpusEncoder::OpusEncoder(std::unique_ptr<::OpusEncoder, Deleter> state, const EncoderConfig& config)
    : state_(std::move(state)),
      config_(config),
      frame_samples_(config.sample_rate * config.frame_ms / 1000) {
    opus_int32 lookahead = 0;
    opus_encoder_ctl(state_.get(), OPUS_GET_LOOKAHEAD(&lookahead));
    lookahead_ = lookahead;
}

Result<OpusEncoder> OpusEncoder::create(const EncoderConfig& config) {
    // Refuse bad values before libopus sees them, so the message names the field.
    Error error;
    if (validate(config, error)) {
        return error;
    }

    // Create the state, then apply each setting; any refusal carries Opus's message.
    const int application = config.mode == OpusMode::voip ? OPUS_APPLICATION_VOIP
                                                          : OPUS_APPLICATION_RESTRICTED_LOWDELAY;
    int status = OPUS_OK;
    std::unique_ptr<::OpusEncoder, Deleter> state(
        opus_encoder_create(config.sample_rate, config.channels, application, &status));
    if (status != OPUS_OK) {
        return Error{make_opus_error(status), "opus_encoder_create"};
    }
    ::OpusEncoder* st = state.get();
    const int results[] = {
        opus_encoder_ctl(st, OPUS_SET_BITRATE(config.bitrate)),
        opus_encoder_ctl(st, OPUS_SET_COMPLEXITY(config.complexity)),
        opus_encoder_ctl(st, OPUS_SET_INBAND_FEC(config.inband_fec ? 1 : 0)),
        opus_encoder_ctl(st, OPUS_SET_PACKET_LOSS_PERC(config.expected_loss_percent)),
        opus_encoder_ctl(st, OPUS_SET_DTX(config.dtx ? 1 : 0)),
        opus_encoder_ctl(st, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE)),
    };
    for (int result : results) {
        if (result != OPUS_OK) {
            return Error{make_opus_error(result), "opus_encoder_ctl"};
        }
    }
    return OpusEncoder(std::move(state), config);
}

std::error_code OpusEncoder::encode(Span<const float> pcm, EncodedFrame& out) noexcept {
    if (pcm.size() != static_cast<std::size_t>(frame_samples_ * config_.channels)) {
        return make_error_code(errc::invalid_argument);
    }
    const opus_int32 bytes = opus_encode_float(state_.get(), pcm.data(), frame_samples_,
                                               out.bytes.data(), kMaxOpusPacketBytes);
    if (bytes < 0) {
        out.size = 0;
        return make_opus_error(bytes);
    }
    out.size = static_cast<std::uint16_t>(bytes);
    return {};
}

}  // namespace olympus::audio
