// What the capture and playback streams share (internal): getting PortAudio, the device, its
// rate and the converter ready, opening the stream, and starting, stopping and closing it.
// Setup thread (the thread that owns the stream's lifecycle).
#pragma once

#include <portaudio.h>

#include "olympus/audio/device.hpp"
#include "olympus/audio/device_stream_config.hpp"
#include "olympus/audio/error.hpp"
#include "olympus/audio/resampler.hpp"

namespace olympus::audio::detail {

/// Everything a stream needs before its PortAudio stream opens.
struct PreparedDevice {
    PortAudioLibrary library;
    DeviceInfo device;
    int device_rate = 0;
    Resampler resampler;  ///< codec rate to device rate (playback) or back (capture)
};

/// Initialises PortAudio, finds the device, chooses its rate and builds the converter; checks
/// the ring size. Errors name the device and the value.
Result<PreparedDevice> prepare_device(Direction direction, const DeviceStreamConfig& config);

/// The rate to run `device` at: the codec rate when the device accepts it, else its default.
int choose_device_rate(const DeviceInfo& device, int codec_rate);

/// Opens a mono float stream on `device` at `rate` with the lowest latency the device accepts
/// (or config.latency_ms). On success sets `stream` and the latency granted, in ms.
std::error_code open_stream(Direction direction, const DeviceInfo& device, int rate,
                            const DeviceStreamConfig& config, PaStreamCallback* callback,
                            void* user, PaStream*& stream, double& latency_ms, Error& error);

std::error_code start_stream(PaStream* stream);
/// Stops the callback; a stream already stopped is not an error.
std::error_code stop_stream(PaStream* stream);
/// Closes `stream` (stopping the callback first) and sets it to null. May block inside
/// PortAudio: on the JACK host API up to 10 minutes when the JACK client stalled.
void close_stream(PaStream*& stream);

}  // namespace olympus::audio::detail
