// PortAudio device listing and selection; see device.hpp. Setup thread.
#include "olympus/audio/device.hpp"

#include <algorithm>
#include <cctype>
#include <mutex>

#include <portaudio.h>

namespace olympus::audio {
namespace {

std::mutex& library_mutex() {
    static std::mutex mutex;
    return mutex;
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::vector<int> probe_rates(int index, const PaDeviceInfo& device) {
    std::vector<int> rates;
    for (int rate : {8000, 16000, 24000, 32000, 44100, 48000}) {
        PaStreamParameters params{};
        params.device = index;
        params.channelCount = 1;
        params.sampleFormat = paFloat32;
        const bool input = device.maxInputChannels > 0;
        params.suggestedLatency =
            input ? device.defaultLowInputLatency : device.defaultLowOutputLatency;
        if (Pa_IsFormatSupported(input ? &params : nullptr, input ? nullptr : &params, rate) ==
            paFormatIsSupported) {
            rates.push_back(rate);
        }
    }
    return rates;
}

DeviceInfo describe(int index) {
    const PaDeviceInfo* device = Pa_GetDeviceInfo(index);
    DeviceInfo info;
    info.index = index;
    if (device == nullptr) {
        return info;
    }
    const PaHostApiInfo* api = Pa_GetHostApiInfo(device->hostApi);
    info.name = device->name != nullptr ? device->name : "";
    info.host_api = api != nullptr && api->name != nullptr ? api->name : "";
    info.max_input_channels = device->maxInputChannels;
    info.max_output_channels = device->maxOutputChannels;
    info.default_sample_rate = device->defaultSampleRate;
    info.low_input_latency_ms = device->defaultLowInputLatency * 1000.0;
    info.low_output_latency_ms = device->defaultLowOutputLatency * 1000.0;
    info.default_input = index == Pa_GetDefaultInputDevice();
    info.default_output = index == Pa_GetDefaultOutputDevice();
    info.supported_rates = probe_rates(index, *device);
    return info;
}

bool has_channels(const DeviceInfo& info, Direction direction) {
    return direction == Direction::capture ? info.max_input_channels > 0
                                           : info.max_output_channels > 0;
}

int& library_users() {
    static int users = 0;
    return users;
}

}  // namespace

Result<PortAudioLibrary> PortAudioLibrary::acquire() {
    std::lock_guard lock(library_mutex());
    if (library_users() == 0) {
        const PaError error = Pa_Initialize();
        if (error != paNoError) {
            return Error{make_portaudio_error(error), "Pa_Initialize"};
        }
    }
    ++library_users();
    return PortAudioLibrary();
}

PortAudioLibrary::~PortAudioLibrary() {
    if (!owns_) {
        return;
    }
    std::lock_guard lock(library_mutex());
    if (--library_users() == 0) {
        Pa_Terminate();
    }
}

int PortAudioLibrary::users() {
    std::lock_guard lock(library_mutex());
    return library_users();
}

std::vector<DeviceInfo> list_devices() {
    std::vector<DeviceInfo> devices;
    const int count = Pa_GetDeviceCount();
    for (int i = 0; i < count; ++i) {
        devices.push_back(describe(i));
    }
    return devices;
}

Result<DeviceInfo> find_device(const std::string& selector, Direction direction) {
    const char* what = direction == Direction::capture ? "capture" : "playback";
    const auto not_found = [&](const std::string& detail) {
        return Error{make_error_code(errc::device_not_found),
                     std::string(what) + " device=\"" + selector + "\"" + detail};
    };

    // No selector: the host's default device for this direction.
    const int count = Pa_GetDeviceCount();
    if (selector.empty()) {
        const int index = direction == Direction::capture ? Pa_GetDefaultInputDevice()
                                                          : Pa_GetDefaultOutputDevice();
        if (index == paNoDevice) {
            return not_found(" (no default device; " + std::to_string(std::max(count, 0)) +
                             " devices)");
        }
        return describe(index);
    }

    // All digits: an index.
    if (std::all_of(selector.begin(), selector.end(),
                    [](unsigned char c) { return std::isdigit(c) != 0; })) {
        const int index = std::stoi(selector);
        if (index >= count) {
            return not_found(" (index out of range, " + std::to_string(count) + " devices)");
        }
        DeviceInfo info = describe(index);
        if (!has_channels(info, direction)) {
            return not_found(" (\"" + info.name + "\" has no " + what + " channels)");
        }
        return info;
    }

    // Otherwise the first device whose name contains the selector.
    const std::string wanted = lower(selector);
    for (int i = 0; i < count; ++i) {
        const PaDeviceInfo* device = Pa_GetDeviceInfo(i);
        if (device != nullptr && device->name != nullptr &&
            lower(device->name).find(wanted) != std::string::npos) {
            DeviceInfo info = describe(i);
            if (has_channels(info, direction)) {
                return info;
            }
        }
    }
    return not_found(" (no matching device with " + std::string(what) + " channels)");
}

}  // namespace olympus::audio
