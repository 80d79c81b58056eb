// Registration and text rendering of the lane metrics; see metrics_registry.hpp.
#include "olympus/lane/metrics_registry.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace olympus::lane {
namespace {

bool valid_name(const std::string& name, bool colon_allowed) {
    if (name.empty()) {
        return false;
    }
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                            (colon_allowed && c == ':');
        const bool digit = c >= '0' && c <= '9';
        if (!letter && !(digit && i > 0)) {
            return false;
        }
    }
    return true;
}

// Label values escape backslash, double quote and newline; help text backslash and newline.
std::string escape(const std::string& text, bool quote) {
    std::string out;
    for (const char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_value(double value) {
    if (std::isnan(value)) {
        return "NaN";
    }
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.17g", value);
    return buffer;
}

std::string format_labels(const Labels& labels) {
    if (labels.empty()) {
        return "";
    }
    std::string out = "{";
    for (const auto& [name, value] : labels) {
        out += (out.size() > 1 ? "," : "") + name + "=\"" + escape(value, true) + "\"";
    }
    return out + "}";
}

}  // namespace

void Gauge::add(double delta) noexcept {
    double current = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
    }
}

MetricsRegistry::Series& MetricsRegistry::series(const std::string& name, const std::string& help,
                                                 Type type, const Labels& labels) {
    // Misuse is caught at setup, where it is a programming error.
    if (!valid_name(name, true)) {
        throw std::invalid_argument("bad metric name '" + name + "'");
    }
    for (const auto& label : labels) {
        if (!valid_name(label.first, false) || label.first.rfind("__", 0) == 0) {
            throw std::invalid_argument("bad label name '" + label.first + "' on " + name);
        }
    }

    // One family per name and one series per label set, created on first use.
    Family& family = families_.try_emplace(name, Family{type, help, {}}).first->second;
    if (family.type != type) {
        throw std::invalid_argument("metric " + name + " is registered with another type");
    }
    for (Series& existing : family.series) {
        if (existing.labels == labels) {
            return existing;
        }
    }
    family.series.push_back(Series{labels, nullptr, nullptr, nullptr});
    return family.series.back();
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const Labels& labels) {
    std::lock_guard lock(mutex_);
    Series& s = series(name, help, Type::counter, labels);
    if (!s.counter) {
        s.counter = std::make_unique<Counter>();
    }
    return *s.counter;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const Labels& labels) {
    std::lock_guard lock(mutex_);
    Series& s = series(name, help, Type::gauge, labels);
    if (!s.gauge) {
        s.gauge = std::make_unique<Gauge>();
    }
    return *s.gauge;
}

void MetricsRegistry::gauge_callback(const std::string& name, const std::string& help,
                                     const Labels& labels, std::function<double()> read) {
    std::lock_guard lock(mutex_);
    series(name, help, Type::gauge, labels).read = std::move(read);
}

std::string MetricsRegistry::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [name, family] : families_) {
        out += "# HELP " + name + " " + escape(family.help, false) + "\n";
        out += "# TYPE " + name + (family.type == Type::counter ? " counter\n" : " gauge\n");
        for (const Series& s : family.series) {
            // Counters print as exact integers; gauges as shortest-exact doubles.
            std::string value = "0";
            if (s.read) {
                value = format_value(s.read());
            } else if (s.counter) {
                value = std::to_string(s.counter->value());
            } else if (s.gauge) {
                value = format_value(s.gauge->value());
            }
            out += name + format_labels(s.labels) + " " + value + "\n";
        }
    }
    return out;
}

}  // namespace olympus::lane
