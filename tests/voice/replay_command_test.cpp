// `olympus-voice replay` run as a real process against an emulator in the test: a missing file
// fails before any connection, a whole replay records a playable reply and prints its stats,
// and Ctrl-C ends the session with end_session and leaves a playable WAV.
#include <gtest/gtest.h>

#include "olympus/emulator/emulator.hpp"

#include "audio/speech.hpp"
#include "cli_process.hpp"
#include "support/test_env.hpp"
#include "voice_test_support.hpp"

namespace olympus {
namespace {

using namespace std::chrono_literals;

class ReplayCommandTest : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::make_temp_dir("olympus-replay"); }

    void start_emulator(emulator::EmulatorOptions options = test::quiet_emulator()) {
        emu_ = std::make_unique<emulator::Emulator>(options);
        emu_->start();
    }

    std::vector<std::string> replay(std::vector<std::string> files,
                                    std::vector<std::string> extra) const {
        std::vector<std::string> args{"--log-level", "warn", "replay"};
        args.insert(args.end(), files.begin(), files.end());
        args.insert(args.end(), {"--url", emu_->voice_url(), "--token", emu_->mint_token()});
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    }

    std::string dir_;
    std::unique_ptr<emulator::Emulator> emu_;
};

TEST_F(ReplayCommandTest, MissingFileFailsBeforeConnecting) {
    // The second of two files is missing: nothing connects and the message names it.
    start_emulator();
    auto missing = dir_ + "/no-such-order.wav";
    test::CliProcess cli(replay({test::speech_wav(), missing}, {"--out", dir_ + "/r.wav"}), dir_);
    EXPECT_EQ(cli.wait(10s), 2);
    EXPECT_NE(cli.stderr_text().find(missing), std::string::npos) << cli.stderr_text();
    EXPECT_EQ(emu_->stats().connections_opened, 0u);
}

TEST_F(ReplayCommandTest, RecordsTheReplyAndPrintsStats) {
    // A fast replay: the reply WAV holds the echo and the stats name the figures.
    start_emulator();
    auto out = dir_ + "/reply.wav";
    test::CliProcess cli(replay({test::speech_wav()}, {"--out", out, "--speed", "fast"}), dir_);
    ASSERT_EQ(cli.wait(30s), 0) << cli.stderr_text();
    auto reply = test::read_wav_file(out);
    EXPECT_GT(test::best_correlation(audio::test::speech(48000), reply, 24000), 0.6);
    auto stats = cli.stdout_text();
    for (const char* field :
         {"frames: captured=", "send latency: p50=", "p99=", "reply time to first audio: "}) {
        EXPECT_NE(stats.find(field), std::string::npos) << field << " missing in " << stats;
    }
    EXPECT_EQ(emu_->stats().received_of("end_session"), 1u);
}

TEST_F(ReplayCommandTest, WaitsForTheGreetingBeforeTheOrder) {
    // At real-time pace the recorded customer lets the 1.5 s greeting finish: nothing barges
    // in, and the reply file holds the whole greeting followed by the echo of the order.
    auto options = test::quiet_emulator();
    options.greeting_duration = 1500ms;
    start_emulator(options);
    auto out = dir_ + "/reply.wav";
    test::CliProcess cli(replay({test::speech_wav()}, {"--out", out}), dir_);
    ASSERT_EQ(cli.wait(40s), 0) << cli.stderr_text();
    EXPECT_NE(cli.stdout_text().find("barge-ins=0"), std::string::npos) << cli.stdout_text();
    EXPECT_EQ(emu_->stats().sent_of("interrupt"), 0u);
    EXPECT_EQ(emu_->stats().received_of("barge_in"), 0u);

    auto reply = test::read_wav_file(out);
    const std::size_t greeting = 48000 * 3 / 2;
    ASSERT_GT(reply.size(), greeting + 48000);
    std::vector<float> after_greeting(reply.begin() + static_cast<long>(greeting), reply.end());
    EXPECT_GT(test::best_correlation(audio::test::speech(48000), after_greeting, 24000), 0.6);
}

TEST_F(ReplayCommandTest, CtrlCEndsTheSessionAndLeavesAPlayableWav) {
    // SIGINT mid-file: end_session goes out, the WAV is finalised.
    auto options = test::quiet_emulator();
    options.greeting_duration = 3000ms;
    options.barge_in_speech = 60s;  // the greeting is not cut off by the order
    start_emulator(options);
    auto out = dir_ + "/partial.wav";
    test::CliProcess cli(replay({test::speech_wav()}, {"--out", out}), dir_);
    ASSERT_TRUE(test::eventually(
        [&] {
            auto sessions = emu_->voice_sessions();
            return !sessions.empty() && sessions.front().frames_received >= 50;
        },
        10s));
    cli.signal(SIGINT);
    EXPECT_EQ(cli.wait(10s), 130) << cli.stderr_text();
    // The emulator's io thread may still be taking in the last frames the process sent.
    EXPECT_TRUE(test::eventually([&] { return emu_->stats().received_of("end_session") == 1; }))
        << cli.stderr_text();
    EXPECT_TRUE(
        test::eventually([&] { return test::only_session(*emu_).end_reason == "cancelled"; }));
    int rate = 0;
    auto written = test::read_wav_file(out, &rate);
    EXPECT_EQ(rate, 48000);
    EXPECT_GT(written.size(), 48000u / 2);  // at least half a second of the greeting
}

}  // namespace
}  // namespace olympus
