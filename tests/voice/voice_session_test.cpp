// VoiceSession against the emulator's voice stream, over loopback with real espeak-ng speech and
// real Opus: what the server hears matches the file, replies are played and recorded, barge-in,
// audio_url replies and their failures, resume after a dropped link, and servers that never
// answer or refuse.
#include "olympus/voice_session.hpp"

#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "olympus/emulator/emulator.hpp"
#include "olympus/error.hpp"

#include "audio/speech.hpp"
#include "support/test_env.hpp"
#include "voice_test_support.hpp"

namespace olympus {
namespace {

using namespace std::chrono_literals;
using emulator::Emulator;
namespace at = olympus::audio::test;

constexpr int kRate = 48000;
constexpr int kFrame = 960;

// Collects events from the io thread for the test thread.
class EventLog {
public:
    VoiceSession::EventHandler handler() {
        return [this](const VoiceEvent& e) {
            std::lock_guard lock(mutex_);
            events_.push_back(e);
        };
    }
    std::vector<VoiceEvent> of(VoiceEvent::Kind kind) const {
        std::lock_guard lock(mutex_);
        std::vector<VoiceEvent> out;
        for (const auto& e : events_) {
            if (e.kind == kind) {
                out.push_back(e);
            }
        }
        return out;
    }
    bool has_error(errc code) const {
        for (const auto& e : of(VoiceEvent::Kind::error)) {
            if (e.error == code) {
                return true;
            }
        }
        return false;
    }

private:
    mutable std::mutex mutex_;
    std::vector<VoiceEvent> events_;
};

std::unique_ptr<VoiceSource> speech_source(bool realtime, std::chrono::milliseconds silence) {
    auto source = FileVoiceSource::open(test::speech_wav(kRate), kRate, 20, realtime, silence);
    EXPECT_TRUE(source) << (source ? "" : source.error().what());
    return std::move(source).value();
}

class VoiceSessionTest : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::make_temp_dir("olympus-voice-session"); }

    void start_emulator(emulator::EmulatorOptions options = test::quiet_emulator()) {
        emu_ = std::make_unique<Emulator>(options);
        emu_->start();
    }

    std::unique_ptr<WavVoiceSink> wav_sink(const std::string& name) {
        auto sink = WavVoiceSink::create(dir_ + "/" + name, kRate);
        EXPECT_TRUE(sink);
        return std::move(sink).value();
    }

    // Ends the session the protocol's way and waits for the server to confirm.
    static void end_and_wait(VoiceSession& session) {
        session.end();
        EXPECT_TRUE(session.wait_for(VoiceState::ended, 5s));
    }

    std::string dir_;
    std::unique_ptr<Emulator> emu_;
    EventLog log_;
};

TEST_F(VoiceSessionTest, ServerHearsTheFileExactly) {
    // A file sent as fast as possible arrives whole: every frame, and audio that matches.
    start_emulator();
    VoiceSession session(test::session_options(*emu_), speech_source(false, 0ms), nullptr,
                         log_.handler());
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::active, 5s));
    ASSERT_TRUE(session.wait_source_done(10s));
    end_and_wait(session);

    const auto& speech = at::speech(kRate);
    auto record = test::only_session(*emu_);
    auto frames = (speech.size() + kFrame - 1) / kFrame;
    EXPECT_EQ(record.frames_received, frames);
    EXPECT_EQ(session.stats().frames_sent, frames);
    EXPECT_EQ(record.bad_frames, 0u);
    EXPECT_EQ(record.end_reason, "completed");
    EXPECT_GT(test::best_correlation(speech, record.received_audio, 2000), 0.9);

    // The session's own close of the link is no dropped link.
    EXPECT_TRUE(test::eventually(
        [&] { return session.connection().state() == ConnectionState::disconnected; }));
    EXPECT_EQ(session.stats().link_drops, 0u);
}

