// Backoff arithmetic; see reconnect_policy.hpp. Pure functions of their arguments.
#include "olympus/reconnect_policy.hpp"

#include <stdexcept>

namespace olympus {

std::chrono::milliseconds ReconnectPolicy::ceiling(std::uint32_t attempt) const {
    // Double until the cap; stop early so the shift cannot overflow.
    auto value = base;
    for (std::uint32_t i = 0; i < attempt && value < cap; ++i) {
        value *= 2;
    }
    return value < cap ? value : cap;
}

std::chrono::milliseconds ReconnectPolicy::delay(std::uint32_t attempt,
                                                 std::mt19937_64& rng) const {
    auto top = ceiling(attempt);
    if (!full_jitter) {
        return top;
    }
    std::uniform_int_distribution<std::int64_t> pick(0, top.count());
    return std::chrono::milliseconds(pick(rng));
}

void ReconnectPolicy::validate() const {
    if (base.count() < 0) {
        throw std::invalid_argument("reconnect base delay must not be negative");
    }
    if (cap.count() < 0 || cap < base) {
        throw std::invalid_argument("reconnect cap must be at least the base delay");
    }
    if (stable_after.count() < 0) {
        throw std::invalid_argument("reconnect stable_after must not be negative");
    }
}

}  // namespace olympus
