// `olympus-voice load` run as a real process: flags that cannot work fail fast with exit code 2,
// and 50 sessions against the embedded emulator for 20 s end by themselves with a report in
// which every session was held and frames flowed both ways.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_process.hpp"
#include "support/test_env.hpp"
#include "voice_test_support.hpp"

namespace olympus {
namespace {

using namespace std::chrono_literals;

class LoadCommandTest : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::make_temp_dir("olympus-load"); }

    std::vector<std::string> load(std::vector<std::string> extra) const {
        std::vector<std::string> args{"--log-level", "warn", "load", "--file", test::speech_wav()};
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    }

    /// The LOAD_JSON line of a finished run.
    static nlohmann::json report_of(const std::string& out) {
        auto at = out.find("LOAD_JSON ");
        if (at == std::string::npos) {
            return {};
        }
        auto end = out.find('\n', at);
        return nlohmann::json::parse(out.substr(at + 10, end - at - 10));
    }

    std::string dir_;
};

// Zero sessions, a duration that is not a number and more sessions than descriptors allow are
// refused at once, each with a message that names the problem.
TEST(LoadCommand, BadFlagsFailFast) {
    auto dir = test::make_temp_dir("olympus-load-flags");
    auto run = [&](std::vector<std::string> extra) {
        std::vector<std::string> args{"load", "--file", test::speech_wav()};
        args.insert(args.end(), extra.begin(), extra.end());
        test::CliProcess cli(args, dir);
        int code = cli.wait(10s);
        return std::make_pair(code, cli.stderr_text());
    };

    auto [zero_code, zero_err] = run({"--sessions", "0"});
    EXPECT_EQ(zero_code, 2);
    EXPECT_NE(zero_err.find("--sessions must be at least 1"), std::string::npos) << zero_err;

    auto [dur_code, dur_err] = run({"--sessions", "5", "--duration", "soon"});
    EXPECT_EQ(dur_code, 2);
    EXPECT_NE(dur_err.find("'soon' is not a positive duration"), std::string::npos) << dur_err;

    auto [fd_code, fd_err] = run({"--sessions", "100000000", "--duration", "1s"});
    EXPECT_EQ(fd_code, 2);
    EXPECT_NE(fd_err.find("ulimit -n"), std::string::npos) << fd_err;
}

// The smoke run of the issue: 50 sessions, 20 s, embedded emulator; lenient bounds because the
// machine running the suite is shared.
TEST_F(LoadCommandTest, FiftySessionsForTwentySecondsReport) {
    test::CliProcess cli(load({"--sessions", "50", "--duration", "20s", "--json"}), dir_);
    ASSERT_EQ(cli.wait(60s), 0) << cli.stderr_text();

    auto out = cli.stdout_text();
    EXPECT_NE(out.find("load report: 50 sessions"), std::string::npos) << out;
    auto report = report_of(out);
    ASSERT_FALSE(report.is_null()) << out;
    EXPECT_EQ(report["held"], 50);
    EXPECT_EQ(report["sessions_lost"], 0);

    // About 50 frames a second per session for most of 20 s went up, and replies came down.
    EXPECT_GT(report["frames_sent"].get<double>(), 50 * 50 * 15.0);
    EXPECT_LT(report["frames_late"].get<double>(), report["frames_sent"].get<double>() * 0.05);
    EXPECT_GT(report["ttfa_count"].get<double>(), 50);
    EXPECT_GT(report["reply_frames"].get<double>(), 1000);
    EXPECT_GT(report["send_p50_us"].get<double>(), 0);
    EXPECT_GT(report["rss_kib"].get<double>(), 0);
}

}  // namespace
}  // namespace olympus