TEST_F(VoiceSessionTest, PlaysAndRecordsTheReply) {
    // The emulator echoes the utterance; the WAV sink records that echo.
    start_emulator();
    auto path = dir_ + "/reply.wav";
    {
        VoiceSession session(test::session_options(*emu_), speech_source(false, 1000ms),
                             wav_sink("reply.wav"), log_.handler());
        session.start();
        ASSERT_TRUE(session.wait_source_done(10s));
        ASSERT_TRUE(test::eventually([&] { return session.stats().replies == 1; }, 5s));
        ASSERT_TRUE(session.wait_replies_done(300ms, 10s));
        auto stats = session.stats();
        EXPECT_GT(stats.frames_played, 100u);
        EXPECT_GE(stats.reply_first_audio_ms, 0.0);
        EXPECT_LT(stats.reply_first_audio_ms, 1000.0);
        end_and_wait(session);
    }
    auto reply = test::read_wav_file(path);
    const auto& speech = at::speech(kRate);
    EXPECT_NEAR(static_cast<double>(reply.size()) / kRate,
                static_cast<double>(speech.size()) / kRate, 0.6);
    EXPECT_GT(test::best_correlation(speech, reply, 24000), 0.6);
    EXPECT_EQ(log_.of(VoiceEvent::Kind::final_transcript).size(), 1u);
    EXPECT_EQ(log_.of(VoiceEvent::Kind::response_audio_done).size(), 1u);
}

TEST_F(VoiceSessionTest, BargeInStopsPlaybackAndReportsWhatWasWritten) {
    // The application barges in one second into a three-second reply.
    start_emulator();
    auto path = dir_ + "/barge.wav";
    std::int64_t reported = -1;
    {
        VoiceSession session(test::session_options(*emu_), speech_source(false, 1000ms),
                             wav_sink("barge.wav"), log_.handler());
        session.start();
        ASSERT_TRUE(test::eventually([&] { return session.stats().frames_played >= 50; }, 10s));
        session.barge_in();
        ASSERT_TRUE(test::eventually(
            [&] { return !test::only_session(*emu_).barge_in_played_ms.empty(); }, 3s));
        reported = test::only_session(*emu_).barge_in_played_ms.front();

        // Nothing more of that reply is played, however much of it was still on its way.
        auto played = session.stats().frames_played;
        std::this_thread::sleep_for(300ms);
        EXPECT_EQ(session.stats().frames_played, played);
        end_and_wait(session);
    }
    auto written = test::read_wav_file(path);
    auto written_ms = static_cast<std::int64_t>(written.size() * 1000 / kRate);
    EXPECT_NEAR(reported, written_ms, 2);
    EXPECT_GE(reported, 1000);
    EXPECT_LT(reported, 2000);
    ASSERT_GT(written.size(), 240u);

    // The reply ends in a fade, not a cut: the last samples ramp to silence.
    EXPECT_LT(std::abs(written.back()), 0.01f);
    EXPECT_EQ(log_.of(VoiceEvent::Kind::barge_in).size(), 1u);
}

TEST_F(VoiceSessionTest, ServerInterruptStopsTheReply) {
    // The customer talks over the echo: the server interrupts, the client stops and reports.
    start_emulator();
    auto speech = at::speech(kRate);
    std::vector<float> twice = speech;
    twice.resize(speech.size() + kRate * 3 / 2, 0.0f);  // reply starts in this gap
    twice.insert(twice.end(), speech.begin(), speech.end());
    auto path = dir_ + "/twice.wav";
    {
        auto sink = audio::WavSink::create(path, kRate);
        ASSERT_TRUE(sink);
        ASSERT_FALSE(sink.value().write(twice));
    }
    auto source = FileVoiceSource::open(path, kRate, 20, true, 500ms);
    ASSERT_TRUE(source);
    VoiceSession session(test::session_options(*emu_), std::move(source).value(),
                         wav_sink("interrupted.wav"), log_.handler());
    session.start();
    ASSERT_TRUE(test::eventually([&] { return session.stats().barge_ins >= 1; }, 15s));
    end_and_wait(session);

    auto record = test::only_session(*emu_);
    EXPECT_GE(record.interrupts_sent, 1u);
    ASSERT_GE(record.barge_in_played_ms.size(), 1u);
    auto interrupts = log_.of(VoiceEvent::Kind::interrupt);
    ASSERT_GE(interrupts.size(), 1u);
    auto barge = log_.of(VoiceEvent::Kind::barge_in);
    ASSERT_GE(barge.size(), 1u);
    EXPECT_EQ(barge.front().id, interrupts.front().id);
    // The reply was cut well before its 3 s end.
    EXPECT_GT(record.barge_in_played_ms.front(), 0);
    EXPECT_LT(record.barge_in_played_ms.front(), 2500);
}

