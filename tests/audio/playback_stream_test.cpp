// Tests of PortAudio playback against the JACK dummy server: what the stream plays is recorded
// independently by jack_rec and compared with what was written; barge-in fades without a click.
#include "olympus/audio/playback_stream.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "jack_server.hpp"
#include "speech.hpp"
#include "support/test_env.hpp"

namespace olympus::audio {
namespace {

class PlaybackStreamTest : public ::testing::Test {
protected:
    void SetUp() override { dir_ = olympus::test::make_temp_dir("olympus-playback"); }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    // Opens and starts a stream on the JACK device, and starts jack_rec recording its output
    // port for `seconds` into recording().
    std::unique_ptr<PlaybackStream> start(int codec_rate, int seconds,
                                          std::size_t ring_samples = 16384) {
        DeviceStreamConfig config;
        config.device = "system";
        config.codec_rate = codec_rate;
        config.ring_samples = ring_samples;
        auto stream = PlaybackStream::open(config);
        EXPECT_TRUE(stream) << stream.error().what();
        if (!stream) {
            return nullptr;
        }
        EXPECT_FALSE(stream.value()->start());
        std::string port;
        EXPECT_TRUE(olympus::test::eventually([&] {
            port = test::find_jack_port(":out_0");
            return !port.empty();
        }));
        recorder_ = std::make_unique<test::JackTool>(std::vector<std::string>{
            "jack_rec", "-f", recording_path(), "-d", std::to_string(seconds), "-b", "32", port});
        // jack_rec's client appears once it records.
        EXPECT_TRUE(olympus::test::eventually(
            [] { return !test::find_jack_port("jackrec:input1").empty(); }));
        return std::move(stream).value();
    }

    // Waits for jack_rec to finish and reads what it recorded.
    std::vector<float> recording() {
        EXPECT_EQ(recorder_->wait(), 0);
        return test::read_wav(recording_path());
    }

    std::string recording_path() const { return dir_ + "/recorded.wav"; }

    // Writes all of `pcm`, as fast as the ring takes it.
    static void write_all(PlaybackStream& stream, const std::vector<float>& pcm) {
        std::size_t taken = 0;
        while (taken < pcm.size()) {
            const std::size_t chunk = std::min<std::size_t>(960, pcm.size() - taken);
            const std::size_t n = stream.write(Span<const float>(&pcm[taken], chunk));
            taken += n;
            if (n < chunk) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));  // ring full
            }
        }
    }

    std::string dir_;
    std::unique_ptr<test::JackTool> recorder_;
};

// Index of the first sample above `threshold` in magnitude.
std::size_t first_sound(const std::vector<float>& x, float threshold = 1e-3f) {
    return static_cast<std::size_t>(
        std::find_if(x.begin(), x.end(), [&](float v) { return std::fabs(v) > threshold; }) -
        x.begin());
}

// Signal-to-error ratio of `actual` against `expected`, in dB, over `count` samples, leaving out
// the `spoiled` 10 ms windows (at 48 kHz) with the most error. When JACK reports an xrun, the
// server skipped a cycle of some client, the recorder included; each spoils at most two
// windows of the recording, and none of that is the stream's doing.
double snr_db_sparing(const float* expected, const float* actual, std::size_t count,
                      std::size_t spoiled) {
    constexpr std::size_t kWindow = 480;
    std::vector<std::pair<double, double>> windows;  // (error energy, signal energy)
    for (std::size_t at = 0; at + kWindow <= count; at += kWindow) {
        double error = 0, signal = 0;
        for (std::size_t i = at; i < at + kWindow; ++i) {
            const double e = double{actual[i]} - double{expected[i]};
            error += e * e;
            signal += double{expected[i]} * double{expected[i]};
        }
        windows.emplace_back(error, signal);
    }
    std::sort(windows.begin(), windows.end(), std::greater<>());
    double error = 0, signal = 0;
    for (std::size_t i = std::min(spoiled, windows.size()); i < windows.size(); ++i) {
        error += windows[i].first;
        signal += windows[i].second;
    }
    return 10 * std::log10(signal / std::max(error, 1e-20));
}

