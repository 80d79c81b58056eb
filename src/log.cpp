// Logger registry shared by every component; see log.hpp.
#include "olympus/log.hpp"

#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <spdlog/sinks/stdout_sinks.h>

namespace olympus::log {
namespace {

struct Registry {
    std::mutex mutex;
    std::shared_ptr<spdlog::sinks::sink> sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    spdlog::level::level_enum level = spdlog::level::info;
    std::unordered_map<std::string, std::shared_ptr<spdlog::logger>> loggers;
};

Registry& registry() {
    static Registry instance;
    return instance;
}

}  // namespace

std::shared_ptr<spdlog::logger> get(const std::string& component) {
    auto& reg = registry();
    std::lock_guard lock(reg.mutex);
    auto it = reg.loggers.find(component);
    if (it != reg.loggers.end()) {
        return it->second;
    }
    auto logger = std::make_shared<spdlog::logger>(component, reg.sink);
    logger->set_level(reg.level);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n %v");
    reg.loggers.emplace(component, logger);
    return logger;
}

void set_level(std::string_view level) {
    auto parsed = spdlog::level::from_str(std::string(level));
    if (parsed == spdlog::level::off && level != "off") {
        throw std::invalid_argument("unknown log level '" + std::string(level) +
                                    "' (use trace, debug, info, warn, error or off)");
    }
    auto& reg = registry();
    std::lock_guard lock(reg.mutex);
    reg.level = parsed;
    for (auto& [name, logger] : reg.loggers) {
        logger->set_level(parsed);
    }
}

void set_sink(std::shared_ptr<spdlog::sinks::sink> sink) {
    auto& reg = registry();
    std::lock_guard lock(reg.mutex);
    reg.sink = std::move(sink);
    for (auto& [name, logger] : reg.loggers) {
        logger->sinks().assign(1, reg.sink);
    }
}

std::string redact_url(std::string_view url) {
    auto query = url.find('?');
    if (query == std::string_view::npos) {
        return std::string(url);
    }
    return std::string(url.substr(0, query)) + "?<redacted>";
}

bool RateLimit::allow(std::size_t& suppressed) {
    auto now = std::chrono::steady_clock::now();
    if (!first_ && now - last_ < interval_) {
        ++held_back_;
        return false;
    }
    first_ = false;
    last_ = now;
    suppressed = held_back_;
    held_back_ = 0;
    return true;
}

}  // namespace olympus::log
