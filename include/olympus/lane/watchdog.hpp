// Supervision by systemd: readiness, status lines and watchdog pings through sd_notify(3). The
// watchdog is fed only while every registered liveness check (a counter some thread advances,
// e.g. the capture worker's frame count or the network thread's heartbeat tick) has moved since
// the previous feed, so a stuck thread gets the service restarted. Runs its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace olympus::lane {

/// Threads: add_check() on the setup thread before start(); start()/stop() on the setup thread;
/// notify_*() on any thread; poll() on the watchdog's own thread (or a test's). The progress
/// callbacks run on the polling thread and must be thread-safe (read an atomic).
///
///   capture worker --frames++--.
///   network thread --ticks++---+--> [watchdog thread: every period, all advanced?]
///                                      yes: WATCHDOG=1    no: STATUS=stalled: <names>
class Watchdog {
public:
    /// Reads a counter that must advance between two polls while its owner is healthy.
    using Progress = std::function<std::uint64_t()>;

    /// What one poll found.
    struct Poll {
        bool fed = false;                  ///< WATCHDOG=1 was sent (or would be, without systemd)
        std::vector<std::string> stalled;  ///< names of checks that did not advance
    };

    Watchdog() = default;
    ~Watchdog();  ///< stops the thread
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    /// Registers a liveness check called `name` ("audio_pipeline", "network").
    void add_check(std::string name, Progress progress);

    /// Half of systemd's WatchdogSec for this process (the recommended ping period), or zero when
    /// the service has no watchdog (WATCHDOG_USEC unset, or meant for another process).
    static std::chrono::microseconds recommended_period();

    /// READY=1 with a status line. Errors only for a broken NOTIFY_SOCKET; without systemd
    /// (no NOTIFY_SOCKET) these succeed and do nothing.
    std::error_code notify_ready(const std::string& status);
    /// STATUS=<status>, shown by `systemctl status`.
    std::error_code notify_status(const std::string& status);
    /// STOPPING=1 at the start of a clean shutdown.
    std::error_code notify_stopping(const std::string& status);

    /// Compares every check with its value at the previous poll and sends WATCHDOG=1 only when
    /// all advanced. The first poll after add_check() counts as progress for that check.
    Poll poll();

    /// Polls every `period` on a new thread until stop(). Use recommended_period() in service.
    void start(std::chrono::milliseconds period);
    /// Joins the polling thread. Idempotent.
    void stop();

    /// Feeds sent so far. Any thread.
    std::uint64_t feeds() const;

private:
    struct Check {
        std::string name;
        Progress progress;
        std::uint64_t last = 0;
        bool seen = false;
    };

    std::error_code send(const std::string& message);

    // Setup thread before start(), then the polling thread only.
    std::vector<Check> checks_;
    bool was_stalled_ = false;

    // Guards the stop flag and the feed count; the condition wakes the thread on stop().
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::uint64_t feeds_ = 0;
    std::thread thread_;
};

}  // namespace olympus::lane
