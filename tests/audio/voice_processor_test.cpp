// Offline tests of the capture-path processor with synthesised speech: echo of the agent's voice
// through a simulated box, a customer talking over it, engine-like noise, a quiet talker.
#include "olympus/audio/voice_processor.hpp"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "olympus/audio/echo_path.hpp"

#include "speech.hpp"
#include "support/test_env.hpp"

namespace olympus::audio {
namespace {

using test::correlation;
using test::rms;

// Speech in a given espeak-ng voice at `rate` (the shared helper only has the default voice).
std::vector<float> speak(const std::string& text, const std::string& voice, int rate) {
    const std::string dir = olympus::test::make_temp_dir("olympus-vp");
    const std::string raw = dir + "/raw.wav";
    const std::string out = dir + "/out.wav";
    const std::string speak_cmd =
        "espeak-ng -v " + voice + " -s 150 -w '" + raw + "' '" + text + "'";
    const std::string convert =
        "sox -q '" + raw + "' -r " + std::to_string(rate) + " -c 1 '" + out + "' vol 0.9";
    if (std::system(speak_cmd.c_str()) != 0 || std::system(convert.c_str()) != 0) {
        throw std::runtime_error("cannot synthesise speech");
    }
    std::vector<float> samples = test::read_wav(out);
    std::filesystem::remove_all(dir);
    return samples;
}

// The agent's two prompts back to back: about seven seconds of far-end speech.
std::vector<float> agent_speech(int rate) {
    std::vector<float> far = test::speech(rate);
    const std::vector<float> more =
        speak("Your total is twelve dollars and forty cents. Please pull forward to the window.",
              "en-us", rate);
    far.insert(far.end(), more.begin(), more.end());
    return far;
}

std::vector<float> customer_speech(int rate) {
    return speak("I would like a cheeseburger with no onions and a large chocolate shake please",
                 "en+f3", rate);
}

// A box: 40 ms of delay, a few reflections, the echo 3 dB below the far end.
EchoPath box(int rate) {
    EchoPathConfig config;
    config.sample_rate = rate;
    config.delay_ms = 40;
    config.gain_db = -3;
    std::vector<float> taps(static_cast<std::size_t>(rate / 200), 0.0f);  // 5 ms
    taps[0] = 1.0f;
    taps[taps.size() / 3] = 0.35f;
    taps[taps.size() - 1] = -0.2f;
    config.impulse_response = taps;
    return EchoPath::create(config).value();
}

void add_noise(std::vector<float>& signal, double amplitude, unsigned seed) {
    std::mt19937 random(seed);
    std::normal_distribution<float> noise(0.0f, static_cast<float>(amplitude));
    for (float& sample : signal) {
        sample += noise(random);
    }
}

// Runs `in` through a processor in 10 ms frames, feeding `far` (may be empty) as the speaker
// signal frame by frame, exactly as the playout and capture threads would interleave.
std::vector<float> run(VoiceProcessor& processor, const std::vector<float>& in,
                       const std::vector<float>& far, std::vector<bool>* voice = nullptr) {
    const std::size_t n = processor.frame_size();
    std::vector<float> out(in.size() / n * n);
    for (std::size_t start = 0; start + n <= in.size(); start += n) {
        if (start + n <= far.size()) {
            EXPECT_EQ(processor.push_far_end(Span<const float>(far.data() + start, n)), n);
        }
        std::copy(in.begin() + static_cast<long>(start), in.begin() + static_cast<long>(start + n),
                  out.begin() + static_cast<long>(start));
        EXPECT_FALSE(processor.process_capture(Span<float>(out.data() + start, n)));
        if (voice != nullptr) {
            voice->push_back(processor.stats().voice);
        }
    }
    return out;
}

double energy(const std::vector<float>& s, std::size_t from, std::size_t to) {
    double sum = 0;
    for (std::size_t i = from; i < to && i < s.size(); ++i) {
        sum += double{s[i]} * double{s[i]};
    }
    return sum;
}

std::vector<float> slice(const std::vector<float>& s, std::size_t from, std::size_t to) {
    return {s.begin() + static_cast<long>(from),
            s.begin() + static_cast<long>(std::min(to, s.size()))};
}

VoiceProcessorConfig only_echo_cancellation(int rate, bool on) {
    VoiceProcessorConfig config;
    config.sample_rate = rate;
    config.echo_cancellation = on;
    config.noise_suppression = false;
    config.gain_control = false;
    config.voice_detection = false;
    config.delay_ms = 40;
    return config;
}

// The drive-thru scene: the agent talks from 0 s; the customer starts 2 s before the agent's end
// and keeps talking
// after the agent stops, so there is echo only, double talk, then near end only.
struct Scene {
    int rate;
    std::vector<float> far;
    std::vector<float> near;  // the clean customer, aligned with mic
    std::vector<float> mic;
    std::size_t near_start;
};

Scene make_scene(int rate) {
    Scene scene{rate, agent_speech(rate), {}, {}, 0};
    const std::vector<float> customer = customer_speech(rate);
    scene.near_start = scene.far.size() - static_cast<std::size_t>(2 * rate);
    const std::size_t length = std::max(scene.far.size(), scene.near_start + customer.size());
    scene.far.resize(length, 0.0f);
    scene.near.assign(length, 0.0f);
    std::copy(customer.begin(), customer.end(),
              scene.near.begin() + static_cast<long>(scene.near_start));

    // The microphone hears the customer, the box's echo and a faint room noise floor.
    scene.mic = scene.near;
    EchoPath path = box(rate);
    path.couple(Span<const float>(scene.far), Span<float>(scene.mic));
    add_noise(scene.mic, 1e-4, 7);
    return scene;
}

struct EchoFigures {
    double erle_db;           // echo-only part, after 3 s
    double double_talk_corr;  // processed vs clean near end while both talk
    double near_only_corr;    // processed vs clean near end after the agent stopped
    long output_lag;          // samples the processor delays its output by
    VoiceProcessorStats stats;
};

// Like run(), but the speaker side hands over device periods of `period` samples, as a
// PortAudio callback would, running up to one period ahead of the microphone.
std::vector<float> run_with_device_periods(VoiceProcessor& processor, const std::vector<float>& in,
                                           const std::vector<float>& far, std::size_t period) {
    const std::size_t n = processor.frame_size();
    std::vector<float> out(in.size() / n * n);
    std::size_t pushed = 0;
    for (std::size_t start = 0; start + n <= in.size(); start += n) {
        while (pushed < start + n && pushed + period <= far.size()) {
            EXPECT_EQ(processor.push_far_end(Span<const float>(far.data() + pushed, period)),
                      period);
            pushed += period;
        }
        std::copy(in.begin() + static_cast<long>(start), in.begin() + static_cast<long>(start + n),
                  out.begin() + static_cast<long>(start));
        EXPECT_FALSE(processor.process_capture(Span<float>(out.data() + start, n)));
    }
    return out;
}

EchoFigures measure_echo(const Scene& scene, const VoiceProcessorConfig& config,
                         std::size_t device_period = 0) {
    const bool cancel = config.echo_cancellation;
    auto processor = VoiceProcessor::create(config);
    EXPECT_TRUE(processor) << processor.error().what();
    const std::vector<float> out =
        device_period == 0
            ? run(*processor.value(), scene.mic, scene.far)
            : run_with_device_periods(*processor.value(), scene.mic, scene.far, device_period);

    // Where the agent stops talking (last sample above -40 dBFS), plus the path's tail.
    std::size_t far_end = scene.far.size();
    while (far_end > 0 && std::fabs(scene.far[far_end - 1]) < 0.01f) {
        --far_end;
    }
    far_end += static_cast<std::size_t>(scene.rate / 10);

    // The canceller delays its output by a few milliseconds (block processing); compare the
    // customer with the output at that lag.
    EchoFigures f{};
    const std::vector<float> clean_tail = slice(scene.near, far_end, out.size());
    const std::vector<float> out_tail = slice(out, far_end, out.size());
    f.output_lag = test::best_lag(clean_tail, out_tail, 0, scene.rate / 25);
    const std::size_t converged = static_cast<std::size_t>(3 * scene.rate);
    f.erle_db = 10.0 * std::log10(energy(scene.mic, converged, scene.near_start) /
                                  (energy(out, converged, scene.near_start) + 1e-12));
    f.double_talk_corr = correlation(slice(scene.near, scene.near_start, far_end),
                                     slice(out, scene.near_start, far_end), f.output_lag);
    f.near_only_corr = correlation(clean_tail, out_tail, f.output_lag);
    f.stats = processor.value()->stats();
    std::printf(
        "rate=%d aec=%d erle=%.1f dB double_talk_corr=%.3f near_only_corr=%.3f "
        "output_lag=%ld apm_erle=%.1f apm_delay_median=%d ms\n",
        scene.rate, cancel ? 1 : 0, f.erle_db, f.double_talk_corr, f.near_only_corr, f.output_lag,
        double{f.stats.erle_db}, f.stats.delay_median_ms);
    return f;
}

// The agent's prompt leaks from speaker to microphone; the canceller removes at least 20 dB of
// it and the customer who talks over it still comes through.
TEST(VoiceProcessor, CancelsEchoAndKeepsTheCustomer16k) {
    const Scene scene = make_scene(16000);
    const EchoFigures f = measure_echo(scene, only_echo_cancellation(scene.rate, true));
    EXPECT_GE(f.erle_db, 20.0);
    EXPECT_GE(f.near_only_corr, 0.9);
    EXPECT_GE(f.double_talk_corr, 0.75) << "without cancellation it is about 0.83 (echo)";
    EXPECT_GT(f.stats.erle_db, 10.0f) << "the exported ERLE reflects the cancellation";
    EXPECT_GT(f.stats.far_end_frames, 600u);
}

// Same scene at the 48 kHz codec rate, which the library runs natively (band-split).
TEST(VoiceProcessor, CancelsEchoAt48k) {
    const Scene scene = make_scene(48000);
    const EchoFigures f = measure_echo(scene, only_echo_cancellation(scene.rate, true));
    EXPECT_GE(f.erle_db, 20.0);
    EXPECT_GE(f.near_only_corr, 0.9);
    EXPECT_GE(f.double_talk_corr, 0.7);
}

// With cancellation switched off the microphone signal passes unchanged: no echo removed.
TEST(VoiceProcessor, CancellationOffLeavesTheEcho) {
    const Scene scene = make_scene(16000);
    const EchoFigures f = measure_echo(scene, only_echo_cancellation(scene.rate, false));
    EXPECT_NEAR(f.erle_db, 0.0, 0.5);
    EXPECT_GT(f.near_only_corr, 0.99);
    EXPECT_TRUE(std::isnan(f.stats.erle_db));
}

// The speaker's device period (256 samples) is not 10 ms: the ring re-blocks the far end into
// the canceller's frames and the echo is still removed.
TEST(VoiceProcessor, ReblocksSpeakerPeriodsIntoFrames) {
    const Scene scene = make_scene(16000);
    const EchoFigures f = measure_echo(scene, only_echo_cancellation(scene.rate, true), 256);
    EXPECT_GE(f.erle_db, 20.0);
    EXPECT_GE(f.near_only_corr, 0.9);
}

// The real threading: a playout thread hands over 256-sample periods while the capture worker
// processes 10 ms frames. Both are paced as a device would pace them: the speaker plays at most
// one period ahead of the microphone, and a microphone frame is processed once the speaker has
// played that far. The SPSC hand-off loses nothing and the echo is still removed.
TEST(VoiceProcessor, PlayoutAndCaptureThreadsShareTheProcessor) {
    const Scene scene = make_scene(16000);
    auto processor = VoiceProcessor::create(only_echo_cancellation(scene.rate, true)).value();
    const std::size_t n = processor->frame_size();
    const std::size_t period = 256;
    std::atomic<std::size_t> played{0};
    std::atomic<std::size_t> captured{0};

    std::thread playout([&] {
        for (std::size_t at = 0; at + period <= scene.far.size(); at += period) {
            while (captured.load(std::memory_order_acquire) + period < at) {
                std::this_thread::yield();
            }
            std::size_t queued = 0;
            while (queued < period) {  // a full ring means the capture side lags: retry
                queued += processor->push_far_end(
                    Span<const float>(scene.far.data() + at + queued, period - queued));
                if (queued < period) {
                    std::this_thread::yield();
                }
            }
            played.store(at + period, std::memory_order_release);
        }
        played.store(scene.far.size() + n, std::memory_order_release);
    });
    std::vector<float> out(scene.mic.size() / n * n);
    for (std::size_t start = 0; start + n <= out.size(); start += n) {
        while (played.load(std::memory_order_acquire) < start + n) {
            std::this_thread::yield();
        }
        std::copy(scene.mic.begin() + static_cast<long>(start),
                  scene.mic.begin() + static_cast<long>(start + n),
                  out.begin() + static_cast<long>(start));
        EXPECT_FALSE(processor->process_capture(Span<float>(out.data() + start, n)));
        captured.store(start + n, std::memory_order_release);
    }
    playout.join();

    const std::size_t converged = static_cast<std::size_t>(3 * scene.rate);
    const double erle = 10.0 * std::log10(energy(scene.mic, converged, scene.near_start) /
                                          energy(out, converged, scene.near_start));
    std::printf("threads erle=%.1f dB\n", erle);
    EXPECT_GE(erle, 20.0);
    EXPECT_GE(processor->stats().far_end_frames, scene.far.size() / n - 2);
}

// The speaker runs at 48 kHz while the microphone is processed at 16 kHz: the far end is
// analysed at its own rate and the echo is still removed.
TEST(VoiceProcessor, CancelsEchoOfAFarEndAtAnotherRate) {
    const Scene scene = make_scene(16000);
    std::vector<float> far48 = agent_speech(48000);
    far48.resize(scene.far.size() * 3, 0.0f);
    VoiceProcessorConfig config = only_echo_cancellation(16000, true);
    config.far_end_rate = 48000;
    auto processor = VoiceProcessor::create(config).value();
    ASSERT_EQ(processor->far_end_frame_size(), 480u);

    const std::size_t n = processor->frame_size();
    std::vector<float> out(scene.mic.size() / n * n);
    for (std::size_t frame = 0; (frame + 1) * n <= out.size(); ++frame) {
        EXPECT_EQ(processor->push_far_end(Span<const float>(far48.data() + frame * 480, 480)),
                  480u);
        std::copy(scene.mic.begin() + static_cast<long>(frame * n),
                  scene.mic.begin() + static_cast<long>((frame + 1) * n),
                  out.begin() + static_cast<long>(frame * n));
        EXPECT_FALSE(processor->process_capture(Span<float>(out.data() + frame * n, n)));
    }
    const std::size_t converged = static_cast<std::size_t>(3 * scene.rate);
    const double erle = 10.0 * std::log10(energy(scene.mic, converged, scene.near_start) /
                                          energy(out, converged, scene.near_start));
    std::printf("far48 mic16 erle=%.1f dB\n", erle);
    EXPECT_GE(erle, 20.0);
}

// The configured device delay is 25 ms off (15 instead of 40): the canceller's own search
// still finds the echo.
TEST(VoiceProcessor, ToleratesAnInexactDeviceDelay) {
    const Scene scene = make_scene(16000);
    VoiceProcessorConfig config = only_echo_cancellation(scene.rate, true);
    config.delay_ms = 15;
    const EchoFigures f = measure_echo(scene, config);
    EXPECT_GE(f.erle_db, 20.0);
    EXPECT_GE(f.near_only_corr, 0.9);
}

// A delay far off (300 ms instead of 40) defeats the canceller, and the exported ERLE shows it,
// so the lane's ERLE alert catches a misconfigured post.
TEST(VoiceProcessor, ExportedErleRevealsAWrongDelay) {
    const Scene scene = make_scene(16000);
    VoiceProcessorConfig config = only_echo_cancellation(scene.rate, true);
    config.delay_ms = 300;
    const EchoFigures f = measure_echo(scene, config);
    EXPECT_LT(f.erle_db, 10.0);
    EXPECT_LT(f.stats.erle_db, 10.0f);
}

// The device delay is 60 ms off (100 instead of 40): the fixed-delay canceller leaves most of
// the echo; with the delay-agnostic search it finds the echo again. With the right delay the
// search costs nothing.
TEST(VoiceProcessor, DelayAgnosticModeFindsAnOffsetDelay) {
    const Scene scene = make_scene(16000);
    VoiceProcessorConfig config = only_echo_cancellation(scene.rate, true);
    config.delay_ms = 100;
    EXPECT_LT(measure_echo(scene, config).erle_db, 15.0);

    config.delay_agnostic = true;
    const EchoFigures found = measure_echo(scene, config);
    EXPECT_GE(found.erle_db, 20.0);
    EXPECT_GE(found.near_only_corr, 0.9);

    config.delay_ms = 40;
    EXPECT_GE(measure_echo(scene, config).erle_db, 20.0);
}

// Speech with pauses over a faint noise floor: the VAD marks speech frames as speech and pauses
// as silence.
TEST(VoiceProcessor, DetectsVoiceFrames) {
    const int rate = 16000;
    const std::vector<float>& words = test::speech(rate);
    std::vector<float> signal(static_cast<std::size_t>(rate), 0.0f);  // 1 s of silence first
    signal.insert(signal.end(), words.begin(), words.end());
    signal.resize(signal.size() + static_cast<std::size_t>(2 * rate), 0.0f);
    const std::vector<float> clean = signal;
    add_noise(signal, 3e-4, 11);

    VoiceProcessorConfig config = only_echo_cancellation(rate, false);
    config.voice_detection = true;
    auto processor = VoiceProcessor::create(config).value();
    std::vector<bool> voice;
    run(*processor, signal, {}, &voice);

    // Reference labels from the clean signal's frame energy; frames near the threshold, and the
    // frames right after speech (the VAD holds its decision briefly), are not scored.
    const std::size_t n = processor->frame_size();
    int speech = 0, speech_hit = 0, silence = 0, silence_hit = 0;
    for (std::size_t f = 0; f < voice.size(); ++f) {
        const double level = rms(clean.data() + f * n, n);
        if (level > 0.05) {
            ++speech;
            speech_hit += voice[f] ? 1 : 0;
        } else if (level == 0.0 && (f < 90 || f * n > rate + words.size() + rate / 2)) {
            ++silence;
            silence_hit += voice[f] ? 0 : 1;
        }
    }
    const double speech_rate = double(speech_hit) / speech;
    const double silence_rate = double(silence_hit) / silence;
    std::printf("vad speech_frames=%d detected=%.3f silence_frames=%d rejected=%.3f\n", speech,
                speech_rate, silence, silence_rate);
    EXPECT_GT(speech, 50);
    EXPECT_GT(silence, 150);
    EXPECT_GE(speech_rate, 0.9);
    EXPECT_GE(silence_rate, 0.9);
    EXPECT_EQ(processor->stats().voice_frames,
              static_cast<std::uint64_t>(std::count(voice.begin(), voice.end(), true)));
}

// An idling engine (stationary noise 10 dB under the speech) is suppressed while the speech
// stays: the signal-to-noise ratio improves by at least 10 dB.
TEST(VoiceProcessor, SuppressesStationaryNoise) {
    const int rate = 16000;
    const std::vector<float>& words = test::speech(rate);
    const std::size_t lead = static_cast<std::size_t>(2 * rate);  // noise alone first
    std::vector<float> clean(lead, 0.0f);
    clean.insert(clean.end(), words.begin(), words.end());
    std::vector<float> noisy = clean;
    const double speech_level = rms(words.data(), words.size());
    add_noise(noisy, speech_level / std::sqrt(10.0), 3);

    VoiceProcessorConfig config = only_echo_cancellation(rate, false);
    config.noise_suppression = true;
    auto processor = VoiceProcessor::create(config).value();
    const std::vector<float> out = run(*processor, noisy, {});

    // SNR as speech-part power over noise-only power (after the suppressor's first second).
    auto snr = [&](const std::vector<float>& s) {
        const double noise = energy(s, lead / 2, lead) / double(lead / 2);
        const double speech = energy(s, lead, s.size()) / double(s.size() - lead);
        return 10.0 * std::log10(speech / noise);
    };
    const double before = snr(noisy);
    const double after = snr(out);
    const std::vector<float> speech_in = slice(clean, lead, out.size());
    const std::vector<float> speech_out = slice(out, lead, out.size());
    const double kept =
        correlation(speech_in, speech_out, test::best_lag(speech_in, speech_out, 0, rate / 25));
    std::printf("ns snr_before=%.1f dB snr_after=%.1f dB speech_corr=%.3f speech_prob=%.2f\n",
                before, after, kept, double{processor->stats().speech_probability});
    EXPECT_GE(after - before, 10.0);
    EXPECT_GE(kept, 0.85);
}

// A customer 30 dB too quiet is brought up by the gain control by at least 10 dB.
TEST(VoiceProcessor, RaisesAQuietTalker) {
    const int rate = 16000;
    std::vector<float> quiet = test::speech(rate);
    for (float& s : quiet) {
        s *= 0.03f;
    }
    quiet.insert(quiet.end(), quiet.begin(), quiet.end());  // time for the gain to adapt

    VoiceProcessorConfig config = only_echo_cancellation(rate, false);
    config.gain_control = true;
    auto processor = VoiceProcessor::create(config).value();
    const std::vector<float> out = run(*processor, quiet, {});

    // Measure on the second repetition, after adaptation.
    const std::size_t half = quiet.size() / 2;
    const double gain_db = 20.0 * std::log10(rms(out.data() + half, out.size() - half) /
                                             rms(quiet.data() + half, out.size() - half));
    const double peak = std::fabs(*std::max_element(
        out.begin(), out.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }));
    std::printf("agc gain=%.1f dB peak=%.2f\n", gain_db, peak);
    EXPECT_GE(gain_db, 10.0);
    EXPECT_LE(peak, 1.0);
}

// Wrong rates and sizes are refused with an error code, not processed.
TEST(VoiceProcessor, RefusesBadRatesAndFrameSizes) {
    VoiceProcessorConfig config;
    config.sample_rate = 44100;
    auto bad = VoiceProcessor::create(config);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, make_error_code(errc::unsupported_rate));

    config.sample_rate = 16000;
    config.delay_ms = 900;
    EXPECT_EQ(VoiceProcessor::create(config).error().code, make_error_code(errc::invalid_argument));

    config.delay_ms = 0;
    auto processor = VoiceProcessor::create(config).value();
    std::vector<float> short_frame(100, 0.0f);
    EXPECT_EQ(processor->process_capture(Span<float>(short_frame)),
              make_error_code(errc::invalid_argument));
    EXPECT_EQ(processor->stats().processing_errors, 1u);
}

// The speaker runs ahead of a stalled capture worker: the ring keeps what fits and counts the
// rest instead of blocking the playout thread.
TEST(VoiceProcessor, CountsFarEndOverflowWhenCaptureStalls) {
    auto processor = VoiceProcessor::create(VoiceProcessorConfig{}).value();
    std::vector<float> second(16000, 0.1f);
    std::size_t queued = 0;
    for (int i = 0; i < 4; ++i) {
        queued += processor->push_far_end(Span<const float>(second));
    }
    EXPECT_LT(queued, 4u * 16000u);
    EXPECT_EQ(processor->stats().far_end_dropped, 4u * 16000u - queued);
}

}  // namespace
}  // namespace olympus::audio
