// Opening PortAudio streams; see device_stream.hpp. Setup thread.
#include "device_stream.hpp"

#include <algorithm>
#include <cmath>

namespace olympus::audio::detail {

Result<PreparedDevice> prepare_device(Direction direction, const DeviceStreamConfig& config) {
    // PortAudio must be up before devices can be found.
    const bool capture = direction == Direction::capture;
    const char* what = capture ? "capture" : "playback";
    auto library = PortAudioLibrary::acquire();
    if (!library) {
        return library.error();
    }
    auto device = find_device(config.device, direction);
    if (!device) {
        return device.error();
    }

    // Run the device at the codec rate if it can, else convert on the pipeline's side.
    const int device_rate = choose_device_rate(device.value(), config.codec_rate);
    auto resampler =
        capture ? Resampler::create(device_rate, config.codec_rate, config.resampler_quality)
                : Resampler::create(config.codec_rate, device_rate, config.resampler_quality);
    if (!resampler) {
        return Error{resampler.error().code, std::string(what) + " device=\"" +
                                                 device.value().name + "\" " +
                                                 resampler.error().context};
    }
    if (config.ring_samples < 2 || (config.ring_samples & (config.ring_samples - 1)) != 0) {
        return Error{make_error_code(errc::invalid_argument),
                     std::string(what) + " ring_samples=" + std::to_string(config.ring_samples)};
    }
    return PreparedDevice{std::move(library).value(), std::move(device).value(), device_rate,
                          std::move(resampler).value()};
}

std::error_code start_stream(PaStream* stream) {
    const PaError result = Pa_StartStream(stream);
    return result == paNoError ? std::error_code{} : make_portaudio_error(result);
}

std::error_code stop_stream(PaStream* stream) {
    const PaError result = Pa_StopStream(stream);
    return result == paNoError || result == paStreamIsStopped ? std::error_code{}
                                                              : make_portaudio_error(result);
}

void close_stream(PaStream*& stream) {
    if (stream != nullptr) {
        Pa_CloseStream(stream);  // stops the callback first
        stream = nullptr;
    }
}

int choose_device_rate(const DeviceInfo& device, int codec_rate) {
    const auto& rates = device.supported_rates;
    if (std::find(rates.begin(), rates.end(), codec_rate) != rates.end()) {
        return codec_rate;
    }
    return static_cast<int>(std::lround(device.default_sample_rate));
}

std::error_code open_stream(Direction direction, const DeviceInfo& device, int rate,
                            const DeviceStreamConfig& config, PaStreamCallback* callback,
                            void* user, PaStream*& stream, double& latency_ms, Error& error) {
    // Ask for the device's lowest latency unless the caller chose one.
    const bool capture = direction == Direction::capture;
    PaStreamParameters params{};
    params.device = device.index;
    params.channelCount = 1;
    params.sampleFormat = paFloat32;
    const double low_ms = capture ? device.low_input_latency_ms : device.low_output_latency_ms;
    params.suggestedLatency = (config.latency_ms > 0 ? config.latency_ms : low_ms) / 1000.0;

    // Open a callback stream (blocking I/O crashes on some host APIs, e.g. JACK).
    const PaError result =
        Pa_OpenStream(&stream, capture ? &params : nullptr, capture ? nullptr : &params, rate,
                      paFramesPerBufferUnspecified, paNoFlag, callback, user);
    if (result != paNoError) {
        stream = nullptr;
        error =
            Error{make_portaudio_error(result),
                  std::string(capture ? "capture" : "playback") + " device=\"" + device.name +
                      "\" index=" + std::to_string(device.index) + " rate=" + std::to_string(rate)};
        return error.code;
    }

    // Report what the device granted, which may differ from what was asked.
    const PaStreamInfo* info = Pa_GetStreamInfo(stream);
    latency_ms =
        info == nullptr ? 0.0 : 1000.0 * (capture ? info->inputLatency : info->outputLatency);
    return {};
}

}  // namespace olympus::audio::detail
