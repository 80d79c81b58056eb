// Tests of `olympus-voice devices` against the JACK dummy server: the listing names the device,
// and --device/--open resolve it and report the latency it grants.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "commands.hpp"
#include "jack_server.hpp"

namespace olympus::cli {

// Provided by main.cpp in the program; here the test owns it.
int& exit_code() {
    static int code = kExitOk;
    return code;
}

void add_devices_command(CLI::App& app);

namespace {

std::string run(std::vector<std::string> args) {
    CLI::App app{"test"};
    add_devices_command(app);
    exit_code() = kExitOk;
    args.insert(args.begin(), "olympus-voice");
    std::vector<const char*> argv;
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    testing::internal::CaptureStdout();
    app.parse(static_cast<int>(argv.size()), argv.data());
    return testing::internal::GetCapturedStdout();
}

TEST(DevicesCommand, ListsJackDeviceAndReportsGrantedLatency) {
    // `devices --device system --open` lists "system" with its channels and opens it both
    // ways, printing the rate and latency granted; exit code 0.
    OLYMPUS_REQUIRE_JACK();
    const std::string out = run({"devices", "--device", "system", "--open"});
    EXPECT_NE(out.find("JACK Audio Connection Kit"), std::string::npos) << out;
    EXPECT_NE(out.find("capture : "), std::string::npos) << out;
    EXPECT_NE(out.find("opened at 48000 Hz, granted latency"), std::string::npos) << out;
    EXPECT_EQ(exit_code(), kExitOk);
}

TEST(DevicesCommand, UnknownDeviceIsAUsageError) {
    // A selector nothing matches is reported by name and exits with the usage code.
    OLYMPUS_REQUIRE_JACK();
    const std::string out = run({"devices", "--device", "no-such-speaker"});
    EXPECT_NE(out.find("no-such-speaker"), std::string::npos) << out;
    EXPECT_EQ(exit_code(), kExitUsage);
}

}  // namespace
}  // namespace olympus::cli
