// The fixed-size slot that carries one Opus packet between the encoder, the network thread and
// the jitter buffer, so that nothing allocates per frame. Plain data; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "olympus/audio/span.hpp"

namespace olympus::audio {

/// The largest Opus packet for one frame, in bytes (RFC 6716, section 3.2.1).
inline constexpr std::size_t kMaxOpusPacketBytes = 1275;

/// The most samples per channel one frame can hold: 60 ms at 48 kHz.
inline constexpr std::size_t kMaxFrameSamples = 2880;

/// One encoded frame. `size` bytes of `bytes` are valid; size 0 means "nothing to send"
/// (DTX silence).
struct EncodedFrame {
    std::uint32_t sequence = 0;     ///< frame counter, +1 per frame period
    std::uint16_t size = 0;         ///< valid bytes in `bytes`
    std::int64_t timestamp_ns = 0;  ///< steady-clock time the frame was captured or received
    std::array<std::uint8_t, kMaxOpusPacketBytes> bytes{};

    Span<const std::uint8_t> payload() const noexcept { return {bytes.data(), size}; }
};

}  // namespace olympus::audio
