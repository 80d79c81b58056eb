// Makes realistic, well-formed channel events for the emulator. Used on the emulator's io
// thread only.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace olympus::emulator {

class EventGenerator {
public:
    explicit EventGenerator(std::uint64_t seed);

    /// True for the channels of the protocol's section 2.6.
    static bool is_channel(std::string_view channel);

    /// The next event for a subscription: {"event": name, "data": {...}}. It honours the
    /// subscription's filters (`types`, `statuses`, `station`, `alert_types`, `metrics`) and
    /// carries its `location_id`.
    nlohmann::json next(const std::string& channel, const nlohmann::json& params);

    /// A fresh event id, unique for the life of the emulator ("evt-" and 16 hex digits).
    std::string next_id();

private:
    template <typename T>
    const T& pick(std::initializer_list<T> choices);
    std::string pick_filtered(const nlohmann::json& params, const char* key,
                              std::initializer_list<const char*> choices);
    int uniform(int low, int high);
    nlohmann::json order_items();

    nlohmann::json orders(const nlohmann::json& params);
    nlohmann::json kds(const nlohmann::json& params);
    nlohmann::json inventory(const nlohmann::json& params);
    nlohmann::json tables();
    nlohmann::json analytics(const nlohmann::json& params);
    nlohmann::json voice();

    std::mt19937_64 rng_;
    std::uint64_t id_salt_;
    std::uint64_t id_counter_ = 0;
    int order_counter_ = 12000;
};

}  // namespace olympus::emulator
