// The emulator's voice stream (/stream) driven by a real WebSocket client with real speech
// (espeak-ng) encoded with Opus: sessions, greeting, recording of what was sent, end-of-utterance
// replies, interrupts, barge-in, resume, audio_url replies and bad input, over ws and wss.
#include <set>

#include <curl/curl.h>
#include <gtest/gtest.h>

#include "olympus/audio/opus_decoder.hpp"
#include "olympus/audio/opus_encoder.hpp"
#include "olympus/emulator/emulator.hpp"

#include "audio/speech.hpp"
#include "support/test_env.hpp"
#include "support/ws_test_client.hpp"

namespace olympus::emulator {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using test::WsTestClient;
namespace at = olympus::audio::test;

constexpr int kRate = 48000;
constexpr int kFrame = 960;  // 20 ms

/// Opus packets of `pcm`, 20 ms each, with the quiet tail padded to a whole frame.
std::vector<std::string> encode_all(std::vector<float> pcm) {
    audio::EncoderConfig config;
    config.sample_rate = kRate;
    config.bitrate = 24000;
    auto encoder = audio::OpusEncoder::create(config);
    EXPECT_TRUE(encoder);
    pcm.resize((pcm.size() + kFrame - 1) / kFrame * kFrame, 0.0f);
    std::vector<std::string> packets;
    audio::EncodedFrame out;
    for (std::size_t i = 0; i < pcm.size(); i += kFrame) {
        EXPECT_FALSE(encoder.value().encode(audio::Span<const float>(pcm.data() + i, kFrame), out));
        packets.emplace_back(reinterpret_cast<const char*>(out.bytes.data()), out.size);
    }
    return packets;
}

std::vector<float> decode_all(const std::vector<std::string>& packets) {
    auto decoder = audio::OpusDecoder::create(kRate, 1);
    std::vector<float> pcm;
    std::vector<float> frame(2880);
    for (const auto& p : packets) {
        int samples = 0;
        auto ec =
            decoder.value().decode(audio::Span<const std::uint8_t>(
                                       reinterpret_cast<const std::uint8_t*>(p.data()), p.size()),
                                   audio::Span<float>(frame.data(), frame.size()), samples);
        EXPECT_FALSE(ec);
        pcm.insert(pcm.end(), frame.begin(), frame.begin() + samples);
    }
    return pcm;
}

std::vector<float> silence(std::chrono::milliseconds ms) {
    return std::vector<float>(static_cast<std::size_t>(ms.count()) * kRate / 1000, 0.0f);
}

std::vector<float> concat(std::vector<float> a, const std::vector<float>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::size_t curl_sink(char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

/// GET `url` with libcurl, trusting `ca_pem`; returns the HTTP status and fills `body`.
long http_get(const std::string& url, const std::string& ca_pem, std::string& body) {
    CURL* curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 5L);
    curl_blob blob{const_cast<char*>(ca_pem.data()), ca_pem.size(), CURL_BLOB_COPY};
    if (!ca_pem.empty()) {
        curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
    }
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(curl);
    return status;
}

class VoiceStreamTest : public ::testing::TestWithParam<bool> {
protected:
    static EmulatorOptions fast() {
        EmulatorOptions options;
        options.ping_interval = 1h;
        options.greeting_duration = 0ms;
        return options;
    }

    void start(EmulatorOptions options = fast()) {
        options.tls = GetParam();
        emu_ = std::make_unique<Emulator>(options);
        emu_->start();
    }

    std::unique_ptr<WsTestClient> open() {
        test::TestClientOptions options;
        options.ca_pem = emu_->certificate_pem();
        auto c = std::make_unique<WsTestClient>(options);
        EXPECT_TRUE(c->connect(emu_->voice_url())) << c->error();
        return c;
    }

    Json start_message(Json audio = nullptr, const std::string& resume = "") {
        Json message = {{"type", "start_session"},
                        {"id", "req-17"},
                        {"location_id", "loc-xyz789"},
                        {"channel", "drive_thru"},
                        {"access_token", emu_->mint_token()},
                        {"lane", 1}};
        if (!audio.is_null()) {
            message["audio"] = audio;
        }
        if (!resume.empty()) {
            message["resume_session_id"] = resume;
        }
        return message;
    }

    /// An open connection with a running session; returns its session_started.
    Json start_session(WsTestClient& c, Json audio = nullptr) {
        c.send_json(start_message(std::move(audio)));
        auto started = c.next_of_type("session_started");
        EXPECT_TRUE(started);
        return started.value_or(Json());
    }

    static void send_all(WsTestClient& c, const std::vector<std::string>& packets) {
        for (const auto& p : packets) {
            c.send_binary(p);
        }
    }

    /// Binary frames until a text frame of `type`; returns the frames.
    static std::vector<std::string> frames_until(WsTestClient& c, const std::string& type,
                                                 Json* last = nullptr) {
        std::vector<std::string> frames;
        while (auto frame = c.next(5s)) {
            if (frame->binary) {
                frames.push_back(frame->payload);
            } else if (frame->json()["type"] == type) {
                if (last != nullptr) {
                    *last = frame->json();
                }
                break;
            }
        }
        return frames;
    }

    std::unique_ptr<Emulator> emu_;
};

INSTANTIATE_TEST_SUITE_P(Transports, VoiceStreamTest, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "wss" : "ws"; });

// start_session gets session_started with a session id, the reply format and a greeting, and
// the greeting arrives as streamed audio at real-time pace, closed by response_audio_done.
TEST_P(VoiceStreamTest, StartsSessionAndStreamsGreeting) {
    auto options = fast();
    options.greeting_duration = 600ms;
    start(options);
    auto c = open();
    auto begun = Clock::now();
    auto started = start_session(*c);
    EXPECT_EQ(started["id"], "req-17");
    EXPECT_EQ(started["resumed"], false);
    EXPECT_EQ(started["audio"]["encoding"], "opus");
    EXPECT_EQ(started["audio"]["sample_rate"], 48000);
    EXPECT_TRUE(started["greeting"]["text"].is_string());
    auto session_id = started["session_id"].get<std::string>();
    EXPECT_EQ(session_id.rfind("voice-sess-", 0), 0u);

    Json done;
    auto frames = frames_until(*c, "response_audio_done", &done);
    EXPECT_EQ(frames.size(), 30u);
    EXPECT_EQ(done["response_id"], started["greeting"]["response_id"]);
    EXPECT_EQ(done["duration_ms"], 600);
    auto elapsed = Clock::now() - begun;
    EXPECT_GE(elapsed, 570ms);
    EXPECT_LE(elapsed, 1500ms);
    auto pcm = decode_all(frames);
    EXPECT_GT(at::rms(pcm.data() + kRate / 10, kRate / 5), 0.02);
}

// Every frame sent is recorded: the count matches exactly and the decoded audio is the sent
// speech (correlation against the local decode of the same packets).
TEST_P(VoiceStreamTest, RecordsWhatWasSent) {
    start();
    auto c = open();
    auto session_id = start_session(*c)["session_id"].get<std::string>();
    auto packets = encode_all(concat(at::speech(kRate), silence(800ms)));
    send_all(*c, packets);
    ASSERT_TRUE(c->next_of_type("final_transcript", 5s));
    ASSERT_TRUE(test::eventually(
        [&] { return emu_->voice_sessions()[0].frames_received == packets.size(); }));

    auto sessions = emu_->voice_sessions();
    ASSERT_EQ(sessions.size(), 1u);
    const auto& record = sessions[0];
    EXPECT_EQ(record.session_id, session_id);
    EXPECT_EQ(record.frames_received, packets.size());
    EXPECT_EQ(record.bad_frames, 0u);
    auto expected = decode_all(packets);
    ASSERT_EQ(record.received_audio.size(), expected.size());
    EXPECT_GT(at::correlation(expected, record.received_audio, 0), 0.999);
    EXPECT_GT(at::correlation(at::speech(kRate), record.received_audio, 309), 0.9);
}

// The end of an utterance gets final_transcript and final_response, then the reply: an echo of
// what was said, streamed frame by frame and closed by response_audio_done.
TEST_P(VoiceStreamTest, AnswersEachUtteranceWithAnEchoedReply) {
    start();
    auto c = open();
    start_session(*c);
    const auto& speech = at::speech(kRate);
    send_all(*c, encode_all(concat(speech, silence(800ms))));

    auto transcript = c->next_of_type("final_transcript", 5s);
    ASSERT_TRUE(transcript);
    EXPECT_TRUE((*transcript)["utterance_id"].is_string());
    auto response = c->next_of_type("final_response");
    ASSERT_TRUE(response);
    EXPECT_FALSE(response->contains("audio_url"));
    Json done;
    auto reply = frames_until(*c, "response_audio_done", &done);
    EXPECT_EQ(done["response_id"], (*response)["response_id"]);
    auto pcm = decode_all(reply);
    // The echo starts at the utterance's first loud frame; the two codec passes shift it a
    // little more, so search one frame around that.
    long first_loud = 0;
    while (first_loud + kFrame < static_cast<long>(speech.size()) &&
           at::rms(speech.data() + first_loud, kFrame) < 0.0056) {
        first_loud += kFrame;
    }
    auto lag = at::best_lag(pcm, speech, first_loud - kFrame, first_loud + kFrame);
    EXPECT_GT(at::correlation(pcm, speech, lag), 0.8) << "lag " << lag;
    EXPECT_NEAR(static_cast<double>(done["duration_ms"].get<int>()),
                static_cast<double>(reply.size() * 20), 20.0);
}

// Talking over a reply gets an interrupt naming the reply, and its audio stops.
TEST_P(VoiceStreamTest, InterruptsWhenCustomerTalksOverReply) {
    start();
    auto c = open();
    start_session(*c);
    send_all(*c, encode_all(concat(at::speech(kRate), silence(800ms))));
    auto response = c->next_of_type("final_response", 5s);
    ASSERT_TRUE(response);
    send_all(*c, encode_all(at::speech(kRate)));
    auto interrupt = c->next_of_type("interrupt", 5s);
    ASSERT_TRUE(interrupt);
    EXPECT_EQ((*interrupt)["response_id"], (*response)["response_id"]);
    EXPECT_EQ(emu_->voice_sessions()[0].interrupts_sent, 1u);
}

// barge_in from the client stops the reply and its played_ms is recorded.
TEST_P(VoiceStreamTest, BargeInStopsReplyAndRecordsPlayedMs) {
    start();
    auto c = open();
    auto session_id = start_session(*c)["session_id"];
    send_all(*c, encode_all(concat(at::speech(kRate), silence(800ms))));
    auto response = c->next_of_type("final_response", 5s);
    ASSERT_TRUE(response);
    ASSERT_TRUE(c->next(2s));  // the first reply frame
    c->send_json({{"type", "barge_in"},
                  {"session_id", session_id},
                  {"response_id", (*response)["response_id"]},
                  {"played_ms", 240}});
    while (c->next(100ms)) {  // frames already in flight
    }
    EXPECT_FALSE(c->next(300ms));
    auto record = emu_->voice_sessions()[0];
    EXPECT_EQ(record.barge_in_played_ms, std::vector<std::int64_t>{240});
    EXPECT_LT(record.reply_frames_sent, 100u);
}

// end_session is answered with session_ended, and the connection can carry the next session.
TEST_P(VoiceStreamTest, EndsSessionAndStartsAnotherOnTheSameConnection) {
    start();
    auto c = open();
    auto first = start_session(*c)["session_id"];
    c->send_json({{"type", "end_session"}, {"session_id", first}, {"reason", "completed"}});
    auto ended = c->next_of_type("session_ended");
    ASSERT_TRUE(ended);
    EXPECT_EQ((*ended)["session_id"], first);
    EXPECT_EQ((*ended)["reason"], "completed");
    auto second = start_session(*c)["session_id"];
    EXPECT_NE(second, first);
    EXPECT_EQ(emu_->voice_sessions()[0].end_reason, "completed");
}

// A warm connection [ours]: `auth` first is answered with auth_success, the auth timeout no
// longer closes the idle connection, and three sessions follow each other on it.
TEST_P(VoiceStreamTest, WarmConnectionAuthenticatesFirstAndCarriesSessionAfterSession) {
    auto options = fast();
    options.auth_timeout = 300ms;
    start(options);
    auto c = open();
    c->send_json({{"type", "auth"}, {"token", emu_->mint_token()}});
    auto ok = c->next_of_type("auth_success");
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)["user_id"], "user-dev");
    EXPECT_FALSE(c->wait_closed(900ms)) << "closed by the auth timeout after auth_success";

    std::set<std::string> ids;
    for (int car = 0; car < 3; ++car) {
        auto id = start_session(*c)["session_id"].get<std::string>();
        c->send_json({{"type", "end_session"}, {"session_id", id}, {"reason", "completed"}});
        ASSERT_TRUE(c->next_of_type("session_ended")) << "car " << car;
        ids.insert(id);
    }
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_TRUE(c->is_open());
    EXPECT_EQ(emu_->stats().connections_opened, 1u);
}