class AudioUrlTest : public VoiceSessionTest, public ::testing::WithParamInterface<bool> {};

INSTANTIATE_TEST_SUITE_P(Transports, AudioUrlTest, ::testing::Values(false, true),
                         [](const auto& param) { return param.param ? "wss" : "ws"; });

TEST_P(AudioUrlTest, FetchesAndPlaysTheReply) {
    // The reply comes as an audio_url (http or https with the stream's CA), an MP3 file as the
    // docs describe, or a WAV file; either is decoded and played.
    for (auto type : {emulator::AudioFileType::mp3, emulator::AudioFileType::wav}) {
        const std::string name = type == emulator::AudioFileType::mp3 ? "mp3" : "wav";
        SCOPED_TRACE(name);
        auto options = test::quiet_emulator(GetParam());
        options.audio_url_type = type;
        start_emulator(options);
        emu_->set_reply_mode(emulator::ReplyMode::audio_url);
        EventLog log;
        {
            VoiceSession session(test::session_options(*emu_), speech_source(false, 1000ms),
                                 wav_sink("url-" + name + ".wav"), log.handler());
            session.start();
            ASSERT_TRUE(
                test::eventually([&] { return session.stats().audio_urls_played == 1; }, 10s));
            ASSERT_TRUE(session.wait_replies_done(300ms, 10s));
            end_and_wait(session);
        }
        auto reply = test::read_wav_file(dir_ + "/url-" + name + ".wav");
        EXPECT_GT(test::best_correlation(at::speech(kRate), reply, 24000), 0.6);
        EXPECT_EQ(log.of(VoiceEvent::Kind::audio_url_played).size(), 1u);
        EXPECT_TRUE(log.of(VoiceEvent::Kind::error).empty());
    }
}

TEST_P(AudioUrlTest, FailuresAreTypedErrors) {
    // 404, a body that is not audio, and (over https) a certificate nobody trusts.
    start_emulator(test::quiet_emulator(GetParam()));
    Emulator other(test::quiet_emulator(true));
    std::vector<std::pair<emulator::ReplyMode, errc>> cases = {
        {emulator::ReplyMode::audio_url_missing, errc::audio_fetch_failed},
        {emulator::ReplyMode::audio_url_garbage, errc::audio_not_decodable}};
    if (GetParam()) {
        cases.emplace_back(emulator::ReplyMode::audio_url, errc::audio_fetch_tls);
    }
    for (const auto& [mode, code] : cases) {
        const errc expected = code;  // a lambda below captures it (not a structured binding)
        SCOPED_TRACE(make_error_code(expected).message());
        EventLog log;
        emu_->set_reply_mode(mode);
        auto options = test::session_options(*emu_);
        if (expected == errc::audio_fetch_tls) {
            options.audio_url_tls = options.connection.tls;
            options.audio_url_tls->ca_pem = other.certificate_pem();
        }
        VoiceSession session(options, speech_source(false, 1000ms), nullptr, log.handler());
        session.start();
        ASSERT_TRUE(test::eventually([&] { return log.has_error(expected); }, 10s));
        EXPECT_EQ(session.state(), VoiceState::active);  // the session carries on
        EXPECT_EQ(session.stats().audio_urls_played, 0u);
        end_and_wait(session);
    }
}

