// Helpers of the voice session tests; see voice_test_support.hpp.
#include "voice_test_support.hpp"

#include <map>

#include <gtest/gtest.h>

#include "olympus/audio/wav_sink.hpp"

#include "audio/speech.hpp"
#include "support/test_env.hpp"

namespace olympus::test {

using namespace std::chrono_literals;

emulator::EmulatorOptions quiet_emulator(bool tls) {
    emulator::EmulatorOptions options;
    options.tls = tls;
    options.ping_interval = 1h;
    options.greeting_duration = 0ms;
    return options;
}

VoiceSessionOptions session_options(const emulator::Emulator& emu) {
    VoiceSessionOptions options;
    options.connection.url = emu.voice_url();
    options.connection.token_provider = std::make_shared<FixedTokenProvider>(emu.mint_token());
    options.connection.tls.ca_pem = emu.certificate_pem();
    options.connection.reconnect.base = 50ms;
    options.connection.reconnect.cap = 50ms;
    options.connection.reconnect.full_jitter = false;
    options.start_timeout = 3s;
    return options;
}

const std::string& speech_wav(int rate) {
    static std::map<int, std::string> files;
    auto& path = files[rate];
    if (path.empty()) {
        path = make_temp_dir("olympus-voice-speech") + "/speech.wav";
        auto sink = audio::WavSink::create(path, rate);
        EXPECT_TRUE(sink);
        EXPECT_FALSE(sink.value().write(audio::test::speech(rate)));
        EXPECT_FALSE(sink.value().close());
    }
    return path;
}

std::vector<float> read_wav_file(const std::string& path, int* rate) {
    return audio::test::read_wav(path, rate);
}

double best_correlation(const std::vector<float>& a, const std::vector<float>& b, long max_lag) {
    auto decimate = [](const std::vector<float>& x) {
        std::vector<float> out(x.size() / 4);
        for (std::size_t i = 0; i < out.size(); ++i) {
            out[i] = (x[4 * i] + x[4 * i + 1] + x[4 * i + 2] + x[4 * i + 3]) / 4;
        }
        return out;
    };
    auto da = decimate(a);
    auto db = decimate(b);
    auto lag = audio::test::best_lag(da, db, -max_lag / 4, max_lag / 4);
    return audio::test::correlation(da, db, lag);
}

emulator::VoiceSessionRecord only_session(const emulator::Emulator& emu) {
    auto sessions = emu.voice_sessions();
    EXPECT_EQ(sessions.size(), 1u);
    return sessions.empty() ? emulator::VoiceSessionRecord{} : sessions.front();
}

}  // namespace olympus::test
