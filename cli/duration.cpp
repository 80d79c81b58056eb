// Duration parsing for flags; see duration.hpp.
#include "duration.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

namespace olympus::cli {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
        ++digits;
    }
    if (digits == 0 || digits > 12) {
        return std::nullopt;
    }
    std::string number(text.substr(0, digits));
    char* end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(value) || value < 0) {
        return std::nullopt;
    }
    auto unit = text.substr(digits);
    double ms_per_unit = 0;
    if (unit.empty() || unit == "s") {
        ms_per_unit = 1000;
    } else if (unit == "ms") {
        ms_per_unit = 1;
    } else if (unit == "m" || unit == "min") {
        ms_per_unit = 60'000;
    } else if (unit == "h") {
        ms_per_unit = 3'600'000;
    } else {
        return std::nullopt;
    }
    double ms = value * ms_per_unit;
    if (ms > 30.0 * 24 * 3'600'000) {
        return std::nullopt;
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

}  // namespace olympus::cli
