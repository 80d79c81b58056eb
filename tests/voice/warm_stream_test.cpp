// VoiceStream against the emulator: one warm connection that authenticates before any session
// and carries session after session, resumes a session after a drop, and falls back to a
// connection per session on a server without warm connections. Real speech, real Opus.
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "olympus/emulator/emulator.hpp"
#include "olympus/error.hpp"
#include "olympus/voice_session.hpp"
#include "olympus/voice_stream.hpp"

#include "audio/speech.hpp"
#include "support/test_env.hpp"
#include "voice_test_support.hpp"

namespace olympus {
namespace {

using namespace std::chrono_literals;
using emulator::Emulator;
namespace at = olympus::audio::test;

constexpr int kRate = 48000;

std::unique_ptr<VoiceSource> speech(bool realtime) {
    auto source = FileVoiceSource::open(test::speech_wav(kRate), kRate, 20, realtime, 0ms);
    EXPECT_TRUE(source);
    return std::move(source).value();
}

// Every control message a session showed its observer, for the test thread.
struct ControlLog {
    std::mutex mutex;
    std::vector<std::pair<bool, nlohmann::json>> messages;

    void install(VoiceSessionOptions& options) {
        options.on_control_message = [this](bool sent, const nlohmann::json& m) {
            std::lock_guard lock(mutex);
            messages.emplace_back(sent, m);
        };
    }
    std::vector<nlohmann::json> sent_of(const std::string& type) {
        std::lock_guard lock(mutex);
        std::vector<nlohmann::json> out;
        for (const auto& [sent, m] : messages) {
            if (sent && m.value("type", "") == type) {
                out.push_back(m);
            }
        }
        return out;
    }
};

// Streams the speech file as one session on `stream` and ends it; true when it ended cleanly.
bool one_car(VoiceSessionOptions options, VoiceStream& stream, bool* rode = nullptr) {
    VoiceSession session(options, stream, speech(false), nullptr, nullptr);
    if (rode != nullptr) {
        *rode = session.rides_stream();
    }
    session.start();
    EXPECT_TRUE(session.wait_for(VoiceState::active, 5s));
    EXPECT_TRUE(session.wait_source_done(10s));
    session.end();
    EXPECT_TRUE(session.wait_for(VoiceState::ended, 5s));
    return !session.stats().error && session.stats().frames_sent > 0;
}

TEST(VoiceStream, ThreeSessionsRideOneWarmConnection) {
    // The stream authenticates first, stays open past the server's auth timeout while idle, and
    // three cars are served on that one connection; the server hears each car's speech.
    auto emu_options = test::quiet_emulator();
    emu_options.auth_timeout = 300ms;
    Emulator emu(emu_options);
    emu.start();
    auto options = test::session_options(emu);
    VoiceStream stream(options.connection);
    stream.start();
    ASSERT_EQ(stream.wait_ready(5s), StreamMode::warm);
    EXPECT_FALSE(test::eventually([&] { return !stream.idle(); }, 800ms))
        << "the idle warm link was dropped";

    ControlLog log;
    log.install(options);
    for (int car = 0; car < 3; ++car) {
        bool rode = false;
        EXPECT_TRUE(one_car(options, stream, &rode)) << "car " << car;
        EXPECT_TRUE(rode);
        EXPECT_TRUE(test::eventually([&] { return stream.idle(); }, 2s)) << "car " << car;
    }

    auto sessions = emu.voice_sessions();
    ASSERT_EQ(sessions.size(), 3u);
    for (const auto& record : sessions) {
        EXPECT_EQ(record.end_reason, "completed");
        EXPECT_GT(test::best_correlation(at::speech(kRate), record.received_audio, 2000), 0.9);
    }
    EXPECT_EQ(emu.stats().connections_opened, 1u);
    EXPECT_EQ(emu.stats().received_of("auth"), 1u);
    auto starts = log.sent_of("start_session");
    ASSERT_EQ(starts.size(), 3u);
    EXPECT_EQ(starts[0]["access_token"], "<redacted>") << "the observer must never see a token";
    EXPECT_EQ(log.sent_of("end_session").size(), 3u);
}

TEST(VoiceStream, ResumesTheSessionWhenTheWarmLinkDrops) {
    // The network drops in the middle of a car's order: the stream reconnects, authenticates
    // again and the session resumes on it; the server ends up with every frame.
    Emulator emu(test::quiet_emulator());
    emu.start();
    auto options = test::session_options(emu);
    VoiceStream stream(options.connection);
    stream.start();
    ASSERT_EQ(stream.wait_ready(5s), StreamMode::warm);

    VoiceSession session(options, stream, speech(true), nullptr, nullptr);
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::active, 5s));
    ASSERT_TRUE(test::eventually([&] { return session.stats().frames_sent >= 40; }, 5s));
    emu.drop_all_connections(emulator::DropMode::abort);
    ASSERT_TRUE(session.wait_source_done(15s));
    ASSERT_TRUE(test::eventually([&] { return session.stats().resumes == 1; }, 5s));
    session.end();
    ASSERT_TRUE(session.wait_for(VoiceState::ended, 5s));

