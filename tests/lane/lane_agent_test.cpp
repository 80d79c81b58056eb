// The lane agent driven in-process against the emulator, on a software post whose speaker leaks
// into its microphone through a simulated box (EchoPath): echo cancellation keeps the agent
// from interrupting itself, cars are served one after another over one warm connection through
// a network drop and a device loss, sessions are recorded, and a missing or broken token is
// retried without a tight loop. Real speech (the sample orders), real Opus.
#include "olympus/lane/lane_agent.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sndfile.h>

#include "olympus/emulator/emulator.hpp"
#include "olympus/lane/session_recorder.hpp"

#include "audio/speech.hpp"
#include "simulated_post.hpp"
#include "support/test_env.hpp"

namespace olympus::lane {
namespace {

using namespace std::chrono_literals;
using emulator::Emulator;
using Json = nlohmann::json;
using test::PostControl;
namespace at = olympus::audio::test;

constexpr int kRate = 16000;

// Deadlines stretch by OLYMPUS_TEST_TIME_SCALE (sanitizer builds run several times slower).
std::chrono::milliseconds scaled(std::chrono::milliseconds deadline) {
    const char* text = std::getenv("OLYMPUS_TEST_TIME_SCALE");
    const double scale = text != nullptr ? std::max(1.0, std::atof(text)) : 1.0;
    return std::chrono::milliseconds(
        static_cast<long>(static_cast<double>(deadline.count()) * scale));
}

const std::vector<float>& order(const std::string& name) {
    static std::map<std::string, std::vector<float>> cache;
    auto& pcm = cache[name];
    if (pcm.empty()) {
        int rate = 0;
        pcm = at::read_wav(std::string(OLYMPUS_SAMPLE_ORDERS) + "/" + name + ".wav", &rate);
        EXPECT_EQ(rate, kRate);
    }
    return pcm;
}

emulator::EmulatorOptions lane_emulator(std::chrono::milliseconds greeting) {
    emulator::EmulatorOptions options;
    options.ping_interval = 1h;
    options.greeting_duration = greeting;
    // The sample orders pause for breath up to ~0.6 s; a whole order is one utterance, so the
    // reply never starts while the customer is still talking.
    options.utterance_silence = 900ms;
    return options;
}

// An agent on a software post against `emu`, with the config tweaked by `edit`.
class Lane {
public:
    Lane(Emulator& emu, PostControl::Box box, const std::function<void(Json&)>& edit = {})
        : dir_(olympus::test::make_temp_dir("olympus-lane-agent")),
          post_(std::make_shared<test::PostControl>(box)) {
        std::ofstream(dir_ + "/token") << emu.mint_token();
        Json config = {{"server", {{"url", emu.voice_url()}}},
                       {"location", "store-7"},
                       {"lane", "lane-3"},
                       {"token", {{"file", dir_ + "/token"}}},
                       {"metrics", {{"enabled", false}}},
                       {"triggers", {{"http", false}}},
                       {"timeouts",
                        {{"silence_s", 2},
                         {"reconnect_initial_ms", 100},
                         {"reconnect_max_ms", 400},
                         {"device_retry_max_ms", 400}}},
                       {"recording", {{"enabled", true}, {"directory", dir_}}}};
        if (edit) {
            edit(config);
        }
        LaneAgentOptions options;
        options.config = parse_lane_config(config.dump());
        options.devices = std::make_unique<test::SimulatedPost>(post_);
        agent_ = std::make_unique<LaneAgent>(std::move(options), registry_);
    }
    ~Lane() {
        agent_.reset();
        std::filesystem::remove_all(dir_);
    }

    LaneAgent& agent() { return *agent_; }
    test::PostControl& post() { return *post_; }
    const std::string& dir() const { return dir_; }

