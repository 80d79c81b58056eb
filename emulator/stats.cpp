// Emulator counters and their JSON form; see server_context.hpp and emulator.hpp.
#include <ctime>

#include "server_context.hpp"

namespace olympus::emulator {
namespace {

std::uint64_t lookup(const std::map<std::string, std::uint64_t>& map, const std::string& key) {
    auto it = map.find(key);
    return it == map.end() ? 0 : it->second;
}

}  // namespace

std::uint64_t Stats::received_of(const std::string& type) const {
    return lookup(received, type);
}
std::uint64_t Stats::sent_of(const std::string& type) const {
    return lookup(sent, type);
}
std::uint64_t Stats::error_count(const std::string& code) const {
    return lookup(errors, code);
}

std::uint64_t Stats::close_count(int code) const {
    auto it = closes.find(code);
    return it == closes.end() ? 0 : it->second;
}

nlohmann::json Stats::to_json() const {
    nlohmann::json close_codes = nlohmann::json::object();
    for (const auto& [code, count] : closes) {
        close_codes[std::to_string(code)] = count;
    }
    return {{"received", received},
            {"sent", sent},
            {"errors", errors},
            {"closes", close_codes},
            {"connections_opened", connections_opened},
            {"connections_refused", connections_refused},
            {"connections_open", connections_open},
            {"oversize_frames", oversize_frames}};
}

void StatsRecorder::add(std::map<std::string, std::uint64_t> Stats::*field,
                        const std::string& key) {
    std::lock_guard lock(mutex_);
    ++(stats_.*field)[key];
}

void StatsRecorder::closed_with(int code) {
    std::lock_guard lock(mutex_);
    ++stats_.closes[code];
}

void StatsRecorder::opened() {
    std::lock_guard lock(mutex_);
    ++stats_.connections_opened;
    ++stats_.connections_open;
}

void StatsRecorder::ended() {
    std::lock_guard lock(mutex_);
    if (stats_.connections_open > 0) {
        --stats_.connections_open;
    }
}

void StatsRecorder::refused() {
    std::lock_guard lock(mutex_);
    ++stats_.connections_refused;
}

void StatsRecorder::oversize() {
    std::lock_guard lock(mutex_);
    ++stats_.oversize_frames;
}

Stats StatsRecorder::snapshot() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void StatsRecorder::reset() {
    std::lock_guard lock(mutex_);
    auto open = stats_.connections_open;
    stats_ = Stats{};
    stats_.connections_open = open;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[40];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buffer, static_cast<int>(ms % 1000));
    return out;
}

std::string rfc3339_seconds(std::chrono::system_clock::time_point t) {
    std::time_t seconds = std::chrono::system_clock::to_time_t(t);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[40];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buffer;
}

}  // namespace olympus::emulator
