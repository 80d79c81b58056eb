// Tests of the jitter buffer on a simulated clock: steady, bursty, late, lost and corrupt
// packets of real speech, checked against a clean decode of the same packets.
#include "olympus/audio/jitter_buffer.hpp"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "olympus/audio/opus_decoder.hpp"
#include "olympus/audio/opus_encoder.hpp"

#include "speech.hpp"

namespace olympus::audio {
namespace {

using Clock = JitterBuffer::Clock;
using std::chrono::milliseconds;
constexpr std::size_t kFrame = 960;  // 20 ms at 48 kHz

// Speech encoded in 20 ms packets, and the clean decode of every packet.
struct Stream {
    std::vector<EncodedFrame> packets;
    std::vector<float> clean;
};

Stream encode_speech(bool fec) {
    const auto& speech = test::speech(48000);
    EncoderConfig config;
    config.bitrate = 32000;
    config.inband_fec = fec;
    config.expected_loss_percent = fec ? 20 : 0;
    auto encoder = OpusEncoder::create(config);
    auto decoder = OpusDecoder::create(48000);
    Stream stream;
    for (std::size_t i = 0; i + kFrame <= speech.size(); i += kFrame) {
        EncodedFrame packet;
        EXPECT_FALSE(encoder.value().encode(Span<const float>(&speech[i], kFrame), packet));
        stream.packets.push_back(packet);
        std::vector<float> pcm(kFrame);
        int samples = 0;
        EXPECT_FALSE(decoder.value().decode(packet.payload(), pcm, samples));
        stream.clean.insert(stream.clean.end(), pcm.begin(), pcm.end());
    }
    return stream;
}

// Drives a jitter buffer: packet i arrives at arrival[i] ms (negative: never), and the
// playout clock pulls one frame every 20 ms for `pulls` periods.
std::vector<float> play(JitterBuffer& buffer, const Stream& stream,
                        const std::vector<double>& arrival_ms, std::size_t pulls,
                        const std::vector<std::size_t>& corrupt = {}) {
    const Clock::time_point t0{};
    std::vector<std::size_t> order(stream.packets.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return arrival_ms[a] < arrival_ms[b]; });