    // Waits until the speaker played something and then fell quiet for `quiet`.
    bool speaker_done(std::size_t from, std::chrono::milliseconds quiet,
                      std::chrono::milliseconds timeout) {
        return olympus::test::eventually(
            [&] {
                auto played = post_->speaker();
                if (post_->loud_speaker_samples(from) == 0) {
                    return false;
                }
                const auto tail = static_cast<std::size_t>(quiet.count()) * kRate / 1000;
                return played.size() > from + tail &&
                       post_->loud_speaker_samples(played.size() - tail) == 0;
            },
            timeout);
    }

private:
    std::string dir_;
    std::shared_ptr<test::PostControl> post_;
    MetricsRegistry registry_;
    std::unique_ptr<LaneAgent> agent_;
};

struct EchoScene {
    emulator::VoiceSessionRecord record;
    std::size_t loud_speaker = 0;               // samples the speaker played above -50 dBFS
    std::uint64_t interrupts_before_order = 0;  // while only the agent had spoken
};

// A car: the greeting plays, the customer orders, the agent replies; the box leaks both of the
// agent's turns into the microphone. With the canceller on, the scene ends when the silence
// after the reply ends the session; with it off, once the server interrupted the agent (which
// then hears itself for good: every echo is an utterance that gets a reply).
EchoScene run_echo_scene(bool cancel) {
    Emulator emu(lane_emulator(1500ms));
    emu.start();
    Lane lane(emu, PostControl::Box{}, [cancel](Json& c) {
        c["audio_processing"] = {{"aec", cancel}};
    });
    lane.agent().start();
    EXPECT_TRUE(lane.agent().wait_for(LaneState::waiting, scaled(10s)));
    const auto interrupts = [&emu] {
        auto sessions = emu.voice_sessions();
        return sessions.empty() ? 0u : sessions.front().interrupts_sent;
    };

    // The car arrives, the greeting plays out, then the customer orders.
    EXPECT_EQ(lane.agent().trigger("http"), TriggerResult::accepted);
    EXPECT_TRUE(lane.speaker_done(0, 400ms, scaled(10s)) || interrupts() > 0)
        << "no greeting played";
    const std::size_t greeting_end = lane.post().speaker().size();
    const auto before_order = interrupts();
    lane.post().say(order("double-cheeseburger"));

    // The reply (an echo of the order) plays out and the silence after it ends the session.
    if (cancel) {
        EXPECT_TRUE(lane.speaker_done(greeting_end, 600ms, scaled(20s))) << "no reply played";
        EXPECT_TRUE(lane.agent().wait_for(LaneState::waiting, scaled(15s)));
    } else {
        EXPECT_TRUE(olympus::test::eventually([&] { return interrupts() > 0; }, scaled(20s)));
    }
    EchoScene scene;
    auto sessions = emu.voice_sessions();
    EXPECT_EQ(sessions.size(), 1u);
    if (!sessions.empty()) {
        scene.record = sessions.front();
    }
    scene.loud_speaker = lane.post().loud_speaker_samples();
    scene.interrupts_before_order = before_order;
    std::printf("aec=%d interrupts=%llu utterances=%llu replies=%llu speaker_loud_s=%.2f\n",
                cancel ? 1 : 0, static_cast<unsigned long long>(scene.record.interrupts_sent),
                static_cast<unsigned long long>(scene.record.utterances),
                static_cast<unsigned long long>(scene.record.replies),
                static_cast<double>(scene.loud_speaker) / kRate);
    return scene;
}

TEST(LaneAgent, EchoCancellationKeepsTheAgentFromInterruptingItself) {
    // With the canceller on, neither the greeting nor the reply leaking from speaker to
    // microphone makes the server think the customer talked over the agent.
    const EchoScene scene = run_echo_scene(true);
    EXPECT_EQ(scene.record.interrupts_sent, 0u);
    EXPECT_GE(scene.record.utterances, 1u) << "the customer's order was not heard";
    EXPECT_GE(scene.record.replies, 1u);
    EXPECT_GT(scene.loud_speaker, static_cast<std::size_t>(2 * kRate))
        << "the agent's greeting and reply must have been played for the test to mean anything";
}

TEST(LaneAgent, WithoutEchoCancellationTheAgentInterruptsItself) {
    // The same box with the canceller off: the agent hears its own greeting and the server
    // interrupts it before the customer has said a word.
    const EchoScene scene = run_echo_scene(false);
    EXPECT_GE(scene.interrupts_before_order, 1u);
    EXPECT_GE(scene.record.interrupts_sent, 1u);
    EXPECT_GT(scene.loud_speaker, static_cast<std::size_t>(kRate / 10)) << "nothing was played";
}

// Waits until the lane is back in `waiting` after a session: the silence after the agent's last
// words ended it.
void finish_car(Lane& lane, std::uint64_t cars) {
    EXPECT_TRUE(olympus::test::eventually(
        [&] { return lane.agent().metrics().sessions_ended.value() >= cars; }, scaled(30s)))
        << "car " << cars << " was not served to the end";
    EXPECT_TRUE(lane.agent().wait_for(LaneState::waiting, scaled(10s))) << "car " << cars;
}

TEST(LaneAgent, ServesThreeCarsThroughADeviceLossAndANetworkDrop) {
    // Car 1 is noticed by its driver's voice; then the microphone stalls and the post is
    // unplugged for a while; car 2 comes by the loop detector and the network drops in the
    // middle of its order (the session resumes); car 3 comes by a line on stdin. The warm
    // connection carries all three, and the counters show each event.
    Emulator emu(lane_emulator(500ms));
    emu.start();
    Lane lane(emu, PostControl::Box{}, [](Json& c) { c["timeouts"]["silence_s"] = 1; });
    auto& agent = lane.agent();
    auto& m = agent.metrics();
    agent.start();
    ASSERT_TRUE(agent.wait_for(LaneState::waiting, scaled(10s)));

    // Car 1: the driver speaks at the post.
    lane.post().say(order("chicken-sandwich"));
    ASSERT_TRUE(agent.wait_for(LaneState::in_session, scaled(5s))) << "the voice was not noticed";
    finish_car(lane, 1);

    // The device stalls, is found unplugged when reopened, then comes back.
    lane.post().set_unplugged(true);
    lane.post().set_stalled(true);
    ASSERT_TRUE(agent.wait_for(LaneState::device_lost, scaled(5s)));
    EXPECT_EQ(agent.trigger("http"), TriggerResult::no_device);
    ASSERT_TRUE(
        olympus::test::eventually([&] { return m.device_errors.value() >= 2; }, scaled(5s)));
    EXPECT_EQ(m.device_up.value(), 0.0);
    lane.post().set_stalled(false);
    lane.post().set_unplugged(false);
    ASSERT_TRUE(agent.wait_for(LaneState::waiting, scaled(5s))) << "the device did not come back";
    EXPECT_EQ(m.device_up.value(), 1.0);

    // Car 2: the loop detector; the link drops while the customer orders.
    ASSERT_EQ(agent.trigger("http"), TriggerResult::accepted);
    ASSERT_TRUE(agent.wait_for(LaneState::in_session, scaled(5s)));
    EXPECT_EQ(agent.trigger("http"), TriggerResult::busy);
    ASSERT_TRUE(
        olympus::test::eventually([&] { return emu.voice_sessions().size() == 2; }, scaled(5s)));
    lane.post().say(order("two-coffees"));
    ASSERT_TRUE(olympus::test::eventually(
        [&] { return emu.voice_sessions()[1].frames_received >= 50; }, scaled(5s)));
    emu.drop_all_connections(emulator::DropMode::abort);
    finish_car(lane, 2);

    // Car 3: a line on stdin.
    ASSERT_EQ(agent.trigger("stdin"), TriggerResult::accepted);
    lane.post().say(order("kids-meal"));
    finish_car(lane, 3);

    auto sessions = emu.voice_sessions();
    ASSERT_EQ(sessions.size(), 3u);
    EXPECT_EQ(sessions[1].resumes, 1) << "car 2's session was not resumed after the drop";
    for (const auto& record : sessions) {
        EXPECT_GE(record.utterances, 1u) << record.session_id;
        EXPECT_FALSE(record.end_reason.empty()) << record.session_id;
    }
    EXPECT_EQ(m.sessions_started.value(), 3u);
    EXPECT_EQ(m.sessions_ended.value(), 3u);
    EXPECT_GE(m.device_errors.value(), 2u);
    EXPECT_GE(m.reconnects.value(), 1u);
    EXPECT_EQ(m.connected.value(), 1.0);
    EXPECT_EQ(m.stream_warm.value(), 1.0);
    EXPECT_EQ(m.triggers_ignored.value(), 2u);
    EXPECT_EQ(emu.stats().connections_opened, 2u) << "one warm link, one reconnect";
    EXPECT_GT(m.time_to_first_audio.value(), 0.0);
    EXPECT_LT(m.time_to_first_audio.value(), 2.0);
}

std::vector<float> decimated(const std::vector<float>& x) {
    std::vector<float> out(x.size() / 4);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = (x[4 * i] + x[4 * i + 1] + x[4 * i + 2] + x[4 * i + 3]) / 4;
    }
    return out;
}

// Where `a` sits in `b` (lag in samples, searched up to `max_lag` on both decimated by 4), and
// how well it matches there.
std::pair<long, double> locate(const std::vector<float>& a, const std::vector<float>& b,
                               long max_lag) {
    const auto da = decimated(a);
    const auto db = decimated(b);
    const long lag = at::best_lag(da, db, -max_lag / 4, max_lag / 4);
    return {lag * 4, at::correlation(da, db, lag)};
}

std::vector<Json> read_jsonl(const std::string& path) {
    std::ifstream in(path);
    std::vector<Json> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(Json::parse(line));
    }
    return lines;
}

