// The reconnect backoff of the realtime protocol (section 2.7): `base × 2^attempt` capped at
// `cap`, with full jitter, and the attempt counter reset after a stable connection. Plain value
// type; the connection uses it on its io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace olympus {

struct ReconnectPolicy {
    std::chrono::milliseconds base{1000};            ///< ceiling of the first delay
    std::chrono::milliseconds cap{30'000};           ///< no ceiling grows past this
    std::chrono::milliseconds stable_after{10'000};  ///< authenticated this long: reset attempts
    bool full_jitter = true;  ///< delay uniform in [0, ceiling]; false: exactly the ceiling
    /// Consecutive failed attempts (links that never authenticated) before giving up; 0: never.
    /// An authenticated link resets the count at once, however soon it drops again.
    std::uint32_t max_attempts = 0;
    std::uint64_t seed = 0;  ///< jitter RNG seed; 0 seeds from std::random_device

    /// The upper bound of the delay before reconnect attempt `attempt` (0-based):
    /// min(cap, base × 2^attempt).
    std::chrono::milliseconds ceiling(std::uint32_t attempt) const;

    /// A delay for `attempt` drawn with `rng`: uniform in [0, ceiling(attempt)] with full
    /// jitter, else ceiling(attempt).
    std::chrono::milliseconds delay(std::uint32_t attempt, std::mt19937_64& rng) const;

    /// Throws std::invalid_argument naming the field when a value is negative or base > cap.
    void validate() const;
};

}  // namespace olympus
