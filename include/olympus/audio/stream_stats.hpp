// Counters of one device stream (capture or playback), as a snapshot with plain fields. Filled
// from atomics that the audio callback bumps; read from any thread.
#pragma once

#include <cstdint>

namespace olympus::audio {

struct StreamStats {
    std::uint64_t callbacks = 0;       ///< audio callbacks run
    std::uint64_t samples_in = 0;      ///< samples that entered the ring
    std::uint64_t samples_out = 0;     ///< samples that left the ring
    std::uint64_t ring_overflows = 0;  ///< samples lost because the ring was full
    std::uint64_t underruns = 0;       ///< callbacks that found too few samples (playback)
    std::uint64_t device_xruns = 0;    ///< over/underflows PortAudio reported
    std::uint64_t ring_fill = 0;       ///< samples queued now
    std::uint64_t ring_peak = 0;       ///< most samples ever queued
    double latency_ms = 0;             ///< latency the device granted
    int device_rate = 0;               ///< Hz the device runs at
};

}  // namespace olympus::audio