    std::vector<float> out;
    std::vector<float> frame(kFrame);
    std::size_t next_arrival = 0;
    for (std::size_t k = 0; k < pulls; ++k) {
        const auto now = t0 + milliseconds(20 * static_cast<long>(k));
        for (; next_arrival < order.size(); ++next_arrival) {
            const std::size_t i = order[next_arrival];
            const auto when = t0 + std::chrono::microseconds(
                                       static_cast<long>(std::lround(arrival_ms[i] * 1000)));
            if (arrival_ms[i] < 0) {
                continue;
            }
            if (when > now) {
                break;
            }
            const bool bad = std::find(corrupt.begin(), corrupt.end(), i) != corrupt.end();
            const std::uint8_t garbage[] = {0xFF, 0xFF, 0xFF};
            EXPECT_TRUE(buffer.push(
                static_cast<std::uint32_t>(1000 + i),
                bad ? Span<const std::uint8_t>(garbage, 3) : stream.packets[i].payload(), when));
        }
        buffer.pull(frame, now);
        out.insert(out.end(), frame.begin(), frame.end());
    }
    return out;
}

std::unique_ptr<JitterBuffer> make_buffer() {
    auto buffer = JitterBuffer::create(JitterBufferConfig{});
    EXPECT_TRUE(buffer);
    return std::move(buffer).value();
}

// Index of the output frame where frame `packet` of the clean decode was played.
// Searches whole-frame lags only: the buffer delays by whole frames.
std::size_t playout_offset(const std::vector<float>& out, const Stream& stream) {
    std::size_t best = 0;
    double best_value = -2;
    for (std::size_t frames = 0; frames < 30; ++frames) {
        const double value =
            test::correlation(stream.clean, out, static_cast<long>(frames * kFrame));
        if (value > best_value) {
            best_value = value;
            best = frames;
        }
    }
    EXPECT_GT(best_value, 0.5);
    return best;
}

TEST(JitterBuffer, SteadyStreamPlaysEveryFrameUnchanged) {
    // Packets arrive exactly every 20 ms: after the initial target delay every frame is
    // played as decoded, nothing is concealed, and each pull returns one frame.
    const Stream stream = encode_speech(false);
    const std::size_t n = stream.packets.size();
    std::vector<double> arrival(n);
    for (std::size_t i = 0; i < n; ++i) {
        arrival[i] = 20.0 * static_cast<double>(i);
    }
    auto buffer = make_buffer();
    const auto out = play(*buffer, stream, arrival, n + 10);

    EXPECT_EQ(out.size(), (n + 10) * kFrame);
    const auto s = buffer->stats();
    EXPECT_EQ(s.frames_decoded, n);
    EXPECT_EQ(s.concealed_fec + s.concealed_plc, 0u);
    EXPECT_EQ(s.underruns, 1u);  // the end of the stream fades out
    EXPECT_EQ(s.frames_out, n + 10);
    const std::size_t delay = playout_offset(out, stream);
    EXPECT_LE(delay, 3u);
    // Past the fade-in, the output is the clean decode.
    EXPECT_GT(test::snr_db(&stream.clean[kFrame], &out[(delay + 1) * kFrame], (n - 2) * kFrame),
              60.0);
}

TEST(JitterBuffer, BurstyArrivalsStillPlayEveryFrameOnTime) {
    // The network stalls and then delivers 6 frames at once every 120 ms: the buffer adapts
    // its depth, and after at most one early underrun every frame is played in order.
    const Stream stream = encode_speech(false);
    const std::size_t n = stream.packets.size();
    std::vector<double> arrival(n);
    for (std::size_t i = 0; i < n; ++i) {
        arrival[i] = 120.0 * static_cast<double>(i / 6 + 1) + 0.1 * static_cast<double>(i % 6);
    }
    auto buffer = make_buffer();
    const auto out = play(*buffer, stream, arrival, n + 20);

    const auto s = buffer->stats();
    EXPECT_EQ(s.frames_out, n + 20);
    EXPECT_EQ(out.size(), (n + 20) * kFrame);
    EXPECT_GE(s.target_depth, 6);
    EXPECT_GE(s.jitter_ms, 90.0);
    EXPECT_LE(s.underruns, 2u);  // one at most while adapting, one at the end
    EXPECT_EQ(s.frames_decoded, n);
    EXPECT_EQ(s.late_dropped, 0u);

    // Nearly all the speech is there, in order: correlation with the clean decode is high.
    const std::size_t delay = playout_offset(out, stream);
    EXPECT_GT(test::correlation(stream.clean, out, static_cast<long>(delay * kFrame)), 0.9);
}

TEST(JitterBuffer, ConcealsOneLostFrameWithFec) {
    // Frame 40 never arrives; the next packet carries FEC, so frame 40 is rebuilt from it and
    // is close to the clean decode.
    const Stream stream = encode_speech(true);
    const std::size_t n = stream.packets.size();
    std::vector<double> arrival(n);
    for (std::size_t i = 0; i < n; ++i) {
        arrival[i] = 20.0 * static_cast<double>(i);
    }
    arrival[40] = -1;
    ASSERT_TRUE(opus_packet_has_fec(stream.packets[41].payload()));
    auto buffer = make_buffer();
    const auto out = play(*buffer, stream, arrival, n + 10);

    const auto s = buffer->stats();
    EXPECT_EQ(s.concealed_fec, 1u);
    EXPECT_EQ(s.frames_decoded, n - 1);
    const std::size_t delay = playout_offset(out, stream);
    EXPECT_GT(test::snr_db(&stream.clean[40 * kFrame], &out[(40 + delay) * kFrame], kFrame), 3.0);
    // The frames after the loss are back to the clean decode.
    EXPECT_GT(test::snr_db(&stream.clean[45 * kFrame], &out[(45 + delay) * kFrame], 20 * kFrame),
              30.0);
}

TEST(JitterBuffer, ConcealsOneLostFrameWithPlcWithoutFec) {
    // Frame 40 never arrives and the stream has no FEC: it is concealed by PLC, which
    // continues the speech at a similar level instead of leaving a hole.
    const Stream stream = encode_speech(false);
    const std::size_t n = stream.packets.size();
    std::vector<double> arrival(n);
    for (std::size_t i = 0; i < n; ++i) {
        arrival[i] = 20.0 * static_cast<double>(i);
    }
    arrival[40] = -1;
    auto buffer = make_buffer();
    const auto out = play(*buffer, stream, arrival, n + 10);

    const auto s = buffer->stats();
    EXPECT_EQ(s.concealed_fec, 0u);
    EXPECT_EQ(s.concealed_plc, 1u);
    const std::size_t delay = playout_offset(out, stream);
    const double level = test::rms(&out[(40 + delay) * kFrame], kFrame);
    const double clean_level = test::rms(&stream.clean[40 * kFrame], kFrame);
    EXPECT_GT(level, 0.2 * clean_level);
}

TEST(JitterBuffer, LateFrameIsConcealedThenDroppedAndCounted) {
    // Frame 40 arrives 150 ms after it was due: its slot is concealed, the late packet is
    // dropped and counted, and the target depth grows.
    const Stream stream = encode_speech(true);
    const std::size_t n = stream.packets.size();
    std::vector<double> arrival(n);
    for (std::size_t i = 0; i < n; ++i) {
        arrival[i] = 20.0 * static_cast<double>(i);
    }
    arrival[40] += 150;
    auto buffer = make_buffer();
    const int initial_target = buffer->stats().target_depth;
    play(*buffer, stream, arrival, 60);

    const auto s = buffer->stats();
    EXPECT_EQ(s.late_dropped, 1u);
    EXPECT_EQ(s.concealed_fec, 1u);
    EXPECT_EQ(s.frames_decoded + 1 + static_cast<std::uint64_t>(s.current_depth), 60u);
    EXPECT_GT(s.target_depth, initial_target);
}

TEST(JitterBuffer, CorruptPacketIsConcealedAndStreamContinues) {
    // Packet 30 is garbage: the decoder rejects it, it is concealed and counted, and the
    // frames after it decode normally.
    const Stream stream = encode_speech(false);
    const std::size_t n = stream.packets.size();
    std::vector<double> arrival(n);
    for (std::size_t i = 0; i < n; ++i) {
        arrival[i] = 20.0 * static_cast<double>(i);
    }
    auto buffer = make_buffer();
    const auto out = play(*buffer, stream, arrival, n + 10, {30});

    const auto s = buffer->stats();
    EXPECT_EQ(s.corrupt, 1u);
    EXPECT_EQ(s.frames_decoded, n - 1);
    const std::size_t delay = playout_offset(out, stream);
    EXPECT_GT(test::snr_db(&stream.clean[40 * kFrame], &out[(40 + delay) * kFrame], 20 * kFrame),
              30.0);
}

TEST(JitterBuffer, UnderrunFadesToSilenceWithoutClick) {
    // The sender pauses for 300 ms mid-speech: the output fades to silence within 5 ms
    // (no sample-to-sample jump bigger than speech itself makes), the underrun is counted,
    // and playback resumes where it stopped, with a fade-in, losing no frame.
    const Stream stream = encode_speech(false);
    const std::size_t n = stream.packets.size();
    std::vector<double> arrival(n);
    for (std::size_t i = 0; i < n; ++i) {
        arrival[i] = 20.0 * static_cast<double>(i) + (i >= 60 ? 300.0 : 0.0);
    }
    auto buffer = make_buffer();
    const auto out = play(*buffer, stream, arrival, n + 40);

    const auto s = buffer->stats();
    EXPECT_EQ(s.underruns, 2u);  // the pause and the end
    EXPECT_EQ(s.resyncs, 1u);
    EXPECT_EQ(s.frames_decoded, n);

    // The underrun frame is where packet 60 was due: the playout delay of the first 60
    // frames (measured on them alone) after frame 60.
    const std::vector<float> before(stream.clean.begin(), stream.clean.begin() + 60 * kFrame);
    const std::size_t delay = playout_offset(out, Stream{{}, before});
    const std::size_t fade_frame = 60 + delay;
    EXPECT_GT(test::rms(&out[(fade_frame - 1) * kFrame], kFrame), 0.01);
    EXPECT_LT(test::rms(&out[fade_frame * kFrame + 240], kFrame - 240), 1e-6);
    EXPECT_LT(test::rms(&out[(fade_frame + 1) * kFrame], kFrame), 1e-6);

    float max_step = 0, speech_step = 0;
    for (std::size_t i = fade_frame * kFrame - kFrame; i < (fade_frame + 2) * kFrame; ++i) {
        max_step = std::max(max_step, std::fabs(out[i + 1] - out[i]));
    }
    for (std::size_t i = 1; i < stream.clean.size(); ++i) {
        speech_step = std::max(speech_step, std::fabs(stream.clean[i] - stream.clean[i - 1]));
    }
    EXPECT_LE(max_step, speech_step);
}

TEST(JitterBuffer, NetworkAndPlayoutThreadsRunConcurrently) {
    // A network thread pushes 150 packets in real time while the playout thread pulls every
    // 20 ms of the steady clock; every packet is accounted for and nearly all are decoded.
    const Stream stream = encode_speech(false);
    auto buffer = make_buffer();
    const std::size_t n = std::min<std::size_t>(stream.packets.size(), 150);
    const auto start = Clock::now();
    std::thread network([&] {
        for (std::size_t i = 0; i < n; ++i) {
            std::this_thread::sleep_until(start + milliseconds(20 * static_cast<long>(i)));
            EXPECT_TRUE(buffer->push(static_cast<std::uint32_t>(i), stream.packets[i].payload()));
        }
    });
    std::vector<float> frame(kFrame);
    for (std::size_t k = 0; k < n + 12; ++k) {
        std::this_thread::sleep_until(start + milliseconds(20 * static_cast<long>(k) + 10));
        buffer->pull(frame);
    }
    network.join();

    // Every packet is either played or, if the machine stalled a thread, counted as late or
    // still queued: none vanishes.
    const auto s = buffer->stats();
    EXPECT_EQ(s.frames_decoded + s.late_dropped + static_cast<std::uint64_t>(s.current_depth), n);
    EXPECT_GE(s.frames_decoded, n - 5);
    EXPECT_EQ(s.frames_out, n + 12);
}

}  // namespace
}  // namespace olympus::audio
