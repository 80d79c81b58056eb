// Tests of PortAudio capture against the JACK dummy server: a known tone from jack_metro is
// recorded, at the device rate and resampled, and checked for pitch, timing and sample count.
#include "olympus/audio/capture_stream.hpp"

#include <chrono>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "jack_server.hpp"
#include "support/test_env.hpp"

namespace olympus::audio {
namespace {

// Magnitude of the `frequency` component of `x` (a single DFT bin).
double tone_level(const std::vector<float>& x, double frequency, int rate) {
    double re = 0, im = 0;
    const double step = 2 * M_PI * frequency / rate;
    for (std::size_t i = 0; i < x.size(); ++i) {
        re += double{x[i]} * std::cos(step * static_cast<double>(i));
        im += double{x[i]} * std::sin(step * static_cast<double>(i));
    }
    return std::hypot(re, im) / static_cast<double>(x.size());
}

// Sample positions where a beep starts: level rises above 0.1 after 5 ms below 0.01.
std::vector<std::size_t> beep_onsets(const std::vector<float>& x, int rate) {
    std::vector<std::size_t> onsets;
    std::size_t quiet = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const float level = std::fabs(x[i]);
        if (level > 0.1f && quiet >= static_cast<std::size_t>(rate / 200)) {
            onsets.push_back(i);
        }
        quiet = level < 0.01f ? quiet + 1 : (level > 0.1f ? 0 : quiet);
    }
    return onsets;
}

// Records `seconds` of jack_metro's 1 kHz beeps (10 per second) at `codec_rate`.
std::vector<float> record_beeps(int codec_rate, double seconds, StreamStats& stats,
                                double& elapsed_s) {
    DeviceStreamConfig config;
    config.device = "system";
    config.codec_rate = codec_rate;
    // Over a second of room: a loaded CI machine may not schedule the reader for a while.
    config.ring_samples = 65536;
    auto stream = CaptureStream::open(config);
    EXPECT_TRUE(stream) << stream.error().what();
    if (!stream) {
        return {};
    }
    // The metronome joins the JACK graph before the stream starts, and its port is added next
    // to the (silent) system capture rather than replacing it: on a loaded machine, a client
    // joining or a connection removed while PortAudio's JACK client ran has stalled that client
    // for good (jackd2 1.9.21). The one connection made while running is the one needed.
    test::JackTool metro(
        {"jack_metro", "-n", "olympus_metro", "-b", "600", "-f", "1000", "-A", "0.5", "-D", "30"});
    EXPECT_TRUE(olympus::test::eventually(
        [] { return !test::find_jack_port("olympus_metro:600_bpm").empty(); }));
    EXPECT_FALSE(stream.value()->start());
    std::string in_port;
    EXPECT_TRUE(olympus::test::eventually([&] {
        in_port = test::find_jack_port(":in_0");
        return !in_port.empty();
    }));
    EXPECT_TRUE(test::jack_command("jack_connect olympus_metro:600_bpm " + in_port));

    // Drop what was captured before the connection, then record.
    std::vector<float> frame(static_cast<std::size_t>(codec_rate / 50));
    (void)stream.value()->read_frame(frame, std::chrono::milliseconds(100));
    while (stream.value()->read(frame) > 0) {
    }
    // Overflows while waiting for the metronome do not count; only those while recording.
    const auto overflows_before = stream.value()->stats().ring_overflows;
    std::vector<float> recorded;
    const auto start = std::chrono::steady_clock::now();
    while (recorded.size() < static_cast<std::size_t>(seconds * codec_rate)) {
        const std::size_t got = stream.value()->read_frame(frame, std::chrono::seconds(1));
        EXPECT_EQ(got, frame.size());
        recorded.insert(recorded.end(), frame.begin(), frame.begin() + static_cast<long>(got));
        if (got == 0) {
            break;
        }
    }
    elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    stats = stream.value()->stats();
    stats.ring_overflows -= overflows_before;
    EXPECT_FALSE(stream.value()->stop());
    return recorded;
}

// `xruns`: cycles JACK reported it could not run in time. The dummy driver drops or repeats a
// period then, which shifts at most the two beep intervals around it; that is the device's
// doing, not the stream's, so that many intervals may be off.
void expect_beeps(const std::vector<float>& recorded, int rate, std::uint64_t xruns) {
    // Pitch: the 1 kHz component dominates its neighbours.
    const double at_1k = tone_level(recorded, 1000, rate);
    EXPECT_GT(at_1k, 0.02);
    EXPECT_GT(at_1k, 10 * tone_level(recorded, 800, rate));
    EXPECT_GT(at_1k, 10 * tone_level(recorded, 1250, rate));

    // Timing: a beep every 100 ms to the sample period (no lost or repeated blocks).
    const auto onsets = beep_onsets(recorded, rate);
    ASSERT_GE(onsets.size(), 8u);
    std::uint64_t off = 0;
    for (std::size_t i = 1; i < onsets.size(); ++i) {
        const double interval = static_cast<double>(onsets[i] - onsets[i - 1]);
        off += std::fabs(interval - rate / 10.0) > rate / 1000.0 ? 1 : 0;
    }
    EXPECT_LE(off, 2 * xruns) << "beep intervals off by more than 1 ms; JACK xruns=" << xruns;
}

TEST(CaptureStream, RecordsKnownToneFromJack) {
    // jack_metro's 1 kHz beeps, ten a second, are captured at 48 kHz: right pitch, beeps
    // exactly 100 ms apart, and samples arrive no faster than the device's real-time rate.
    OLYMPUS_REQUIRE_JACK();
    StreamStats stats;
    double elapsed_s = 0;
    const auto recorded = record_beeps(48000, 1.2, stats, elapsed_s);
    expect_beeps(recorded, 48000, stats.device_xruns);
    // Not faster than real time (a device that does not pace, like ALSA's file plugin, runs
    // thousands of times faster). JACK's dummy driver falls behind when the machine is loaded
    // (0.6 of real time seen with three builds running), so the floor only rules out a stall;
    // lost or repeated blocks would show in the beep spacing above.
    const double rate = static_cast<double>(recorded.size()) / elapsed_s;
    EXPECT_LT(rate, 48000 * 1.1);
    EXPECT_GT(rate, 48000 * 0.25);
    EXPECT_EQ(stats.device_rate, 48000);
    EXPECT_EQ(stats.ring_overflows, 0u);
    EXPECT_GE(stats.latency_ms, 0.0);
}

TEST(CaptureStream, ResamplesToCodecRate) {
    // With a 16 kHz codec the 48 kHz device is resampled: the beeps keep their pitch and
    // spacing in 16 kHz samples.
    OLYMPUS_REQUIRE_JACK();
    StreamStats stats;
    double elapsed_s = 0;
    const auto recorded = record_beeps(16000, 1.2, stats, elapsed_s);
    EXPECT_EQ(stats.device_rate, 48000);
    expect_beeps(recorded, 16000, stats.device_xruns);
}

}  // namespace
}  // namespace olympus::audio
