// The emulator against peers that never saw our code: the JavaScript example client of the
// public docs, run under Node.js, and plain `ws` clients written from the protocol document.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <gtest/gtest.h>

#include "olympus/emulator/emulator.hpp"

namespace olympus::emulator {
namespace {

using namespace std::chrono_literals;

struct NodeRun {
    int exit_status = -1;
    std::string output;
};

NodeRun run(const std::string& command) {
    NodeRun result;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return result;
    }
    char buffer[4096];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
        result.output += buffer;
    }
    result.exit_status = ::pclose(pipe);
    return result;
}

class NodePeerTest : public ::testing::TestWithParam<bool> {};

INSTANTIATE_TEST_SUITE_P(Transports, NodePeerTest, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "wss" : "ws"; });

// Runs doc_client_check.js with `client_args` against two emulators over ws or wss.
NodeRun run_checks(bool tls, const std::string& client_args) {
    EXPECT_TRUE(std::filesystem::exists(OLYMPUS_NODE_DIR "/node_modules/ws"))
        << "run `npm ci` in tests/node (scripts/setup test does)";

    // One emulator for the main flow with a brisk heartbeat, one without pings for idling;
    // both sign with the same key, so one token serves both.
    // ctest runs several of these at once: the files are this process's own.
    const std::string own = std::to_string(::getpid());
    auto key_file =
        std::filesystem::temp_directory_path() / ("olympus-node-peer-jwt-" + own + ".pem");
    std::ofstream(key_file) << JwtKey::generate().private_pem();
    EmulatorOptions main_options;
    main_options.jwt_key_file = key_file.string();
    main_options.tls = tls;
    main_options.ping_interval = 100ms;
    main_options.pong_timeout = 200ms;
    main_options.events_per_second = 20;
    main_options.request_burst = 200;
    Emulator emu(main_options);
    emu.start();
    EmulatorOptions idle_options = main_options;
    idle_options.ping_interval = 1h;
    idle_options.idle_timeout = 500ms;
    Emulator idle(idle_options);
    idle.start();

    // wss peers trust the emulators' certificates through NODE_EXTRA_CA_CERTS.
    auto ca_file =
        std::filesystem::temp_directory_path() / ("olympus-node-peer-ca-" + own + ".pem");
    std::ofstream(ca_file) << emu.certificate_pem() << idle.certificate_pem();
    std::ostringstream command;
    command << "NODE_EXTRA_CA_CERTS=" << ca_file << " node " << OLYMPUS_NODE_DIR
            << "/doc_client_check.js --url " << emu.gateway_url() << " --idle-url "
            << idle.gateway_url() << " --token " << emu.mint_token("user-dev") << " " << client_args
            << " 2>&1";

    auto result = run(command.str());
    std::filesystem::remove(ca_file);
    std::filesystem::remove(key_file);
    return result;
}

void expect_all_checks_pass(const NodeRun& result) {
    EXPECT_EQ(result.exit_status, 0) << result.output;
    EXPECT_EQ(result.output.find("FAIL"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("11 passed, 0 failed"), std::string::npos) << result.output;
}

// A client written from the protocol document alone passes every check: connect, subscribe and
// events, heartbeat, each limit, each auth way and the documented errors.
TEST_P(NodePeerTest, ProtocolDocumentClientPasses) {
    expect_all_checks_pass(run_checks(GetParam(), "--client protocol"));
}

// The JavaScript example client of the public doc page, loaded from the page itself, passes the
// same checks. The page lives outside the repository (OLYMPUS_SPEC_DIR); without it the test
// says so and skips.
TEST_P(NodePeerTest, PublishedExampleClientPasses) {
    const std::string spec = OLYMPUS_SPEC_DIR "/seed-websocket-connection.txt";
    if (!std::filesystem::exists(spec)) {
        GTEST_SKIP() << "the public doc page is not here: " << spec
                     << " (configure with -DOLYMPUS_SPEC_DIR=<folder holding it>)";
    }
    expect_all_checks_pass(run_checks(GetParam(), "--client doc --spec " + spec));
}

}  // namespace
}  // namespace olympus::emulator