// Without warm connections the emulator acts like a server that lacks them: `auth` is an
// unknown message, and the connection is closed once a session has ended.
TEST_P(VoiceStreamTest, WithoutWarmConnectionsAuthIsRefusedAndEachSessionHangsUp) {
    auto options = fast();
    options.voice_warm_connections = false;
    start(options);
    auto c = open();
    c->send_json({{"type", "auth"}, {"token", emu_->mint_token()}});
    auto refused = c->next_of_type("error");
    ASSERT_TRUE(refused);
    EXPECT_EQ((*refused)["code"], "invalid_message");
    auto id = start_session(*c)["session_id"];
    c->send_json({{"type", "end_session"}, {"session_id", id}, {"reason", "completed"}});
    EXPECT_TRUE(c->next_of_type("session_ended"));
    EXPECT_EQ(c->wait_closed(), 1000);
}

// 16-bit PCM at 16 kHz is taken as announced; a frame of the wrong size is counted as bad.
TEST_P(VoiceStreamTest, TakesPcmAndCountsMisSizedFrames) {
    start();
    auto c = open();
    auto started = start_session(
        *c, {{"encoding", "pcm_s16le"}, {"sample_rate", 16000}, {"channels", 1}, {"frame_ms", 20}});
    EXPECT_EQ(started["audio"]["encoding"], "pcm_s16le");
    auto tone = at::sine(440, 0.5, 16000, 320 * 10);
    for (int f = 0; f < 10; ++f) {
        std::string bytes(640, '\0');
        for (int i = 0; i < 320; ++i) {
            auto v = static_cast<std::int16_t>(tone[static_cast<std::size_t>(f * 320 + i)] * 32767);
            bytes[2 * i] = static_cast<char>(v & 0xff);
            bytes[2 * i + 1] = static_cast<char>((v >> 8) & 0xff);
        }
        c->send_binary(bytes);
    }
    c->send_binary(std::string(100, '\0'));
    ASSERT_TRUE(test::eventually([&] { return emu_->voice_sessions()[0].frames_received == 11; }));
    auto record = emu_->voice_sessions()[0];
    EXPECT_EQ(record.bad_frames, 1u);
    ASSERT_EQ(record.received_audio.size(), 11u * 320);
    EXPECT_GT(at::snr_db(tone.data(), record.received_audio.data(), tone.size()), 60.0);
}

