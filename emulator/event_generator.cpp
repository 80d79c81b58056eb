// Realistic restaurant events for the emulator; see event_generator.hpp.
#include "event_generator.hpp"

#include <array>
#include <cstdio>
#include <vector>

namespace olympus::emulator {
namespace {

struct MenuItem {
    const char* sku;
    const char* name;
    int price_cents;
};

constexpr std::array<MenuItem, 8> kMenu = {{
    {"burger-classic", "Classic Burger", 899},
    {"burger-double", "Double Cheeseburger", 1149},
    {"fries-large", "Large Fries", 449},
    {"fries-small", "Small Fries", 299},
    {"shake-vanilla", "Vanilla Shake", 549},
    {"soda-medium", "Medium Soda", 229},
    {"nuggets-10", "10 pc Nuggets", 749},
    {"salad-garden", "Garden Salad", 679},
}};

}  // namespace

EventGenerator::EventGenerator(std::uint64_t seed) : rng_(seed), id_salt_(rng_()) {}

bool EventGenerator::is_channel(std::string_view channel) {
    for (std::string_view known : {"orders", "kds", "inventory", "tables", "analytics", "voice"}) {
        if (channel == known) {
            return true;
        }
    }
    return false;
}

std::string EventGenerator::next_id() {
    char buffer[32];
    std::snprintf(
        buffer, sizeof buffer, "evt-%016llx",
        static_cast<unsigned long long>(id_salt_ ^ (++id_counter_ * 0x9e3779b97f4a7c15ULL)));
    return buffer;
}

int EventGenerator::uniform(int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(rng_);
}

template <typename T>
const T& EventGenerator::pick(std::initializer_list<T> choices) {
    auto index = static_cast<std::size_t>(uniform(0, static_cast<int>(choices.size()) - 1));
    return *(choices.begin() + index);
}

std::string EventGenerator::pick_filtered(const nlohmann::json& params, const char* key,
                                          std::initializer_list<const char*> choices) {
    // A filter given by the subscriber narrows the choice to what it asked for.
    auto filter = params.find(key);
    if (filter != params.end() && filter->is_array() && !filter->empty()) {
        std::vector<std::string> wanted;
        for (const auto& value : *filter) {
            if (value.is_string()) {
                wanted.push_back(value.get<std::string>());
            }
        }
        if (!wanted.empty()) {
            return wanted[static_cast<std::size_t>(
                uniform(0, static_cast<int>(wanted.size()) - 1))];
        }
    }
    return pick(choices);
}

nlohmann::json EventGenerator::order_items() {
    auto items = nlohmann::json::array();
    int count = uniform(1, 4);
    for (int i = 0; i < count; ++i) {
        const auto& item = kMenu[static_cast<std::size_t>(uniform(0, kMenu.size() - 1))];
        items.push_back({{"sku", item.sku},
                         {"name", item.name},
                         {"quantity", uniform(1, 3)},
                         {"price_cents", item.price_cents}});
    }
    return items;
}

nlohmann::json EventGenerator::orders(const nlohmann::json& params) {
    static const char* kEvents[] = {"order.created", "order.updated", "order.status_changed",
                                    "order.paid", "order.closed"};
    auto items = order_items();
    int total = 0;
    for (const auto& item : items) {
        total += item["quantity"].get<int>() * item["price_cents"].get<int>();
    }
    return {{"event", kEvents[uniform(0, 4)]},
            {"data",
             {{"order_id", "order-" + std::to_string(++order_counter_)},
              {"type", pick_filtered(params, "types", {"dine_in", "takeout", "drive_thru"})},
              {"status", pick_filtered(params, "statuses", {"open", "preparing", "ready"})},
              {"items", items},
              {"total_cents", total},
              {"currency", "USD"}}}};
}

nlohmann::json EventGenerator::kds(const nlohmann::json& params) {
    static const char* kEvents[] = {
        "kds.ticket.created", "kds.ticket.started",  "kds.ticket.ready", "kds.ticket.bumped",
        "kds.ticket.late",    "kds.ticket.recalled", "kds.ticket.voided"};
    std::string station = pick({"grill", "fry", "drinks", "expo"});
    for (const char* key : {"station", "station_id"}) {
        if (auto it = params.find(key); it != params.end() && it->is_string()) {
            station = it->get<std::string>();
        }
    }
    return {{"event", kEvents[uniform(0, 6)]},
            {"data",
             {{"ticket_id", "tkt-" + std::to_string(uniform(1000, 9999))},
              {"order_id", "order-" + std::to_string(order_counter_)},
              {"station", station},
              {"items", order_items()},
              {"elapsed_seconds", uniform(0, 900)}}}};
}

nlohmann::json EventGenerator::inventory(const nlohmann::json& params) {
    std::string alert = pick_filtered(params, "alert_types", {"low_stock", "out_of_stock"});
    bool received = alert != "low_stock" && alert != "out_of_stock";
    const auto& item = kMenu[static_cast<std::size_t>(uniform(0, kMenu.size() - 1))];
    int on_hand = alert == "out_of_stock" ? 0 : uniform(1, 12);
    return {{"event", received ? std::string("inventory.received") : "inventory." + alert},
            {"data",
             {{"item_id", item.sku},
              {"name", item.name},
              {"on_hand", received ? uniform(40, 120) : on_hand},
              {"threshold", 15},
              {"unit", "portion"}}}};
}

nlohmann::json EventGenerator::tables() {
    std::string event = pick({"table.seated", "table.cleared", "table.reserved"});
    return {{"event", event},
            {"data",
             {{"table_id", "table-" + std::to_string(uniform(1, 40))},
              {"party_size", uniform(1, 8)},
              {"server", pick({"Ana", "Ben", "Chloe", "Dev"})}}}};
}

nlohmann::json EventGenerator::analytics(const nlohmann::json& params) {
    std::string metric = pick_filtered(params, "metrics", {"revenue", "orders", "avg_ticket"});
    if (uniform(0, 9) == 0) {
        return {{"event", "analytics.hourly_summary"},
                {"data",
                 {{"revenue_cents", uniform(80000, 400000)},
                  {"orders", uniform(40, 220)},
                  {"avg_ticket_cents", uniform(900, 2400)}}}};
    }
    int value = metric == "revenue"  ? uniform(1000, 500000)
                : metric == "orders" ? uniform(1, 300)
                                     : uniform(900, 2400);
    return {{"event", "analytics.metric_update"},
            {"data", {{"metric", metric}, {"value", value}, {"window", "today"}}}};
}

nlohmann::json EventGenerator::voice() {
    std::string event = pick(
        {"voice.session.started", "voice.transcript", "voice.response", "voice.session.ended"});
    return {{"event", event},
            {"data",
             {{"session_id", "voice-sess-" + std::to_string(uniform(100000, 999999))},
              {"lane", uniform(1, 2)},
              {"text", pick({"a double cheeseburger and large fries", "anything else?",
                             "that will be $14.47 at the window"})}}}};
}

nlohmann::json EventGenerator::next(const std::string& channel, const nlohmann::json& params) {
    nlohmann::json event;
    if (channel == "orders") {
        event = orders(params);
    } else if (channel == "kds") {
        event = kds(params);
    } else if (channel == "inventory") {
        event = inventory(params);
    } else if (channel == "tables") {
        event = tables();
    } else if (channel == "analytics") {
        event = analytics(params);
    } else {
        event = voice();
    }
    if (auto it = params.find("location_id"); it != params.end() && it->is_string()) {
        event["data"]["location_id"] = *it;
    }
    return event;
}

}  // namespace olympus::emulator
