// `olympus-voice talk` run as a real process through PortAudio on the JACK dummy device: a
// metronome feeds the command's capture port, and the emulator in the test must hear its 1 kHz
// beeps, ten a second, in what the session sent.
#include <cmath>

#include <gtest/gtest.h>

#include "olympus/emulator/emulator.hpp"

#include "audio/jack_server.hpp"
#include "audio/speech.hpp"
#include "cli_process.hpp"
#include "support/test_env.hpp"
#include "voice_test_support.hpp"

namespace olympus {
namespace {

using namespace std::chrono_literals;
namespace at = olympus::audio::test;

// Share of a window's energy at `frequency` (Goertzel), in [0, 1].
double tone_share(const float* x, std::size_t n, double frequency, int rate) {
    const double w = 2 * M_PI * frequency / rate;
    double s1 = 0, s2 = 0, energy = 0;
    for (std::size_t i = 0; i < n; ++i) {
        double s = static_cast<double>(x[i]) + 2 * std::cos(w) * s1 - s2;
        s2 = s1;
        s1 = s;
        energy += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    }
    double power = s1 * s1 + s2 * s2 - 2 * std::cos(w) * s1 * s2;
    return energy > 0 ? std::min(1.0, 2 * power / (static_cast<double>(n) * energy)) : 0.0;
}

TEST(TalkCommand, EmulatorHearsTheMicrophoneSignal) {
    // Five seconds of talk with jack_metro on the microphone port.
    OLYMPUS_REQUIRE_JACK_SERVER();
    auto dir = test::make_temp_dir("olympus-talk");
    emulator::Emulator emu(test::quiet_emulator());
    emu.start();
    // The metronome joins the JACK graph before the command's client does; see
    // capture_stream_test.cpp for why.
    at::JackTool metro({"jack_metro", "-n", "olympus_talk_metro", "-b", "600", "-f", "1000", "-A",
                        "0.5", "-D", "30"});
    ASSERT_TRUE(test::eventually(
        [] { return !at::find_jack_port("olympus_talk_metro:600_bpm").empty(); }, 10s));
    test::CliProcess cli(
        {"--log-level", "warn", "talk", "--input-device", "system", "--output-device", "system",
         "--duration", "5s", "--url", emu.voice_url(), "--token", emu.mint_token()},
        dir);
    std::string in_port;
    ASSERT_TRUE(test::eventually(
        [&] {
            in_port = at::find_jack_port(":in_0");
            return !in_port.empty();
        },
        10s))
        << cli.stderr_text();
    ASSERT_TRUE(at::jack_command("jack_connect olympus_talk_metro:600_bpm " + in_port));
    ASSERT_EQ(cli.wait(20s), 0) << cli.stderr_text();

    // The recording holds beeps: loud 10 ms windows that are mostly 1 kHz, about ten a second.
    auto record = test::only_session(emu);
    const auto& pcm = record.received_audio;
    ASSERT_GT(pcm.size(), 48000u * 3);
    constexpr std::size_t kWindow = 480;
    int onsets = 0;
    bool loud_before = false;
    double best_share = 0;
    for (std::size_t i = 0; i + kWindow <= pcm.size(); i += kWindow) {
        bool loud = at::rms(pcm.data() + i, kWindow) > 0.05;
        if (loud) {
            best_share = std::max(best_share, tone_share(pcm.data() + i, kWindow, 1000, 48000));
        }
        onsets += loud && !loud_before ? 1 : 0;
        loud_before = loud;
    }
    double seconds = static_cast<double>(pcm.size()) / 48000;
    EXPECT_GT(best_share, 0.8);
    EXPECT_GT(onsets, static_cast<int>(seconds * 10 * 0.6)) << "seconds=" << seconds;
    EXPECT_LT(onsets, static_cast<int>(seconds * 10 * 1.2) + 2);
    EXPECT_NE(cli.stdout_text().find("sent "), std::string::npos);
}

}  // namespace
}  // namespace olympus
