// Tests of the simulated speaker-to-microphone path used by the echo tests.
#include "olympus/audio/echo_path.hpp"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "speech.hpp"

namespace olympus::audio {
namespace {

// An impulse comes out after exactly the configured delay, scaled by the gain, shaped by the taps.
TEST(EchoPath, DelaysAttenuatesAndShapesAnImpulse) {
    EchoPathConfig config;
    config.sample_rate = 16000;
    config.delay_ms = 30;
    config.gain_db = -6;
    config.impulse_response = {1.0f, 0.0f, 0.5f};
    EchoPath path = EchoPath::create(config).value();
    ASSERT_EQ(path.delay_samples(), 480u);

    std::vector<float> far(1000, 0.0f);
    far[10] = 1.0f;
    const std::vector<float> echo = path.echo_of(Span<const float>(far));
    const float gain = static_cast<float>(std::pow(10.0, -6.0 / 20.0));
    for (std::size_t i = 0; i < echo.size(); ++i) {
        const float expected = i == 490 ? gain : i == 492 ? 0.5f * gain : 0.0f;
        EXPECT_NEAR(echo[i], expected, 1e-6) << "sample " << i;
    }
}

// Coupling speech in blocks of odd sizes gives the same microphone signal as in one go, and
// the near end is kept underneath.
TEST(EchoPath, StreamsInAnyBlockSize) {
    const std::vector<float>& far = test::speech(16000);
    EchoPathConfig config;
    config.impulse_response = {0.8f, 0.1f, -0.1f, 0.05f};
    EchoPath whole = EchoPath::create(config).value();
    EchoPath blocks = EchoPath::create(config).value();

    const std::vector<float> near = test::sine(300.0, 0.1, 16000, far.size());
    std::vector<float> mic_whole = near;
    whole.couple(Span<const float>(far), Span<float>(mic_whole));
    std::vector<float> mic_blocks = near;
    for (std::size_t start = 0, step = 1; start < far.size();
         start += step, step = step * 3 % 997) {
        const std::size_t count = std::min(step, far.size() - start);
        blocks.couple(Span<const float>(far.data() + start, count),
                      Span<float>(mic_blocks.data() + start, count));
    }
    ASSERT_EQ(mic_whole.size(), mic_blocks.size());
    for (std::size_t i = 0; i < mic_whole.size(); ++i) {
        ASSERT_NEAR(mic_whole[i], mic_blocks[i], 1e-6) << "sample " << i;
    }

    // The echo is the far end delayed by 40 ms (640 samples) at 16 kHz.
    std::vector<float> echo(mic_whole.size());
    for (std::size_t i = 0; i < echo.size(); ++i) {
        echo[i] = mic_whole[i] - near[i];
    }
    EXPECT_EQ(test::best_lag(far, echo, 600, 700), 640);
    EXPECT_GT(test::correlation(far, echo, 640), 0.95);
}

// Out-of-range settings are refused instead of allocating huge delay lines.
TEST(EchoPath, RefusesOutOfRangeSettings) {
    EchoPathConfig config;
    config.delay_ms = 5000;
    EXPECT_FALSE(EchoPath::create(config));
    config.delay_ms = 40;
    config.sample_rate = 0;
    EXPECT_FALSE(EchoPath::create(config));
    config.sample_rate = 16000;
    config.gain_db = std::nan("");
    EXPECT_FALSE(EchoPath::create(config));
}

}  // namespace
}  // namespace olympus::audio