TEST_F(VoiceSessionTest, ResumesAfterDropWithoutLosingFrames) {
    // A 100 ms outage, well inside the 2 s buffer: the server ends up with every frame.
    start_emulator();
    VoiceSession session(test::session_options(*emu_), speech_source(true, 1000ms), nullptr,
                         log_.handler());
    session.start();
    ASSERT_TRUE(test::eventually([&] { return session.stats().frames_sent >= 50; }, 5s));
    emu_->drop_all_connections(emulator::DropMode::abort);
    ASSERT_TRUE(test::eventually([&] { return session.stats().resumes == 1; }, 5s));
    ASSERT_TRUE(session.wait_source_done(10s));
    end_and_wait(session);

    auto stats = session.stats();
    auto record = test::only_session(*emu_);
    EXPECT_EQ(record.resumes, 1);
    EXPECT_EQ(stats.outage_dropped, 0u);
    EXPECT_GT(stats.outage_peak, 0u);
    EXPECT_EQ(stats.frames_sent, stats.frames_captured);
    EXPECT_EQ(stats.frames_captured, (at::speech(kRate).size() + kFrame - 1) / kFrame + 50);
    // Frames the aborted link swallowed were sent again after the resume: nothing is missing.
    EXPECT_EQ(record.frames_received, stats.frames_sent);
}

TEST_F(VoiceSessionTest, CountsEveryDropOfALongOutage) {
    // The server goes silent (the client declares the link dead after 300 ms, while the server
    // still reads every frame), then refuses reconnects for about 3 s against a 1 s buffer: the
    // oldest frames go, and each one is counted. A silent server rather than an abort keeps
    // frames from dying in flight, which no client can count.
    start_emulator();
    auto options = test::session_options(*emu_);
    options.outage_buffer = 1000ms;
    options.connection.heartbeat.server_ping_interval = 200ms;
    options.connection.heartbeat.pong_timeout = 100ms;
    options.connection.heartbeat.dead_link_slack = 0ms;
    options.connection.heartbeat.client_ping_idle = 50ms;
    options.connection.reconnect.base = 100ms;
    options.connection.reconnect.cap = 100ms;
    VoiceSession session(options, speech_source(true, 2000ms), nullptr, log_.handler());
    session.start();
    ASSERT_TRUE(test::eventually([&] { return session.stats().frames_sent >= 25; }, 5s));
    emu_->refuse_next_connections(30);
    emu_->set_silent(true);
    ASSERT_TRUE(session.wait_for(VoiceState::resuming, 5s));
    emu_->set_silent(false);
    ASSERT_TRUE(test::eventually([&] { return session.stats().resumes == 1; }, 10s));
    ASSERT_TRUE(session.wait_source_done(10s));
    end_and_wait(session);

    auto stats = session.stats();
    auto record = test::only_session(*emu_);
    EXPECT_EQ(stats.outage_peak, 50u);
    EXPECT_GT(stats.outage_dropped, 50u);
    EXPECT_EQ(stats.frames_sent + stats.outage_dropped, stats.frames_captured);
    EXPECT_EQ(stats.uplink_overflows, 0u);
    EXPECT_EQ(record.frames_received, stats.frames_sent);
}

TEST_F(VoiceSessionTest, DestroyedWhileItsEventHandlerRuns) {
    // The application destroys the session while a slow event handler still runs on the io
    // thread (found by voice_inbound_fuzz): the destructor waits for it, and nothing crashes.
    start_emulator();
    std::atomic<bool> in_handler{false};
    auto session = std::make_unique<VoiceSession>(
        test::session_options(*emu_), nullptr, nullptr, [&](const VoiceEvent& e) {
            if (e.kind == VoiceEvent::Kind::session_started) {
                in_handler = true;
                std::this_thread::sleep_for(300ms);  // a handler that blocks, against the rules
            }
        });
    session->start();
    ASSERT_TRUE(test::eventually([&] { return in_handler.load(); }));
    session.reset();
    EXPECT_TRUE(test::eventually([&] { return emu_->stats().connections_open == 0; }));
}

TEST_F(VoiceSessionTest, ServerThatNeverAnswersTimesOut) {
    // start_session goes unanswered: a timeout error, well within the bound, and no retry loop.
    start_emulator();
    emu_->set_silent(true);
    auto options = test::session_options(*emu_);
    options.start_timeout = 500ms;
    VoiceSession session(options, speech_source(true, 0ms), nullptr, log_.handler());
    auto begin = std::chrono::steady_clock::now();
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::ended, 5s));
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
    EXPECT_EQ(session.stats().error, make_error_code(errc::timeout));
    EXPECT_TRUE(log_.has_error(errc::timeout));
    EXPECT_EQ(session.stats().frames_sent, 0u);
}

