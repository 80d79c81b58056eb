// libopus decoder wrapper and a reader for the FEC flag of SILK frames; see opus_decoder.hpp.
// Playout thread.
#include "olympus/audio/opus_decoder.hpp"

#include <string>

#include <opus.h>

#include "olympus/audio/opus_encoder.hpp"

namespace olympus::audio {
namespace {

// Just enough of the Opus range decoder (RFC 6716, section 4.1) to read the first few
// one-bit flags of a SILK frame.
class RangeDecoder {
public:
    RangeDecoder(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {
        previous_ = next_byte();
        range_ = 128;
        value_ = 127 - (previous_ >> 1);
        normalize();
    }

    // Decodes one flag whose probability of being 1 is 1 / 2^logp.
    bool bit(unsigned logp) {
        const std::uint32_t split = range_ >> logp;
        const bool one = value_ < split;
        if (one) {
            range_ = split;
        } else {
            value_ -= split;
            range_ -= split;
        }
        normalize();
        return one;
    }

private:
    std::uint32_t next_byte() { return pos_ < size_ ? data_[pos_++] : 0; }

    void normalize() {
        while (range_ <= (1u << 23)) {
            const std::uint32_t byte = next_byte();
            const std::uint32_t symbol = ((previous_ << 8) | byte) >> 1;
            previous_ = byte;
            range_ <<= 8;
            value_ = ((value_ << 8) + (255 - (symbol & 255))) & 0x7FFFFFFF;
        }
    }

    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
    std::uint32_t previous_ = 0;
    std::uint32_t range_ = 0;
    std::uint32_t value_ = 0;
};

}  // namespace

void OpusDecoder::Deleter::operator()(::OpusDecoder* decoder) const noexcept {
    opus_decoder_destroy(decoder);
}

OpusDecoder::OpusDecoder(std::unique_ptr<::OpusDecoder, Deleter> state, int sample_rate,
                         int channels)
    : state_(std::move(state)), sample_rate_(sample_rate), channels_(channels) {}

Result<OpusDecoder> OpusDecoder::create(int sample_rate, int channels) {
    if (!is_opus_rate(sample_rate)) {
        return Error{make_error_code(errc::unsupported_rate),
                     "opus decoder sample_rate=" + std::to_string(sample_rate)};
    }
    if (channels != 1 && channels != 2) {
        return Error{make_error_code(errc::unsupported_channels),
                     "opus decoder channels=" + std::to_string(channels)};
    }
    int status = OPUS_OK;
    std::unique_ptr<::OpusDecoder, Deleter> state(
        opus_decoder_create(sample_rate, channels, &status));
    if (status != OPUS_OK) {
        return Error{make_opus_error(status), "opus_decoder_create"};
    }
    return OpusDecoder(std::move(state), sample_rate, channels);
}

std::error_code OpusDecoder::decode(Span<const std::uint8_t> packet, Span<float> out,
                                    int& samples) noexcept {
    if (packet.empty()) {
        return make_error_code(errc::corrupt_packet);
    }
    const int result =
        opus_decode_float(state_.get(), packet.data(), static_cast<opus_int32>(packet.size()),
                          out.data(), static_cast<int>(out.size()) / channels_, 0);
    if (result < 0) {
        samples = 0;
        return make_opus_error(result);
    }
    samples = result;
    return {};
}

std::error_code OpusDecoder::decode_fec(Span<const std::uint8_t> next_packet,
                                        Span<float> out) noexcept {
    const int result = opus_decode_float(state_.get(), next_packet.data(),
                                         static_cast<opus_int32>(next_packet.size()), out.data(),
                                         static_cast<int>(out.size()) / channels_, 1);
    return result < 0 ? make_opus_error(result) : std::error_code{};
}

std::error_code OpusDecoder::conceal(Span<float> out) noexcept {
    const int result = opus_decode_float(state_.get(), nullptr, 0, out.data(),
                                         static_cast<int>(out.size()) / channels_, 0);
    return result < 0 ? make_opus_error(result) : std::error_code{};
}

bool opus_packet_has_fec(Span<const std::uint8_t> packet) noexcept {
    // Find the first frame of the packet; FEC lives in SILK and hybrid frames only.
    unsigned char toc = 0;
    const unsigned char* frames[48] = {};
    opus_int16 sizes[48] = {};
    const int count = opus_packet_parse(packet.data(), static_cast<opus_int32>(packet.size()), &toc,
                                        frames, sizes, nullptr);
    const int config = toc >> 3;
    if (count < 1 || config >= 16 || sizes[0] == 0) {
        return false;
    }

    // A SILK frame starts with one voice-activity flag per 20 ms sub-frame, then the LBRR
    // (FEC) flag of the first channel (RFC 6716, section 4.2.3).
    const int duration_index = config < 12 ? config % 4 : 0;
    const int subframes = duration_index == 2 ? 2 : duration_index == 3 ? 3 : 1;
    RangeDecoder decoder(frames[0], static_cast<std::size_t>(sizes[0]));
    for (int i = 0; i < subframes; ++i) {
        decoder.bit(1);
    }
    return decoder.bit(1);
}

int opus_packet_samples(Span<const std::uint8_t> packet, int sample_rate) noexcept {
    return opus_packet_get_nb_samples(packet.data(), static_cast<opus_int32>(packet.size()),
                                      sample_rate);
}

}  // namespace olympus::audio
