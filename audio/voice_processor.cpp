// The capture-path processor over webrtc-audio-processing 0.3; see voice_processor.hpp. The only
// translation unit that includes the library's headers.
#include "olympus/audio/voice_processor.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <webrtc_audio_processing/webrtc/modules/audio_processing/include/audio_processing.h>

namespace olympus::audio {
namespace {

constexpr int kMaxDelayMs = 500;
// The canceller's metrics are averaged over about a second; reading them every half second keeps
// the exported values fresh without calling into the library on every frame.
constexpr std::uint64_t kFramesPerMetricsRead = 50;
// Half a second of far-end audio at 48 kHz: room for the playout thread to run ahead of the
// capture worker by several device periods.
constexpr std::size_t kFarRingSamples = 32768;
// Speaker frames queued beyond the pairing (the capture worker stalled): past this many, they
// are fed at once so that the reference never lags the microphone by more than 200 ms.
constexpr std::size_t kMaxFarLead = 20;
constexpr float kNotMeasured = std::numeric_limits<float>::quiet_NaN();

class ApmCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "webrtc-apm"; }
    std::string message(int value) const override {
        switch (value) {
            case webrtc::AudioProcessing::kNoError:
                return "no error";
            case webrtc::AudioProcessing::kCreationFailedError:
                return "audio processing could not be created";
            case webrtc::AudioProcessing::kUnsupportedComponentError:
                return "unsupported processing component";
            case webrtc::AudioProcessing::kBadParameterError:
                return "bad processing parameter";
            case webrtc::AudioProcessing::kBadSampleRateError:
                return "sample rate not supported by audio processing";
            case webrtc::AudioProcessing::kBadDataLengthError:
                return "frame is not 10 ms long";
            case webrtc::AudioProcessing::kBadNumberChannelsError:
                return "channel count not supported by audio processing";
            case webrtc::AudioProcessing::kStreamParameterNotSetError:
                return "stream delay not set before processing";
            case webrtc::AudioProcessing::kNotEnabledError:
                return "processing component not enabled";
            case webrtc::AudioProcessing::kBadStreamParameterWarning:
                return "stream delay out of range (clamped)";
            default:
                return "audio processing error " + std::to_string(value);
        }
    }
};

std::error_code make_apm_error(int value) noexcept {
    return {value, apm_category()};
}

bool is_native_rate(int rate) {
    return rate == 8000 || rate == 16000 || rate == 32000 || rate == 48000;
}

// The first failure among the results of calls already made, in order.
std::error_code first_error(std::initializer_list<int> results) {
    for (int result : results) {
        if (result != webrtc::AudioProcessing::kNoError) {
            return make_apm_error(result);
        }
    }
    return {};
}

}  // namespace

const std::error_category& apm_category() noexcept {
    static const ApmCategory category;
    return category;
}

struct VoiceProcessor::Engine {
    std::unique_ptr<webrtc::AudioProcessing> apm;
    webrtc::StreamConfig capture;
    webrtc::StreamConfig far_end;
};

namespace {

webrtc::EchoCancellation::SuppressionLevel suppression_level(EchoSuppression level) {
    switch (level) {
        case EchoSuppression::low:
            return webrtc::EchoCancellation::kLowSuppression;
        case EchoSuppression::high:
            return webrtc::EchoCancellation::kHighSuppression;
        case EchoSuppression::moderate:
            break;
    }
    return webrtc::EchoCancellation::kModerateSuppression;
}

// Keeps the metrics and delay logging on so that ERLE and the delay estimate can be exported.
std::error_code configure_echo(webrtc::EchoCancellation& aec, const VoiceProcessorConfig& c) {
    std::error_code ec =
        first_error({aec.Enable(c.echo_cancellation), aec.enable_drift_compensation(false)});
    if (!ec && c.echo_cancellation) {
        ec = first_error({aec.set_suppression_level(suppression_level(c.echo_suppression)),
                          aec.enable_metrics(true), aec.enable_delay_logging(true)});
    }
    return ec;
}

// Engine noise is stationary; high suppression removes it without gating speech.
std::error_code configure_noise(webrtc::NoiseSuppression& ns, const VoiceProcessorConfig& c) {
    std::error_code ec = first_error({ns.Enable(c.noise_suppression)});
    if (!ec && c.noise_suppression) {
        ec = first_error({ns.set_level(webrtc::NoiseSuppression::kHigh)});
    }
    return ec;
}

// There is no analog mixer to steer on a fixed post: digital gain with a limiter.
std::error_code configure_gain(webrtc::GainControl& agc, const VoiceProcessorConfig& c) {
    std::error_code ec;
    if (c.gain_control) {
        ec = first_error({agc.set_mode(webrtc::GainControl::kAdaptiveDigital),
                          agc.set_target_level_dbfs(3), agc.set_compression_gain_db(15),
                          agc.enable_limiter(true)});
    }
    return ec ? ec : first_error({agc.Enable(c.gain_control)});
}

// Moderate likelihood: idling engines are not speech, a soft "hello" is.
std::error_code configure_voice(webrtc::VoiceDetection& vad, const VoiceProcessorConfig& c) {
    std::error_code ec = first_error({vad.Enable(c.voice_detection)});
    if (!ec && c.voice_detection) {
        ec = first_error({vad.set_likelihood(webrtc::VoiceDetection::kModerateLikelihood),
                          vad.set_frame_size_ms(10)});
    }
    return ec;
}

// Switches each stage on or off and sets the parameters a drive-thru post needs.
std::error_code configure_stages(webrtc::AudioProcessing& apm, const VoiceProcessorConfig& c) {
    std::error_code ec = configure_echo(*apm.echo_cancellation(), c);
    if (!ec) {
        ec = configure_noise(*apm.noise_suppression(), c);
    }
    if (!ec) {
        ec = configure_gain(*apm.gain_control(), c);
    }
    if (!ec) {
        ec = configure_voice(*apm.voice_detection(), c);
    }
    return ec;
}

}  // namespace

