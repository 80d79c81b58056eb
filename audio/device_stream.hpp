// Opening a PortAudio stream for the capture and playback streams (internal). Setup thread.
#pragma once

#include <portaudio.h>

#include "olympus/audio/device.hpp"
#include "olympus/audio/device_stream_config.hpp"
#include "olympus/audio/error.hpp"

namespace olympus::audio::detail {

/// The rate to run `device` at: the codec rate when the device accepts it, else its default.
int choose_device_rate(const DeviceInfo& device, int codec_rate);

/// Opens a mono float stream on `device` at `rate` with the lowest latency the device accepts
/// (or config.latency_ms). On success sets `stream` and the latency granted, in ms.
std::error_code open_stream(Direction direction, const DeviceInfo& device, int rate,
                            const DeviceStreamConfig& config, PaStreamCallback* callback,
                            void* user, PaStream*& stream, double& latency_ms, Error& error);

}  // namespace olympus::audio::detail