TEST_F(PlaybackStreamTest, PlaysSpeechThatArrivesIntact) {
    // Speech written at 48 kHz reaches the JACK port unchanged: jack_rec's recording matches
    // it (SNR above 40 dB once aligned) and the device consumed exactly every sample.
    OLYMPUS_REQUIRE_JACK();
    const auto& full = test::speech(48000);
    const std::vector<float> speech(
        full.begin(), full.begin() + std::min<long>(120000, static_cast<long>(full.size())));
    auto stream = start(48000, 4);
    ASSERT_TRUE(stream);
    write_all(*stream, speech);
    EXPECT_TRUE(olympus::test::eventually([&] { return stream->played_samples() >= speech.size(); },
                                          std::chrono::seconds(8)));
    const auto recorded = recording();

    EXPECT_EQ(stream->played_samples(), speech.size());
    const std::size_t offset = first_sound(recorded) - first_sound(speech);
    ASSERT_LT(offset + speech.size(), recorded.size());
    const auto stats = stream->stats();
    EXPECT_GT(
        snr_db_sparing(speech.data(), &recorded[offset], speech.size(), 2 * stats.device_xruns),
        40.0)
        << "xruns=" << stats.device_xruns;
    EXPECT_EQ(stats.ring_overflows, 0u);
    EXPECT_LE(stats.underruns, 1u);  // the end of the speech
    EXPECT_GT(stats.latency_ms, 0.0);
}

TEST_F(PlaybackStreamTest, ResamplesCodecRateToDeviceRate) {
    // One second of a 440 Hz tone written at 16 kHz plays as one second at 48 kHz with the
    // same pitch.
    OLYMPUS_REQUIRE_JACK();
    const auto tone = test::sine(440, 0.4, 16000, 16000);
    auto stream = start(16000, 2);
    ASSERT_TRUE(stream);
    EXPECT_EQ(stream->stats().device_rate, 48000);
    write_all(*stream, tone);
    const auto recorded = recording();

    const std::size_t begin = first_sound(recorded, 0.05f);
    std::size_t end = recorded.size();
    while (end > begin && std::fabs(recorded[end - 1]) < 0.05f) {
        --end;
    }
    EXPECT_NEAR(static_cast<double>(end - begin), 48000.0, 200.0);
    const std::vector<float> played(recorded.begin() + static_cast<long>(begin),
                                    recorded.begin() + static_cast<long>(end));
    const auto reference = test::sine(440, 0.4, 48000, played.size() + 109);
    const long lag = test::best_lag(played, reference, 0, 109);
    const auto xruns = stream->stats().device_xruns;
    EXPECT_GT(snr_db_sparing(&reference[static_cast<std::size_t>(lag)], played.data(),
                             played.size(), 2 * xruns),
              40.0)
        << "xruns=" << xruns;
}

TEST_F(PlaybackStreamTest, FadeOutAndFlushStopsWithinOneFrameWithoutClick) {
    // Barge-in 0.4 s into a 3 s tone: the output fades to silence within 5 ms with no step
    // bigger than the tone's own, the queue is flushed, and played_ms matches what the
    // recording actually contains.
    OLYMPUS_REQUIRE_JACK();
    const auto tone = test::sine(1000, 0.5, 48000, 3 * 48000);
    auto stream = start(48000, 2, 1 << 18);
    ASSERT_TRUE(stream);
    write_all(*stream, tone);
    ASSERT_TRUE(olympus::test::eventually([&] { return stream->played_ms() >= 400; }));
    stream->fade_out_and_flush();
    ASSERT_TRUE(olympus::test::eventually([&] { return stream->flush_done(); },
                                          std::chrono::milliseconds(200)));
    EXPECT_EQ(stream->queued(), 0u);
    const auto recorded = recording();

    // What was heard: from the first to the last audible sample.
    const std::size_t begin = first_sound(recorded);
    std::size_t end = recorded.size();
    while (end > begin && std::fabs(recorded[end - 1]) < 1e-4f) {
        --end;
    }
    const double heard_ms = static_cast<double>(end - begin) / 48.0;
    EXPECT_NEAR(heard_ms, stream->played_ms(), 11.0);  // within a 10 ms JACK period
    EXPECT_LT(heard_ms, 600.0);

    // The fade: the last 5 ms fall to zero smoothly.
    float max_step = 0;
    for (std::size_t i = begin + 1; i < end + 10; ++i) {
        max_step = std::max(max_step, std::fabs(recorded[i] - recorded[i - 1]));
    }
    const float tone_step = static_cast<float>(0.5 * 2 * M_PI * 1000 / 48000);
    EXPECT_LE(max_step, tone_step * 1.01f);
    EXPECT_GT(test::rms(&recorded[end - 480], 240), 0.1);   // full level until the fade
    EXPECT_LT(test::rms(&recorded[end - 120], 120), 0.15);  // falling at its end
}

}  // namespace
}  // namespace olympus::audio
