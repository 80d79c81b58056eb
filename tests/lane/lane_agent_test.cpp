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

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "olympus/audio/wav_sink.hpp"
#include "olympus/emulator/emulator.hpp"

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
        if (const char* extra = std::getenv("LANE_AP")) {
            c["audio_processing"].update(Json::parse(extra));
        }
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
    if (std::getenv("LANE_DUMP")) {
        auto dump = [](const std::string& path, const std::vector<float>& pcm) {
            auto sink = audio::WavSink::create(path, kRate);
            (void)sink.value().write(pcm);
            (void)sink.value().close();
        };
        dump("/tmp/dump-speaker.wav", lane.post().speaker());
        dump("/tmp/dump-mic.wav", lane.post().microphone());
        dump("/tmp/dump-uplink.wav", scene.record.received_audio);
    }
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

}  // namespace
}  // namespace olympus::lane
