// Settings shared by the capture and playback streams. Plain data; setup thread.
#pragma once

#include <cstddef>
#include <string>

namespace olympus::audio {

struct DeviceStreamConfig {
    std::string device;                ///< "" = default, a number = index, else a name substring
    int codec_rate = 48000;            ///< rate the pipeline side reads or writes, Hz
    std::size_t ring_samples = 16384;  ///< ring capacity in device samples (a power of two)
    double latency_ms = 0;             ///< 0 = the lowest latency the device accepts
    int resampler_quality = 5;         ///< speexdsp 0..10, used when the device rate differs
    int fade_ms = 5;                   ///< playback: fade length of fade_out_and_flush()
};

}  // namespace olympus::audio