TEST(LaneAgent, RecordsTheCustomerAndTheAgentSideBySide) {
    // A recorded session holds the customer on channel 1 and the agent on channel 2, each
    // matching what was said at the post, plus every control message with its time.
    Emulator emu(lane_emulator(800ms));
    emu.start();
    Lane lane(emu, PostControl::Box{});
    lane.agent().start();
    ASSERT_TRUE(lane.agent().wait_for(LaneState::waiting, scaled(10s)));
    ASSERT_EQ(lane.agent().trigger("http"), TriggerResult::accepted);
    ASSERT_TRUE(lane.speaker_done(0, 400ms, scaled(10s)));
    const auto& customer = order("double-cheeseburger");
    lane.post().say(customer);
    finish_car(lane, 1);

    // The WAV: two channels at the lane's rate, each matching its side.
    const std::string wav = lane.agent().last_recording();
    ASSERT_FALSE(wav.empty());
    SF_INFO info{};
    SNDFILE* file = sf_open(wav.c_str(), SFM_READ, &info);
    ASSERT_NE(file, nullptr) << wav;
    std::vector<float> frames(static_cast<std::size_t>(info.frames * info.channels));
    sf_readf_float(file, frames.data(), info.frames);
    const char* software = sf_get_string(file, SF_STR_SOFTWARE);
    ASSERT_NE(software, nullptr);
    EXPECT_EQ(std::string(software).rfind(kRecordingSoftware, 0), 0u) << software;
    sf_close(file);
    ASSERT_EQ(info.channels, 2);
    EXPECT_EQ(info.samplerate, kRate);
    std::vector<float> left, right;
    for (std::size_t i = 0; i + 1 < frames.size(); i += 2) {
        left.push_back(frames[i]);
        right.push_back(frames[i + 1]);
    }
    const auto speaker = lane.post().speaker();
    const auto [customer_at, customer_left] = locate(customer, left, 8 * kRate);
    const double agent_right = locate(speaker, right, 8 * kRate).second;
    const double customer_right =
        at::correlation(decimated(customer), decimated(right), customer_at / 4);
    std::printf("customer~ch1=%.2f agent~ch2=%.2f ch2 while the customer spoke=%.2f s=%.1f\n",
                customer_left, agent_right, customer_right,
                static_cast<double>(info.frames) / kRate);
    EXPECT_GT(customer_left, 0.8);
    EXPECT_GT(agent_right, 0.8);
    EXPECT_LT(std::fabs(customer_right), 0.3)
        << "channel 2 must be quiet while the customer speaks";

    // The JSONL: a header, then every message of the session in order, token redacted.
    const auto lines = read_jsonl(wav.substr(0, wav.size() - 4) + ".jsonl");
    ASSERT_GE(lines.size(), 6u);
    EXPECT_EQ(lines[0]["type"], "recording");
    EXPECT_EQ(lines[0]["channels"]["1"], "customer");
    std::vector<std::string> types;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        types.push_back(lines[i]["dir"].get<std::string>() + ":" +
                        lines[i]["message"]["type"].get<std::string>());
        EXPECT_TRUE(lines[i]["t"].is_string());
        EXPECT_GE(lines[i]["offset_ms"].get<long>(), 0);
    }
    EXPECT_EQ(types.front(), "sent:start_session");
    EXPECT_EQ(lines[1]["message"]["access_token"], "<redacted>");
    for (const char* expected :
         {"received:session_started", "received:final_transcript", "received:final_response",
          "sent:end_session", "received:session_ended"}) {
        EXPECT_NE(std::find(types.begin(), types.end(), expected), types.end()) << expected;
    }
}