// A corrupt Opus packet mid-stream is concealed and counted; the stream goes on.
TEST_P(VoiceStreamTest, ConcealsCorruptOpusFrame) {
    start();
    auto c = open();
    start_session(*c);
    auto packets = encode_all(at::speech(kRate));
    packets[40] = std::string("\xff\xff\xff\xff\xff", 5);
    packets[41] = std::string(2000, 'x');
    send_all(*c, packets);
    ASSERT_TRUE(test::eventually(
        [&] { return emu_->voice_sessions()[0].frames_received == packets.size(); }));
    auto record = emu_->voice_sessions()[0];
    EXPECT_EQ(record.bad_frames, 2u);
    EXPECT_EQ(record.received_audio.size(), packets.size() * kFrame);
}

// Bad start_session requests get invalid_message; a bad token gets auth_error and 1008; audio
// before a session is refused.
TEST_P(VoiceStreamTest, RefusesBadStartsAndEarlyAudio) {
    start();
    auto c = open();
    c->send_binary("early");
    auto early = c->next_of_type("error");
    ASSERT_TRUE(early);
    EXPECT_EQ((*early)["code"], "invalid_message");
    std::vector<Json> bad;
    for (const char* field : {"location_id", "channel", "access_token"}) {
        auto m = start_message();
        m.erase(field);
        bad.push_back(m);
    }
    bad.push_back(start_message({{"encoding", "mp3"}}));
    bad.push_back(start_message({{"sample_rate", 44100}}));
    bad.push_back(start_message({{"frame_ms", 25}}));
    bad.push_back(start_message({{"channels", 2}}));
    bad.push_back(start_message("not an object"));
    for (const auto& m : bad) {
        c->send_json(m);
        auto error = c->next_of_type("error");
        ASSERT_TRUE(error) << m;
        EXPECT_EQ((*error)["code"], "invalid_message") << m;
        EXPECT_EQ((*error)["id"], "req-17");
    }
    auto forged = start_message();
    forged["access_token"] = "forged";
    c->send_json(forged);
    EXPECT_TRUE(c->next_of_type("auth_error"));
    EXPECT_EQ(c->wait_closed(), 1008);
}

