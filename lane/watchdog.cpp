// systemd notification and the progress-gated watchdog; see watchdog.hpp.
#include "olympus/lane/watchdog.hpp"

#include <systemd/sd-daemon.h>

#include "olympus/log.hpp"

namespace olympus::lane {

Watchdog::~Watchdog() {
    stop();
}

void Watchdog::add_check(std::string name, Progress progress) {
    checks_.push_back(Check{std::move(name), std::move(progress), 0, false});
}

std::chrono::microseconds Watchdog::recommended_period() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0) {
        return std::chrono::microseconds::zero();
    }
    return std::chrono::microseconds(usec / 2);
}

std::error_code Watchdog::send(const std::string& message) {
    // sd_notify returns 0 when there is no NOTIFY_SOCKET (not run by systemd): nothing to do.
    const int result = sd_notify(0, message.c_str());
    return result < 0 ? std::error_code(-result, std::system_category()) : std::error_code{};
}

std::error_code Watchdog::notify_ready(const std::string& status) {
    return send("READY=1\nSTATUS=" + status);
}

std::error_code Watchdog::notify_status(const std::string& status) {
    return send("STATUS=" + status);
}

std::error_code Watchdog::notify_stopping(const std::string& status) {
    return send("STOPPING=1\nSTATUS=" + status);
}

Watchdog::Poll Watchdog::poll() {
    // A check stalls when its counter has not moved since the previous poll.
    Poll result;
    for (Check& check : checks_) {
        const std::uint64_t now = check.progress();
        if (check.seen && now == check.last) {
            result.stalled.push_back(check.name);
        }
        check.last = now;
        check.seen = true;
    }

    // Feed only a healthy process; a stalled one tells systemd why, once per stall.
    auto log = olympus::log::get("watchdog");
    if (result.stalled.empty()) {
        result.fed = true;
        if (std::error_code ec = send("WATCHDOG=1")) {
            log->warn("watchdog ping failed error=\"{}\"", ec.message());
        }
        if (was_stalled_) {
            log->info("liveness checks advance again; watchdog fed");
            send("STATUS=running");
        }
        std::lock_guard lock(mutex_);
        ++feeds_;
    } else if (!was_stalled_) {
        std::string names;
        for (const std::string& name : result.stalled) {
            names += (names.empty() ? "" : ",") + name;
        }
        log->error("liveness check stalled checks={}; watchdog not fed", names);
        send("STATUS=stalled: " + names);
    }
    was_stalled_ = !result.stalled.empty();
    return result;
}

void Watchdog::start(std::chrono::milliseconds period) {
    stop();
    {
        std::lock_guard lock(mutex_);
        stopping_ = false;
    }
    thread_ = std::thread([this, period] {
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
            lock.unlock();
            poll();
            lock.lock();
        }
    });
}

void Watchdog::stop() {
    if (!thread_.joinable()) {
        return;
    }
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

std::uint64_t Watchdog::feeds() const {
    std::lock_guard lock(mutex_);
    return feeds_;
}

}  // namespace olympus::lane
