// libFuzzer target: the receive side's Opus path: packets with fuzzed sequence numbers, sizes,
// contents and arrival times go into the jitter buffer, which is pulled once per frame period
// (decode, FEC, concealment, fades). Input: records [seq delta:1][arrival ms delta:1][len:1]
// [packet:len]. Single thread plays both the network and the playout side, in turn.
#include <chrono>
#include <vector>

#include "olympus/audio/jitter_buffer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using Clock = olympus::audio::JitterBuffer::Clock;
    auto created = olympus::audio::JitterBuffer::create({});
    if (!created.ok()) {
        return 0;
    }
    auto& buffer = *created.value();
    std::vector<float> out(buffer.frame_samples());

    // Arrival and playout run on a synthetic clock, so the input decides the jitter.
    auto now = Clock::time_point() + std::chrono::hours(1);
    auto next_pull = now;
    std::uint32_t sequence = 0;
    std::size_t pos = 0;
    while (pos + 3 <= size) {
        sequence += static_cast<std::int8_t>(data[pos]);
        now += std::chrono::milliseconds(data[pos + 1]);
        std::size_t len = std::min<std::size_t>(data[pos + 2], size - pos - 3);
        buffer.push(sequence, {data + pos + 3, len}, now);
        pos += 3 + len;
        while (next_pull <= now) {
            buffer.pull({out.data(), out.size()}, next_pull);
            next_pull += std::chrono::milliseconds(20);
        }
    }
    for (int i = 0; i < 10; ++i) {
        buffer.pull({out.data(), out.size()}, next_pull);
        next_pull += std::chrono::milliseconds(20);
    }
    return 0;
}