// After a dropped link, start_session with resume_session_id resumes the same session and its
// recording goes on; an unknown id starts a new session instead.
TEST_P(VoiceStreamTest, ResumesSessionAfterDrop) {
    start();
    auto c = open();
    auto session_id = start_session(*c)["session_id"].get<std::string>();
    auto packets = encode_all(at::speech(kRate));
    std::vector<std::string> first(packets.begin(), packets.begin() + 50);
    std::vector<std::string> rest(packets.begin() + 50, packets.end());
    send_all(*c, first);
    ASSERT_TRUE(test::eventually([&] { return emu_->voice_sessions()[0].frames_received == 50; }));
    emu_->drop_all_connections(DropMode::abort);
    ASSERT_TRUE(c->wait_closed());

    auto again = open();
    again->send_json(start_message(nullptr, session_id));
    auto resumed = again->next_of_type("session_started");
    ASSERT_TRUE(resumed);
    EXPECT_EQ((*resumed)["session_id"], session_id);
    EXPECT_EQ((*resumed)["resumed"], true);
    send_all(*again, rest);
    ASSERT_TRUE(test::eventually(
        [&] { return emu_->voice_sessions()[0].frames_received == packets.size(); }));
    EXPECT_EQ(emu_->voice_sessions()[0].resumes, 1);

    auto other = open();
    other->send_json(start_message(nullptr, "voice-sess-unknown"));
    auto fresh = other->next_of_type("session_started");
    ASSERT_TRUE(fresh);
    EXPECT_EQ((*fresh)["resumed"], false);
    EXPECT_NE((*fresh)["session_id"], session_id);
}

