// Parses durations given on the command line or in configuration: "250ms", "20s", "5m", "8h".
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace olympus::cli {

/// A non-negative duration written as a number with a unit (ms, s, m, h; a bare number is
/// seconds). nullopt for anything else, including negatives and values past 30 days.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace olympus::cli
