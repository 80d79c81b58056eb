// Tests of the lane configuration: the shipped example loads, and each class of mistake an
// installer can make is refused with a message naming the key.
#include "olympus/lane/lane_config.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/test_env.hpp"

namespace olympus::lane {
namespace {

using nlohmann::json;

json minimal() {
    return json{{"server", {{"url", "ws://127.0.0.1:8080/voice"}}},
                {"location", "store-1"},
                {"lane", "lane-1"},
                {"token", {{"file", "/run/token"}}}};
}

// The problems reported for `config`, or an empty list when it loads.
std::vector<std::string> problems(const json& config) {
    try {
        parse_lane_config(config.dump());
    } catch (const LaneConfigError& e) {
        return e.problems();
    }
    return {};
}

::testing::AssertionResult refused_with(const json& config, const std::string& expected) {
    const std::vector<std::string> found = problems(config);
    std::string all;
    for (const std::string& p : found) {
        if (p == expected) {
            return ::testing::AssertionSuccess();
        }
        all += "\n  " + p;
    }
    return ::testing::AssertionFailure() << "expected '" << expected << "', got:" << all;
}

// The example in samples/ is complete and valid, and every value in it arrives in the struct.
TEST(LaneConfig, LoadsTheSampleFile) {
    const LaneConfig c = load_lane_config(OLYMPUS_SAMPLE_LANE_JSON);
    EXPECT_EQ(c.server.url, "wss://voice.olympuscloud.ai/stream");
    EXPECT_EQ(c.location, "store-0042");
    EXPECT_EQ(c.lane, "lane-1");
    EXPECT_EQ(c.devices.input, "USB Audio");
    EXPECT_TRUE(c.audio_processing.aec);
    EXPECT_EQ(c.audio_processing.echo_suppression, "moderate");
    EXPECT_EQ(c.audio_processing.delay_ms, 40);
    EXPECT_TRUE(c.audio_processing.delay_agnostic);
    EXPECT_EQ(c.timeouts.silence, std::chrono::seconds(8));
    EXPECT_EQ(c.timeouts.reconnect_max, std::chrono::milliseconds(30000));
    EXPECT_EQ(c.token.file, "/etc/olympus/lane-1.token");
    EXPECT_TRUE(c.token.command.empty());
    EXPECT_EQ(c.metrics.bind, "127.0.0.1");
    EXPECT_EQ(c.metrics.port, 9464);
    EXPECT_FALSE(c.recording.enabled);
    EXPECT_FALSE(c.triggers.stdin_lines);
    EXPECT_TRUE(c.triggers.http);
    EXPECT_EQ(c.timeouts.device_stall, std::chrono::milliseconds(500));
    EXPECT_EQ(c.health.interval, std::chrono::seconds(60));

    // Every key the validator knows appears in the sample, so it doubles as a reference.
    std::ifstream file(OLYMPUS_SAMPLE_LANE_JSON);
    const json sample = json::parse(file);
    for (const LaneConfigKey& key : lane_config_reference()) {
        if (key.path == "token.command") {
            continue;  // the sample uses token.file; the two exclude each other
        }
        std::string pointer = "/" + key.path;
        std::replace(pointer.begin(), pointer.end(), '.', '/');
        EXPECT_EQ(sample.flatten().count(pointer), 1u) << key.path;
    }
}

// Only the required keys: everything else takes its documented default.
TEST(LaneConfig, FillsDefaults) {
    const LaneConfig c = parse_lane_config(minimal().dump());
    EXPECT_TRUE(c.audio_processing.aec && c.audio_processing.ns && c.audio_processing.agc &&
                c.audio_processing.vad);
    EXPECT_EQ(c.audio_processing.delay_ms, 40);
    EXPECT_EQ(c.metrics.bind, "127.0.0.1");
    EXPECT_EQ(c.metrics.port, 9464);
    EXPECT_EQ(c.timeouts.session_max, std::chrono::seconds(300));
    EXPECT_EQ(c.triggers.voice, std::chrono::milliseconds(300));
    EXPECT_TRUE(c.triggers.http);
    EXPECT_FALSE(c.triggers.stdin_lines);
    EXPECT_EQ(c.health.interval, std::chrono::seconds(60));
}

// A typo must not be silently ignored: unknown keys at any level are errors.
TEST(LaneConfig, RefusesUnknownKeys) {
    json c = minimal();
    c["audio_processing"]["aecc"] = true;
    c["lanes"] = "x";
    EXPECT_TRUE(refused_with(c, "audio_processing.aecc: unknown key"));
    EXPECT_TRUE(refused_with(c, "lanes: unknown key"));
}

// Wrong JSON types are named with what was expected and what was found.
TEST(LaneConfig, RefusesWrongTypes) {
    json c = minimal();
    c["audio_processing"]["delay_ms"] = "40";
    c["audio_processing"]["aec"] = 1;
    c["metrics"]["port"] = 9464.5;
    c["devices"] = "USB";
    c["token"] = {{"command", {"print-token", 3}}};
    EXPECT_TRUE(refused_with(c, "audio_processing.delay_ms: must be an integer (got string)"));
    EXPECT_TRUE(refused_with(c, "audio_processing.aec: must be a boolean (got integer)"));
    EXPECT_TRUE(refused_with(c, "metrics.port: must be an integer (got number)"));
    EXPECT_TRUE(refused_with(c, "devices: must be an object (got string)"));
    EXPECT_TRUE(refused_with(c, "token.command: must be an array of strings (got array)"));
}

// Numbers outside their range name the range and the value.
TEST(LaneConfig, RefusesOutOfRangeValues) {
    json c = minimal();
    c["audio_processing"]["delay_ms"] = 900;
    c["metrics"]["port"] = 70000;
    c["timeouts"]["silence_s"] = 0;
    EXPECT_TRUE(refused_with(c, "audio_processing.delay_ms: must be between 0 and 500 (got 900)"));
    EXPECT_TRUE(refused_with(c, "metrics.port: must be between 0 and 65535 (got 70000)"));
    EXPECT_TRUE(refused_with(c, "timeouts.silence_s: must be between 1 and 600 (got 0)"));
}

// Strings are checked too: URL scheme, enumerations, addresses, readable files.
TEST(LaneConfig, RefusesBadStrings) {
    json c = minimal();
    c["server"]["url"] = "http://example.com";
    c["server"]["ca_file"] = "/nonexistent/ca.pem";
    c["audio_processing"]["echo_suppression"] = "max";
    c["metrics"]["bind"] = "0.0.0.0.0";
    c["location"] = "";
    EXPECT_TRUE(refused_with(c, "server.url: must be a ws:// or wss:// URL"));
    EXPECT_TRUE(refused_with(c, "server.ca_file: cannot read file '/nonexistent/ca.pem'"));
    EXPECT_TRUE(
        refused_with(c, "audio_processing.echo_suppression: must be one of high, low, moderate"));
    EXPECT_TRUE(refused_with(c, "metrics.bind: must be an IPv4 or IPv6 address or localhost"));
    EXPECT_TRUE(refused_with(c, "location: must not be empty"));
}

// Missing required keys and broken cross-key rules are reported, all in one run.
TEST(LaneConfig, RefusesMissingKeysAndConflicts) {
    json c = json::object();
    c["token"] = {{"file", "/run/token"}, {"command", {"get-token"}}};
    c["recording"] = {{"enabled", true}};
    c["timeouts"] = {{"reconnect_initial_ms", 5000}, {"reconnect_max_ms", 1000}};
    c["metrics"] = {{"enabled", false}};
    EXPECT_TRUE(refused_with(c, "server.url: required"));
    EXPECT_TRUE(refused_with(c, "location: required"));
    EXPECT_TRUE(refused_with(c, "lane: required"));
    EXPECT_TRUE(refused_with(c, "token: set only one of token.file and token.command"));
    EXPECT_TRUE(refused_with(c, "recording.directory: required when recording.enabled is true"));
    EXPECT_TRUE(refused_with(
        c, "timeouts.reconnect_initial_ms: must not exceed timeouts.reconnect_max_ms"));
    EXPECT_TRUE(
        refused_with(c, "triggers.http: needs metrics.enabled (POST /trigger is served there)"));
    EXPECT_EQ(problems(c).size(), 7u);

    json none = minimal();
    none.erase("token");
    EXPECT_TRUE(refused_with(none, "token: required: set token.file or token.command"));
}

// Broken syntax and a missing file are errors too, with the file name in the message.
TEST(LaneConfig, RefusesBrokenSyntaxAndMissingFile) {
    try {
        parse_lane_config("{\"server\": {", "lane.json");
        FAIL() << "a truncated file loaded";
    } catch (const LaneConfigError& e) {
        EXPECT_EQ(e.source(), "lane.json");
        ASSERT_EQ(e.problems().size(), 1u);
        EXPECT_EQ(e.problems()[0].rfind("(syntax): ", 0), 0u) << e.problems()[0];
    }
    EXPECT_THROW(parse_lane_config("[1, 2]"), LaneConfigError);
    EXPECT_THROW(load_lane_config("/nonexistent/lane.json"), LaneConfigError);
}

// The audio_processing section becomes the processor's settings, switch by switch, and the
// processor accepts them.
TEST(LaneConfig, ConfiguresTheVoiceProcessor) {
    json c = minimal();
    c["audio_processing"] = {{"aec", true},
                             {"echo_suppression", "high"},
                             {"ns", false},
                             {"agc", false},
                             {"vad", true},
                             {"delay_ms", 120},
                             {"delay_agnostic", false}};
    const LaneConfig lane = parse_lane_config(c.dump());
    const audio::VoiceProcessorConfig vp = voice_processor_config(lane.audio_processing, 48000);
    EXPECT_EQ(vp.sample_rate, 48000);
    EXPECT_TRUE(vp.echo_cancellation);
    EXPECT_EQ(vp.echo_suppression, audio::EchoSuppression::high);
    EXPECT_FALSE(vp.noise_suppression);
    EXPECT_FALSE(vp.gain_control);
    EXPECT_TRUE(vp.voice_detection);
    EXPECT_EQ(vp.delay_ms, 120);
    EXPECT_FALSE(vp.delay_agnostic);
    auto processor = audio::VoiceProcessor::create(vp);
    ASSERT_TRUE(processor) << processor.error().what();
    EXPECT_EQ(processor.value()->frame_size(), 480u);
}

// The generated reference lists every key with its rule, in the shape the README uses.
TEST(LaneConfig, ReferenceTableCoversEveryKey) {
    const std::string table = lane_config_reference_markdown();
    EXPECT_NE(table.find("| `audio_processing.delay_ms` | integer | 40 | 0 .. 500 |"),
              std::string::npos);
    EXPECT_NE(table.find("| `server.url` | string | (required) |"), std::string::npos);
    EXPECT_EQ(lane_config_reference().size(), 30u);
}

// The installation guide shows exactly the table the validator generates, so the documented
// rules cannot drift from the enforced ones.
TEST(LaneConfig, ReadmeShowsTheGeneratedReference) {
    std::ifstream file(OLYMPUS_LANE_README);
    ASSERT_TRUE(file) << OLYMPUS_LANE_README;
    const std::string readme((std::istreambuf_iterator<char>(file)),
                             std::istreambuf_iterator<char>());
    EXPECT_NE(readme.find("<!-- lane-config-reference -->\n" + lane_config_reference_markdown() +
                          "<!-- /lane-config-reference -->"),
              std::string::npos)
        << "regenerate the table in " << OLYMPUS_LANE_README << " from:\n"
        << lane_config_reference_markdown();
}

}  // namespace
}  // namespace olympus::lane