// In audio_url mode the reply is an MP3 file on the same port, holding the echo; the failure
// modes serve 404 or bytes that are not audio.
TEST_P(VoiceStreamTest, ServesRepliesAsAudioUrl) {
    start();
    emu_->set_reply_mode(ReplyMode::audio_url);
    auto c = open();
    start_session(*c);
    send_all(*c, encode_all(concat(at::speech(kRate), silence(800ms))));
    auto response = c->next_of_type("final_response", 5s);
    ASSERT_TRUE(response);
    auto url = (*response)["audio_url"].get<std::string>();
    EXPECT_EQ(url.rfind(GetParam() ? "https://localhost:" : "http://127.0.0.1:", 0), 0u) << url;
    EXPECT_EQ(url.substr(url.size() - 4), ".mp3") << url;
    std::string body;
    EXPECT_EQ(http_get(url, emu_->certificate_pem(), body), 200);
    // An ID3 tag or an MPEG audio frame sync opens the file; about 3 s of speech at the MP3
    // encoder's default bit rate is tens of kilobytes, not the half megabyte of 16-bit PCM.
    ASSERT_GT(body.size(), 4u);
    const auto b0 = static_cast<unsigned char>(body[0]), b1 = static_cast<unsigned char>(body[1]);
    EXPECT_TRUE(body.rfind("ID3", 0) == 0 || (b0 == 0xFF && (b1 & 0xE0) == 0xE0))
        << "not MP3: " << int{b0} << " " << int{b1};
    EXPECT_GT(body.size(), 10'000u);
    EXPECT_LT(body.size(), 200'000u);

    emu_->set_reply_mode(ReplyMode::audio_url_missing);
    send_all(*c, encode_all(concat(at::speech(kRate), silence(800ms))));
    response = c->next_of_type("final_response", 5s);
    ASSERT_TRUE(response);
    body.clear();
    EXPECT_EQ(http_get((*response)["audio_url"], emu_->certificate_pem(), body), 404);
}

// A session with no speech ends by itself with reason "timeout".
TEST_P(VoiceStreamTest, EndsSilentSessionWithTimeout) {
    auto options = fast();
    options.no_speech_timeout = 300ms;
    start(options);
    auto c = open();
    start_session(*c);
    send_all(*c, encode_all(silence(200ms)));
    auto ended = c->next_of_type("session_ended", 3s);
    ASSERT_TRUE(ended);
    EXPECT_EQ((*ended)["reason"], "timeout");
}

}  // namespace
}  // namespace olympus::emulator