TEST_F(VoiceSessionTest, RejectedTokenEndsTheSession) {
    // A token the server refuses (auth_error) ends the session with invalid_token.
    start_emulator();
    auto options = test::session_options(*emu_);
    options.connection.token_provider = std::make_shared<FixedTokenProvider>("not-a-jwt");
    VoiceSession session(options, nullptr, nullptr, log_.handler());
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::ended, 5s));
    EXPECT_EQ(session.stats().error, make_error_code(errc::invalid_token));
}

TEST_F(VoiceSessionTest, MissingFileFailsToOpenWithItsName) {
    // The source fails at open, before any session exists, naming the file.
    auto source = FileVoiceSource::open(dir_ + "/no-such-order.wav", kRate, 20, true);
    ASSERT_FALSE(source);
    EXPECT_NE(source.error().what().find("no-such-order.wav"), std::string::npos);
}

}  // namespace
}  // namespace olympus

namespace olympus {
namespace {

class VoiceFaultTest : public ::testing::Test {
protected:
    void SetUp() override {
        emu_ = std::make_unique<Emulator>(test::quiet_emulator());
        emu_->start();
        dir_ = test::make_temp_dir("olympus-voice-fault");
    }

    /// Replays the speech with `fault` on and waits for the reply to play out.
    VoiceStats replay_with(emulator::VoiceFault fault) {
        emu_->set_voice_fault(fault);
        auto sink = WavVoiceSink::create(dir_ + "/reply.wav", kRate);
        EXPECT_TRUE(sink);
        VoiceSession session(test::session_options(*emu_), speech_source(false, 1000ms),
                             std::move(sink).value(), log_.handler());
        session.start();
        EXPECT_TRUE(session.wait_source_done(10s));
        EXPECT_TRUE(test::eventually([&] { return session.stats().replies == 1; }, 5s));
        EXPECT_TRUE(session.wait_replies_done(500ms, 10s));
        auto stats = session.stats();
        EXPECT_EQ(stats.state, VoiceState::active);
        session.end();
        EXPECT_TRUE(session.wait_for(VoiceState::ended, 5s));
        return stats;
    }

    std::unique_ptr<Emulator> emu_;
    std::string dir_;
    EventLog log_;
};

TEST_F(VoiceFaultTest, RefusedStartIsATypedError) {
    // The server answers start_session with an error frame: session_refused, promptly, no retry.
    emu_->set_voice_fault(emulator::VoiceFault::refuse_start);
    VoiceSession session(test::session_options(*emu_), speech_source(true, 0ms), nullptr,
                         log_.handler());
    auto begin = std::chrono::steady_clock::now();
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::ended, 5s));
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
    EXPECT_EQ(session.stats().error, make_error_code(errc::session_refused));
    EXPECT_TRUE(log_.has_error(errc::session_refused));
    EXPECT_EQ(session.stats().frames_sent, 0u);
}

TEST_F(VoiceFaultTest, CorruptReplyFramesAreConcealedAndCounted) {
    // Every 4th reply frame does not decode: each is counted and concealed, the reply plays on.
    auto stats = replay_with(emulator::VoiceFault::corrupt_reply_frames);
    auto sent = test::only_session(*emu_).reply_frames_sent;
    EXPECT_EQ(stats.reply_frames_received, sent);
    EXPECT_EQ(stats.bad_frames, sent / 4);
    // A bad frame at the very end of the reply has nothing after it to conceal into.
    EXPECT_GE(stats.concealed_frames + 1, stats.bad_frames);
    EXPECT_GE(stats.frames_played + 2, sent);
}

TEST_F(VoiceFaultTest, UnannouncedFormatIsConcealedAndCounted) {
    // Reply frames of 40 ms where 20 ms was announced: counted as unexpected, not played as is.
    auto stats = replay_with(emulator::VoiceFault::wrong_reply_format);
    auto sent = test::only_session(*emu_).reply_frames_sent;
    EXPECT_GT(sent, 50u);
    EXPECT_EQ(stats.reply_frames_received, sent);
    EXPECT_EQ(stats.unexpected_format_frames, sent);
}

}  // namespace
}  // namespace olympus
