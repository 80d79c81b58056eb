// Counters and gauges of the lane agent, rendered in the Prometheus text exposition format
// (version 0.0.4). Metrics are registered at setup; the audio and network threads then only bump
// atomics through the references they were handed; the HTTP thread renders.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace olympus::lane {

/// Label name to value, e.g. {{"direction", "capture"}}. Ordered, so rendering is stable.
using Labels = std::map<std::string, std::string>;

/// A monotonically increasing count. inc() is wait-free and safe on the audio callback.
class Counter {
public:
    void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down. set() is wait-free; add() is lock-free (a CAS loop). Both are
/// safe on the audio callback.
class Gauge {
public:
    void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
    void add(double delta) noexcept;
    double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0.0};
};

/// Threads: counter()/gauge()/gauge_callback() on any thread except the audio callback (they
/// lock and allocate); the returned references stay valid for the registry's lifetime and may be
/// used from any thread; render() on any thread (the HTTP thread), concurrently with updates.
class MetricsRegistry {
public:
    /// The counter `name` with `labels`, created on first use. Names follow Prometheus rules
    /// ([a-zA-Z_:][a-zA-Z0-9_:]*, counters end in "_total"); a bad name, or a name already
    /// registered as another type, throws std::invalid_argument (a programming error).
    Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});

    /// The gauge `name` with `labels`, created on first use. Same rules as counter().
    Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});

    /// A gauge whose value is read by calling `read` at render time, for values another object
    /// already keeps (e.g. the echo canceller's ERLE). `read` runs on the rendering thread and
    /// must be thread-safe; NaN renders as "NaN". Replaces an earlier callback of the same series.
    void gauge_callback(const std::string& name, const std::string& help, const Labels& labels,
                        std::function<double()> read);

    /// Every metric in the text exposition format: "# HELP", "# TYPE", then one line per series.
    std::string render() const;

private:
    enum class Type { counter, gauge };

    struct Series {
        Labels labels;
        std::unique_ptr<Counter> counter;
        std::unique_ptr<Gauge> gauge;
        std::function<double()> read;
    };

    struct Family {
        Type type;
        std::string help;
        std::vector<Series> series;
    };

    Series& series(const std::string& name, const std::string& help, Type type,
                   const Labels& labels);

    // Guards the families' structure (not the values, which are atomics). Never taken on the
    // audio path.
    mutable std::mutex mutex_;
    std::map<std::string, Family> families_;
};

}  // namespace olympus::lane
