// Tests of the Opus encoder and decoder wrappers on synthesised speech: alignment and fidelity
// of a round trip, configuration errors, corrupt packets, FEC and PLC.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "olympus/audio/opus_decoder.hpp"
#include "olympus/audio/opus_encoder.hpp"

#include "speech.hpp"

namespace olympus::audio {
namespace {

// Encodes and decodes `input` frame by frame; `lost` frame indices are concealed with FEC
// (when `use_fec`) or PLC instead of decoded.
std::vector<float> round_trip(const std::vector<float>& input, const EncoderConfig& config,
                              const std::vector<std::size_t>& lost = {}, bool use_fec = false) {
    auto encoder = OpusEncoder::create(config);
    auto decoder = OpusDecoder::create(config.sample_rate);
    EXPECT_TRUE(encoder && decoder);
    const auto frame = static_cast<std::size_t>(encoder.value().frame_samples());
    const std::size_t frames = input.size() / frame;

    std::vector<EncodedFrame> packets(frames);
    for (std::size_t i = 0; i < frames; ++i) {
        EXPECT_FALSE(
            encoder.value().encode(Span<const float>(&input[i * frame], frame), packets[i]));
    }
    std::vector<float> output(frames * frame);
    for (std::size_t i = 0; i < frames; ++i) {
        Span<float> out(&output[i * frame], frame);
        const bool is_lost = std::find(lost.begin(), lost.end(), i) != lost.end();
        if (is_lost && use_fec && i + 1 < frames) {
            EXPECT_FALSE(decoder.value().decode_fec(packets[i + 1].payload(), out));
        } else if (is_lost) {
            EXPECT_FALSE(decoder.value().conceal(out));
        } else {
            int samples = 0;
            EXPECT_FALSE(decoder.value().decode(packets[i].payload(), out, samples));
            EXPECT_EQ(samples, static_cast<int>(frame));
        }
    }
    return output;
}

TEST(OpusCodec, RoundTripOfSpeechIsAlignedAtCodecDelay) {
    // Speech through a 24 kb/s, 48 kHz VOIP encoder comes back delayed by the encoder's
    // look-ahead (within the 3 samples the SILK resampler adds) and correlates above 0.9 with
    // the input at that delay.
    const auto& input = test::speech(48000);
    EncoderConfig config;
    config.bitrate = 24000;
    config.complexity = 10;
    auto encoder = OpusEncoder::create(config);
    ASSERT_TRUE(encoder);
    const long lookahead = encoder.value().lookahead();
    EXPECT_EQ(lookahead, 312);  // 6.5 ms at 48 kHz

    const auto output = round_trip(input, config);
    const long delay = test::best_lag(input, output, 0, 960);
    EXPECT_NEAR(delay, lookahead, 4);
    EXPECT_GT(test::correlation(input, output, delay), 0.9);
}

TEST(OpusCodec, LowDelayModeHasShorterLookahead) {
    // Restricted-low-delay mode delays 2.5 ms and still tracks the input closely.
    const auto& input = test::speech(48000);
    EncoderConfig config;
    config.mode = OpusMode::restricted_low_delay;
    config.bitrate = 32000;
    config.frame_ms = 10;
    auto encoder = OpusEncoder::create(config);
    ASSERT_TRUE(encoder);
    EXPECT_EQ(encoder.value().lookahead(), 120);
    const auto output = round_trip(input, config);
    EXPECT_GT(test::correlation(input, output, 120), 0.85);
}

TEST(OpusCodec, EveryFrameSizeAndRateRoundTrips) {
    // Each legal frame length at each Opus rate encodes and decodes whole frames of speech.
    for (int rate : {8000, 12000, 16000, 24000, 48000}) {
        const auto& input = test::speech(rate);
        for (int frame_ms : {10, 20, 40, 60}) {
            EncoderConfig config;
            config.sample_rate = rate;
            config.frame_ms = frame_ms;
            config.bitrate = 16000;
            const auto output = round_trip(input, config);
            const auto frame = static_cast<std::size_t>(rate * frame_ms / 1000);
            EXPECT_EQ(output.size(), input.size() / frame * frame);
            auto encoder = OpusEncoder::create(config);
            EXPECT_GT(test::correlation(input, output, encoder.value().lookahead()), 0.7)
                << "rate=" << rate << " frame_ms=" << frame_ms;
        }
    }
}

TEST(OpusCodec, RejectsBadConfigurationNamingTheValue) {
    // Unsupported rates, channel counts and frame sizes are refused with the value named.
    EncoderConfig config;
    config.sample_rate = 44100;
    auto bad_rate = OpusEncoder::create(config);
    ASSERT_FALSE(bad_rate);
    EXPECT_EQ(bad_rate.error().code, errc::unsupported_rate);
    EXPECT_NE(bad_rate.error().what().find("44100"), std::string::npos);

    config = EncoderConfig{};
    config.frame_ms = 25;
    auto bad_frame = OpusEncoder::create(config);
    ASSERT_FALSE(bad_frame);
    EXPECT_NE(bad_frame.error().what().find("frame_ms=25"), std::string::npos);

    auto bad_channels = OpusDecoder::create(48000, 3);
    ASSERT_FALSE(bad_channels);
    EXPECT_EQ(bad_channels.error().code, errc::unsupported_channels);
}

TEST(OpusCodec, CorruptPacketIsReportedWithOpusMessage) {
    // A packet of garbage comes back as Opus's "corrupted stream" error; the next good packet
    // still decodes.
    auto encoder = OpusEncoder::create(EncoderConfig{});
    auto decoder = OpusDecoder::create(48000);
    ASSERT_TRUE(encoder && decoder);
    std::vector<float> pcm = test::sine(440, 0.3, 48000, 960);
    EncodedFrame packet;
    ASSERT_FALSE(encoder.value().encode(pcm, packet));

    const std::uint8_t garbage[] = {0xFF, 0xFF, 0xFF};  // code 3, 63 frames, no data
    std::vector<float> out(960);
    int samples = 0;
    const auto error = decoder.value().decode(Span<const std::uint8_t>(garbage, 3), out, samples);
    EXPECT_EQ(error.category(), opus_category());
    EXPECT_NE(error.message().find("corrupt"), std::string::npos) << error.message();

    EXPECT_FALSE(decoder.value().decode(packet.payload(), out, samples));
    EXPECT_EQ(samples, 960);
}

TEST(OpusCodec, FecFlagIsSeenOnlyInFecStreams) {
    // Packets from an encoder with in-band FEC carry the FEC flag; without FEC they never do.
    const auto& input = test::speech(16000);
    for (bool fec : {true, false}) {
        EncoderConfig config;
        config.sample_rate = 16000;
        config.bitrate = 24000;
        config.inband_fec = fec;
        config.expected_loss_percent = fec ? 20 : 0;
        auto encoder = OpusEncoder::create(config);
        ASSERT_TRUE(encoder);
        int flagged = 0;
        const int frames = static_cast<int>(input.size() / 320);
        for (int i = 0; i < frames; ++i) {
            EncodedFrame packet;
            ASSERT_FALSE(encoder.value().encode(
                Span<const float>(&input[static_cast<std::size_t>(i) * 320], 320), packet));
            flagged += opus_packet_has_fec(packet.payload()) ? 1 : 0;
        }
        if (fec) {
            EXPECT_GT(flagged, frames / 2);
        } else {
            EXPECT_EQ(flagged, 0);
        }
    }
}

TEST(OpusCodec, FecRebuildsLostFramesBetterThanPlc) {
    // Every 7th frame of speech is lost; rebuilding it from the next packet's FEC is closer to
    // the clean decode than concealing it.
    const auto& input = test::speech(16000);
    EncoderConfig config;
    config.sample_rate = 16000;
    config.bitrate = 24000;
    config.inband_fec = true;
    config.expected_loss_percent = 20;
    std::vector<std::size_t> lost;
    for (std::size_t i = 10; i < input.size() / 320 - 2; i += 7) {
        lost.push_back(i);
    }
    const auto clean = round_trip(input, config);
    const auto with_fec = round_trip(input, config, lost, true);
    const auto with_plc = round_trip(input, config, lost, false);

    double fec_snr = 0, plc_snr = 0;
    for (std::size_t i : lost) {
        fec_snr += test::snr_db(&clean[i * 320], &with_fec[i * 320], 320);
        plc_snr += test::snr_db(&clean[i * 320], &with_plc[i * 320], 320);
    }
    fec_snr /= static_cast<double>(lost.size());
    plc_snr /= static_cast<double>(lost.size());
    EXPECT_GT(fec_snr, plc_snr + 3.0) << "fec=" << fec_snr << " plc=" << plc_snr;
    EXPECT_GT(fec_snr, 3.0);
}

}  // namespace
}  // namespace olympus::audio
