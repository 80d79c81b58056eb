// Tests of `olympus-voice drive-thru --check-config`, compiled with the command's source so that
// they do not need the whole program (the running agent is tested as a process in
// drive_thru_process_test.cpp).
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "commands.hpp"
#include "support/test_env.hpp"

namespace olympus::cli {

// Provided by main.cpp in the program; here the test owns it.
int& exit_code() {
    static int code = kExitOk;
    return code;
}

namespace {

struct CommandRun {
    std::string out;
    std::string err;
    int code;
};

CommandRun run(std::vector<std::string> args) {
    CLI::App app{"test"};
    add_drive_thru_command(app);
    exit_code() = kExitOk;
    args.insert(args.begin(), "olympus-voice");
    std::vector<const char*> argv;
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    testing::internal::CaptureStdout();
    testing::internal::CaptureStderr();
    app.parse(static_cast<int>(argv.size()), argv.data());
    CommandRun result{testing::internal::GetCapturedStdout(),
                      testing::internal::GetCapturedStderr(), 0};
    result.code = exit_code();
    return result;
}

// The shipped sample passes and the summary shows what the lane will do.
TEST(DriveThruCommand, ChecksTheSampleConfig) {
    const CommandRun r =
        run({"drive-thru", "--config", OLYMPUS_SAMPLE_LANE_JSON, "--check-config"});
    EXPECT_EQ(r.code, kExitOk) << r.err;
    EXPECT_NE(r.out.find("configuration OK"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("lane lane-1 at location store-0042"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("metrics on http://127.0.0.1:9464/metrics"), std::string::npos) << r.out;
}

// A broken file exits with the usage code and names each bad key on stderr.
TEST(DriveThruCommand, ReportsEveryBadKeyAndExitsWithUsageCode) {
    const std::string dir = olympus::test::make_temp_dir("olympus-lane-cfg");
    const std::string path = dir + "/lane.json";
    std::ofstream(path) << R"({"server": {"url": "wss://x/v"}, "location": "s", "lane": "l",
        "token": {"file": "/t"}, "audio_processing": {"delay_ms": 900, "aecc": true}})";
    const CommandRun r = run({"drive-thru", "--config", path, "--check-config"});
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_NE(r.err.find("audio_processing.delay_ms: must be between 0 and 500 (got 900)"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("audio_processing.aecc: unknown key"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace olympus::cli
