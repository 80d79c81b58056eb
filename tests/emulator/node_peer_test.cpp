// The emulator against peers that never saw our code: the JavaScript example client of the
// public docs, run under Node.js, and plain `ws` clients written from the protocol document.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

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

// Every check of doc_client_check.js passes: connect, subscribe and events, heartbeat, each
// limit, each auth way and the documented errors, over ws and wss.
TEST_P(NodePeerTest, PublishedExampleClientAndProtocolPeersPass) {
    const std::string spec = OLYMPUS_SPEC_DIR "/seed-websocket-connection.txt";
    ASSERT_TRUE(std::filesystem::exists(spec)) << "the public doc page is missing: " << spec;
    ASSERT_TRUE(std::filesystem::exists(OLYMPUS_NODE_DIR "/node_modules/ws"))
        << "run `npm ci` in tests/node (scripts/setup test does)";

    // One emulator for the main flow with a brisk heartbeat, one without pings for idling;
    // both sign with the same key, so one token serves both.
    auto key_file = std::filesystem::temp_directory_path() / "olympus-node-peer-jwt.pem";
    std::ofstream(key_file) << JwtKey::generate().private_pem();
    EmulatorOptions main_options;
    main_options.jwt_key_file = key_file.string();
    main_options.tls = GetParam();
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
    auto ca_file = std::filesystem::temp_directory_path() / "olympus-node-peer-ca.pem";
    std::ofstream(ca_file) << emu.certificate_pem() << idle.certificate_pem();
    std::ostringstream command;
    command << "NODE_EXTRA_CA_CERTS=" << ca_file << " node " << OLYMPUS_NODE_DIR
            << "/doc_client_check.js --url " << emu.gateway_url() << " --idle-url "
            << idle.gateway_url() << " --token " << emu.mint_token("user-dev") << " --spec " << spec
            << " 2>&1";

    auto result = run(command.str());
    std::filesystem::remove(ca_file);
    std::filesystem::remove(key_file);
    EXPECT_EQ(result.exit_status, 0) << result.output;
    EXPECT_EQ(result.output.find("FAIL"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("11 passed, 0 failed"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace olympus::emulator