Result<std::unique_ptr<VoiceProcessor>> VoiceProcessor::create(const VoiceProcessorConfig& config) {
    // Refuse rates the library cannot run natively: resampling here would add delay that the
    // canceller would have to learn.
    VoiceProcessorConfig c = config;
    if (c.far_end_rate == 0) {
        c.far_end_rate = c.sample_rate;
    }
    if (!is_native_rate(c.sample_rate) || !is_native_rate(c.far_end_rate)) {
        return Error{make_error_code(errc::unsupported_rate),
                     "rate=" + std::to_string(c.sample_rate) +
                         " far_end_rate=" + std::to_string(c.far_end_rate)};
    }
    if (c.delay_ms < 0 || c.delay_ms > kMaxDelayMs) {
        return Error{make_error_code(errc::invalid_argument),
                     "delay_ms=" + std::to_string(c.delay_ms) + " (0..500)"};
    }

    // Construction-time options: the delay-agnostic search when asked for, and the extended
    // filter, which covers a longer echo tail (reflections inside the box) than the default.
    webrtc::Config options;
    options.Set<webrtc::DelayAgnostic>(new webrtc::DelayAgnostic(c.delay_agnostic));
    options.Set<webrtc::ExtendedFilter>(new webrtc::ExtendedFilter(true));
    auto engine = std::make_unique<Engine>();
    engine->apm.reset(webrtc::AudioProcessing::Create(options));
    if (!engine->apm) {
        return Error{make_apm_error(webrtc::AudioProcessing::kCreationFailedError), "create"};
    }

    // Mono in, mono out, at the codec rates; the far end may run at its own rate.
    engine->capture = webrtc::StreamConfig(c.sample_rate, 1);
    engine->far_end = webrtc::StreamConfig(c.far_end_rate, 1);
    const webrtc::ProcessingConfig processing{
        {engine->capture, engine->capture, engine->far_end, engine->far_end}};
    if (std::error_code ec = first_error({engine->apm->Initialize(processing)})) {
        return Error{ec, "initialize rate=" + std::to_string(c.sample_rate)};
    }
    if (std::error_code ec = configure_stages(*engine->apm, c)) {
        return Error{ec, "configure"};
    }
    return std::unique_ptr<VoiceProcessor>(new VoiceProcessor(c, std::move(engine)));
}

VoiceProcessor::VoiceProcessor(const VoiceProcessorConfig& config, std::unique_ptr<Engine> engine)
    : config_(config),
      frame_size_(static_cast<std::size_t>(config.sample_rate / 100)),
      far_frame_size_(static_cast<std::size_t>(config.far_end_rate / 100)),
      far_ring_(kFarRingSamples),
      engine_(std::move(engine)),
      far_frame_(far_frame_size_),
      delay_ms_(config.delay_ms),
      erle_db_(kNotMeasured),
      erl_db_(kNotMeasured),
      speech_probability_(kNotMeasured) {}

VoiceProcessor::~VoiceProcessor() = default;

std::size_t VoiceProcessor::push_far_end(Span<const float> samples) noexcept {
    return far_ring_.try_push_bulk(samples);
}

void VoiceProcessor::set_delay_ms(int delay_ms) noexcept {
    delay_ms_ = std::clamp(delay_ms, 0, kMaxDelayMs);
}