    auto record = test::only_session(emu);
    EXPECT_EQ(record.resumes, 1);
    EXPECT_EQ(record.frames_received, session.stats().frames_captured);
    EXPECT_EQ(record.end_reason, "completed");
    EXPECT_EQ(emu.stats().received_of("auth"), 2u) << "the reconnect authenticates again";
}

TEST(VoiceStream, FallsBackToAConnectionPerSessionWithoutWarmSupport) {
    // A server that answers `auth` on the voice stream with an error: the stream says so and
    // each car gets a connection of its own, as without a stream.
    auto emu_options = test::quiet_emulator();
    emu_options.voice_warm_connections = false;
    Emulator emu(emu_options);
    emu.start();
    auto options = test::session_options(emu);
    VoiceStream stream(options.connection);
    std::string why;
    stream.add_mode_observer([&why](StreamMode, const std::string& reason) { why = reason; });
    stream.start();
    ASSERT_EQ(stream.wait_ready(5s), StreamMode::per_session);
    EXPECT_NE(why.find("invalid_message"), std::string::npos) << why;

    for (int car = 0; car < 2; ++car) {
        bool rode = true;
        EXPECT_TRUE(one_car(options, stream, &rode)) << "car " << car;
        EXPECT_FALSE(rode);
    }
    auto sessions = emu.voice_sessions();
    ASSERT_EQ(sessions.size(), 2u);
    EXPECT_EQ(sessions[1].end_reason, "completed");
    EXPECT_EQ(emu.stats().connections_opened, 3u) << "the probe, then one per car";
}

TEST(VoiceStream, RefusesASecondSessionAtOnce) {
    // Two sessions cannot share the warm link: the second fails at once, the first goes on.
    Emulator emu(test::quiet_emulator());
    emu.start();
    auto options = test::session_options(emu);
    VoiceStream stream(options.connection);
    stream.start();
    ASSERT_EQ(stream.wait_ready(5s), StreamMode::warm);
    VoiceSession first(options, stream, speech(true), nullptr, nullptr);
    first.start();
    ASSERT_TRUE(first.wait_for(VoiceState::active, 5s));
    VoiceSession second(options, stream, speech(true), nullptr, nullptr);
    second.start();
    EXPECT_TRUE(second.wait_for(VoiceState::ended, 5s));
    EXPECT_EQ(second.stats().error, errc::session_refused);
    EXPECT_EQ(first.state(), VoiceState::active);
    first.end();
    EXPECT_TRUE(first.wait_for(VoiceState::ended, 5s));
    EXPECT_FALSE(first.stats().error);
}

}  // namespace
}  // namespace olympus
