// Named loggers for each component, and the helpers that keep secrets out of log lines.
// Safe to call from any thread except the real-time audio callback, which never logs.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

namespace olympus::log {

/// Returns the logger for `component` ("client", "emulator", "audio", ...), creating it on first
/// use. All loggers share one stderr sink and the level set by set_level().
std::shared_ptr<spdlog::logger> get(const std::string& component);

/// Sets the level of every logger, present and future: "trace", "debug", "info", "warn",
/// "error" or "off". Throws std::invalid_argument on any other name.
void set_level(std::string_view level);

/// Sends every logger's output to `sink` instead of stderr (tests capture logs this way).
void set_sink(std::shared_ptr<spdlog::sinks::sink> sink);

/// A URL fit for a log line: everything from '?' on is replaced by "?<redacted>", because the
/// query string may carry an access token.
std::string redact_url(std::string_view url);

/// Lets one message through per `interval`, and counts the ones it held back, so that a stream
/// of bad input cannot flood the log. Not thread-safe: keep one per thread.
class RateLimit {
public:
    explicit RateLimit(std::chrono::steady_clock::duration interval) : interval_(interval) {}

    /// True when a message may be logged now; `suppressed` receives how many were held back
    /// since the last one that passed.
    bool allow(std::size_t& suppressed);

private:
    std::chrono::steady_clock::duration interval_;
    std::chrono::steady_clock::time_point last_{};
    std::size_t held_back_ = 0;
    bool first_ = true;
};

}  // namespace olympus::log