std::error_code VoiceProcessor::process_capture(Span<float> frame) noexcept {
    if (frame.size() != frame_size_) {
        processing_errors_.fetch_add(1, std::memory_order_relaxed);
        return make_error_code(errc::invalid_argument);
    }

    // The reference must reach the canceller before the microphone frame that holds its echo.
    feed_far_end();

    // The delay is a per-frame input of the library; it must be set before every frame.
    webrtc::AudioProcessing& apm = *engine_->apm;
    if (config_.echo_cancellation) {
        apm.set_stream_delay_ms(delay_ms_);
    }

    // In place: the library allows the same buffer for input and output.
    float* channels[1] = {frame.data()};
    const int result = apm.ProcessStream(channels, engine_->capture, engine_->capture, channels);
    if (result != webrtc::AudioProcessing::kNoError) {
        processing_errors_.fetch_add(1, std::memory_order_relaxed);
        return make_apm_error(result);
    }

    // Per-frame decisions are cheap to read; the canceller's averages are read less often.
    if (config_.voice_detection) {
        const bool voice = apm.voice_detection()->stream_has_voice();
        voice_.store(voice, std::memory_order_relaxed);
        if (voice) {
            voice_frames_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    if (config_.noise_suppression) {
        speech_probability_.store(apm.noise_suppression()->speech_probability(),
                                  std::memory_order_relaxed);
    }
    frames_processed_.fetch_add(1, std::memory_order_relaxed);
    ++mic_frames_;
    if (++frames_since_metrics_ >= kFramesPerMetricsRead) {
        frames_since_metrics_ = 0;
        publish_stats();
    }
    return {};
}

void VoiceProcessor::feed_far_end() noexcept {
    // Pair by count: the k-th microphone frame since the far end began goes with the k-th
    // speaker frame. Both devices run on one clock, so a scheduling hiccup that delivers several
    // frames of each at once cannot shift the pairing (draining the whole ring would pair a
    // microphone frame with speaker audio that was played after it).
    // TODO: compensate clock drift between separate capture and playback devices; a faster
    // speaker builds up a lead that is fed at once past kMaxFarLead (a short stretch of echo
    // leaks), a slower one makes the pairing slip towards pairing by arrival.
    while (far_ring_.size() >= far_frame_size_) {
        if (!far_anchored_) {
            far_anchored_ = true;
            far_shift_ = static_cast<std::int64_t>(mic_frames_);
        }
        const bool due = static_cast<std::int64_t>(far_fed_) + far_shift_ <=
                         static_cast<std::int64_t>(mic_frames_);
        if (!due && far_ring_.size() < kMaxFarLead * far_frame_size_) {
            return;  // this speaker frame belongs to a later microphone frame
        }
        const std::size_t got = far_ring_.try_pop_bulk(Span<float>(far_frame_));
        if (got != far_frame_size_) {
            return;
        }
        float* channels[1] = {far_frame_.data()};
        if (config_.echo_cancellation) {
            engine_->apm->ProcessReverseStream(channels, engine_->far_end, engine_->far_end,
                                               channels);
        }
        far_end_frames_.fetch_add(1, std::memory_order_relaxed);
        ++far_fed_;
        if (!due) {
            --far_shift_;  // the capture side fell behind: the pairing moves on by a frame
        }
    }
}

void VoiceProcessor::publish_stats() noexcept {
    if (!config_.echo_cancellation) {
        return;
    }

    // The library reports -100 dB while it has no far-end speech to measure against (before
    // the first prompt, between prompts); the last real figure stays exported meanwhile.
    webrtc::EchoCancellation* aec = engine_->apm->echo_cancellation();
    webrtc::EchoCancellation::Metrics metrics{};
    if (aec->GetMetrics(&metrics) == webrtc::AudioProcessing::kNoError) {
        const int erle = metrics.echo_return_loss_enhancement.average;
        const int erl = metrics.echo_return_loss.average;
        if (erle > -100) {
            erle_db_.store(static_cast<float>(erle), std::memory_order_relaxed);
        }
        if (erl > -100) {
            erl_db_.store(static_cast<float>(erl), std::memory_order_relaxed);
        }
    }

    int median = -1;
    int spread = -1;
    float poor = 0;
    if (aec->GetDelayMetrics(&median, &spread, &poor) == webrtc::AudioProcessing::kNoError) {
        delay_median_ms_.store(median, std::memory_order_relaxed);
        delay_std_ms_.store(spread, std::memory_order_relaxed);
    }
}

VoiceProcessorStats VoiceProcessor::stats() const noexcept {
    VoiceProcessorStats s;
    s.erle_db = erle_db_.load(std::memory_order_relaxed);
    s.erl_db = erl_db_.load(std::memory_order_relaxed);
    s.delay_median_ms = delay_median_ms_.load(std::memory_order_relaxed);
    s.delay_std_ms = delay_std_ms_.load(std::memory_order_relaxed);
    s.speech_probability = speech_probability_.load(std::memory_order_relaxed);
    s.voice = voice_.load(std::memory_order_relaxed);
    s.frames_processed = frames_processed_.load(std::memory_order_relaxed);
    s.voice_frames = voice_frames_.load(std::memory_order_relaxed);
    s.far_end_frames = far_end_frames_.load(std::memory_order_relaxed);
    s.far_end_dropped = far_ring_.overflows();
    s.processing_errors = processing_errors_.load(std::memory_order_relaxed);
    return s;
}

}  // namespace olympus::audio
