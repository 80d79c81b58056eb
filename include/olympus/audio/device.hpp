// PortAudio device discovery: the library's lifetime, listing devices and picking one by index
// or name. Setup-time calls on any one thread (PortAudio's own functions are not thread-safe).
#pragma once

#include <string>
#include <vector>

#include "olympus/audio/error.hpp"

namespace olympus::audio {

/// Keeps PortAudio initialised while at least one instance exists. Create one before listing
/// or opening devices; streams hold their own.
class PortAudioLibrary {
public:
    /// Initialises PortAudio (reference counted). Fails when PortAudio cannot start.
    static Result<PortAudioLibrary> acquire();

    PortAudioLibrary(PortAudioLibrary&& other) noexcept : owns_(other.owns_) {
        other.owns_ = false;
    }
    PortAudioLibrary& operator=(PortAudioLibrary&&) = delete;
    PortAudioLibrary(const PortAudioLibrary&) = delete;
    ~PortAudioLibrary();

    /// Instances alive now. PortAudio sees devices added since it started (a restarted JACK
    /// server) only after the count went to 0 and it was initialised again.
    static int users();

private:
    PortAudioLibrary() = default;
    bool owns_ = true;
};

enum class Direction { capture, playback };

struct DeviceInfo {
    int index = -1;  ///< PortAudio device index
    std::string name;
    std::string host_api;  ///< "ALSA", "JACK Audio Connection Kit", ...
    int max_input_channels = 0;
    int max_output_channels = 0;
    double default_sample_rate = 0;   ///< Hz
    double low_input_latency_ms = 0;  ///< the device's lowest suggested latencies
    double low_output_latency_ms = 0;
    bool default_input = false;
    bool default_output = false;
    std::vector<int> supported_rates;  ///< of 8000..48000, the rates a mono stream accepts
};

/// Every device PortAudio sees (needs a live PortAudioLibrary).
std::vector<DeviceInfo> list_devices();

/// Picks a device for `direction`: an empty selector means the default device, a number is a
/// device index, anything else is a case-insensitive substring of the device name (the first
/// match with channels in that direction). Errors name the selector.
Result<DeviceInfo> find_device(const std::string& selector, Direction direction);

}  // namespace olympus::audio
