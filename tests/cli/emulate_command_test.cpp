// `olympus-voice emulate` and `olympus-voice token` as a user runs them: the printed URL and
// token work with a real WebSocket client, and bad flags get a clear message.
#include <cstdio>
#include <fstream>
#include <regex>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "support/test_env.hpp"
#include "support/ws_test_client.hpp"

namespace {

using namespace std::chrono_literals;

struct Run {
    int exit_code = -1;
    std::string output;
};

/// Runs the CLI with `args`, stdout and stderr together.
Run run_cli(const std::string& args) {
    Run run;
    FILE* pipe = ::popen((std::string(OLYMPUS_VOICE_BIN) + " " + args + " 2>&1").c_str(), "r");
    char buffer[4096];
    while (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
        run.output += buffer;
    }
    int status = pipe == nullptr ? -1 : ::pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

/// A CLI process whose output is read line by line while it runs.
class RunningCli {
public:
    explicit RunningCli(const std::string& args)
        : pipe_(::popen((std::string(OLYMPUS_VOICE_BIN) + " " + args + " 2>&1").c_str(), "r")) {}
    ~RunningCli() { finish(); }

    /// Reads lines until one matches `pattern`; returns its first capture group.
    std::string read_until(const std::regex& pattern) {
        char buffer[8192];
        while (pipe_ != nullptr && std::fgets(buffer, sizeof buffer, pipe_) != nullptr) {
            output_ += buffer;
            std::cmatch match;
            if (std::regex_search(buffer, match, pattern)) {
                return match[1].str();
            }
        }
        return {};
    }

    int finish() {
        if (pipe_ == nullptr) {
            return exit_code_;
        }
        char buffer[4096];
        while (std::fgets(buffer, sizeof buffer, pipe_) != nullptr) {
            output_ += buffer;
        }
        int status = ::pclose(pipe_);
        pipe_ = nullptr;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return exit_code_;
    }

    const std::string& output() const { return output_; }

private:
    FILE* pipe_;
    std::string output_;
    int exit_code_ = -1;
};

// emulate prints the gateway URL and a token that authenticates at once, then stops by itself
// after --duration and prints the stats of what it saw.
TEST(EmulateCommand, PrintsUrlAndWorkingToken) {
    auto dir = olympus::test::make_temp_dir("olympus-cli");
    RunningCli cli("emulate --port 0 --duration 3s --jwt-key " + dir + "/key.pem");
    auto url = cli.read_until(std::regex(R"(gateway\s+(ws://127\.0\.0\.1:\d+/v1))"));
    ASSERT_FALSE(url.empty()) << cli.output();
    auto token = cli.read_until(std::regex(R"(token\s+(\S+))"));
    ASSERT_FALSE(token.empty()) << cli.output();

    olympus::test::WsTestClient client;
    ASSERT_TRUE(client.connect(url + "?token=" + token)) << client.error();
    auto ok = client.next_of_type("auth_success");
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)["user_id"], "user-dev");
    EXPECT_EQ(client.wait_closed(5s), 1001);
    EXPECT_EQ(cli.finish(), 0) << cli.output();
    EXPECT_NE(cli.output().find("\"auth_success\": 1"), std::string::npos) << cli.output();
}

// A token minted with `token` is accepted by an emulator that signs with the same key file,
// and carries the user and permissions asked for.
TEST(TokenCommand, MintsTokensTheEmulatorAccepts) {
    auto dir = olympus::test::make_temp_dir("olympus-cli");
    auto key = dir + "/key.pem";
    auto minted =
        run_cli("token --user user-7 --permission orders.read --lifetime 10m --jwt-key " + key);
    ASSERT_EQ(minted.exit_code, 0) << minted.output;
    auto token = minted.output.substr(0, minted.output.find('\n'));

    RunningCli cli("emulate --port 0 --duration 2s --jwt-key " + key);
    auto url = cli.read_until(std::regex(R"(gateway\s+(ws://127\.0\.0\.1:\d+/v1))"));
    ASSERT_FALSE(url.empty()) << cli.output();
    olympus::test::WsTestClient client;
    ASSERT_TRUE(client.connect(url));
    client.send_json({{"type", "auth"}, {"token", token}});
    auto ok = client.next_of_type("auth_success");
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)["user_id"], "user-7");
    EXPECT_EQ((*ok)["permissions"], nlohmann::json::array({"orders.read"}));
}

// Flags that cannot work are refused with exit code 2 and a message naming the flag.
TEST(EmulateCommand, RefusesBadFlags) {
    struct Case {
        std::string args;
        std::string mentions;
    };
    for (const auto& c : std::vector<Case>{{"emulate --ping-interval -5s", "--ping-interval"},
                                           {"emulate --duration soon", "--duration"},
                                           {"emulate --port 70000", "--port"},
                                           {"emulate --tls --cert /nonexistent.pem", "--cert"},
                                           {"token --lifetime 0s", "--lifetime"},
                                           {"frobnicate", "frobnicate"}}) {
        auto run = run_cli(c.args);
        EXPECT_EQ(run.exit_code, 2) << c.args << "\n" << run.output;
        EXPECT_NE(run.output.find(c.mentions), std::string::npos) << c.args << "\n" << run.output;
    }
}

// A key file that is not a key is reported by name, without a crash.
TEST(EmulateCommand, ReportsUnreadableKeyFile) {
    auto dir = olympus::test::make_temp_dir("olympus-cli");
    std::ofstream(dir + "/bad.pem") << "not a key";
    auto run = run_cli("emulate --port 0 --duration 1s --jwt-key " + dir + "/bad.pem");
    EXPECT_NE(run.exit_code, 0);
    EXPECT_NE(run.output.find(dir + "/bad.pem"), std::string::npos) << run.output;
}

}  // namespace