TEST(LaneAgent, RetriesAMissingOrBrokenTokenWithoutATightLoop) {
    // No token file, then one holding garbage, then one the server rejects: each is counted and
    // retried on the backoff (never in a loop), and a good token brings the lane up.
    Emulator emu(lane_emulator(0ms));
    emu.start();
    Lane lane(emu, PostControl::Box{});
    const std::string token = lane.dir() + "/token";
    std::filesystem::remove(token);
    auto& m = lane.agent().metrics();
    lane.agent().start();
    ASSERT_TRUE(olympus::test::eventually([&] { return m.token_errors.value() >= 2; }, scaled(5s)));
    std::ofstream(token) << "this is not a token\n";
    const auto before = m.token_errors.value();
    std::this_thread::sleep_for(1500ms);  // the retry rate itself is what is measured
    const auto in_window = m.token_errors.value() - before;
    EXPECT_GE(in_window, 1u) << "the garbage token was not noticed";
    EXPECT_LE(in_window, 8u) << "retried in a loop: backoff is 100..400 ms";
    EXPECT_EQ(lane.agent().state(), LaneState::warming);

    // A well-formed token signed by someone else: the server rejects it; still no loop.
    Emulator other(lane_emulator(0ms));
    std::ofstream(token) << other.mint_token();
    ASSERT_TRUE(olympus::test::eventually(
        [&] { return emu.stats().error_count("invalid_token") >= 2; }, scaled(5s)));
    EXPECT_EQ(lane.agent().state(), LaneState::warming);

    // The right token: the lane warms up.
    std::ofstream(token) << emu.mint_token();
    EXPECT_TRUE(lane.agent().wait_for(LaneState::waiting, scaled(5s)));
    EXPECT_EQ(m.connected.value(), 1.0);
}

}  // namespace
}  // namespace olympus::lane
