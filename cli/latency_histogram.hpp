// A fixed-size latency histogram for per-frame measurements in load runs: 10 us buckets up to
// 1 ms, 1 ms buckets up to 1 s. Recording never allocates. One thread records; merging and
// reading happen once the recorder is quiet.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

namespace olympus::cli {

class LatencyHistogram {
public:
    void record(std::int64_t us) {
        us = std::max<std::int64_t>(us, 0);
        auto bucket = us < 1000 ? us / 10 : kFine + std::min<std::int64_t>(us / 1000, 999) - 1;
        ++counts_[static_cast<std::size_t>(bucket)];
        ++total_;
        max_us_ = std::max(max_us_, us);
    }

    void merge(const LatencyHistogram& other) {
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            counts_[i] += other.counts_[i];
        }
        total_ += other.total_;
        max_us_ = std::max(max_us_, other.max_us_);
    }

    std::uint64_t count() const { return total_; }
    double max_us() const { return static_cast<double>(max_us_); }

    /// The upper edge of the bucket holding the q-th quantile (q in [0, 1]), microseconds;
    /// 0 when empty. Never below the true value, at most one bucket above it.
    double quantile_us(double q) const {
        if (total_ == 0) {
            return 0;
        }
        auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) {
                double edge = i < kFine ? (static_cast<double>(i) + 1) * 10
                                        : (static_cast<double>(i - kFine) + 2) * 1000;
                return std::min(edge, max_us());
            }
        }
        return max_us();
    }

private:
    static constexpr std::size_t kFine = 100;  // 10 us buckets below 1 ms
    std::array<std::uint32_t, kFine + 999> counts_{};
    std::uint64_t total_ = 0;
    std::int64_t max_us_ = 0;
};

}  // namespace olympus::cli
