// The gateway soak: runs the real CLI (`olympus-voice subscribe orders`) as a child process
// against the emulator, through the fault proxy, for a set time, and injects a random fault a
// few seconds after each reconnect (seeded, so a run repeats). It samples the child's RSS and
// open descriptors every second, counts reconnects, and at the end compares every event id the
// server put on the wire with the lines the CLI printed: lost and duplicated, both exact.
//
//   gateway_soak <olympus-voice> [--seconds N] [--seed S] [--assert]
//
// With --assert it exits 1 unless memory and descriptors stay flat and nothing was lost or
// duplicated. Main thread plus a reader thread for the child's stdout and the proxy's and
// emulator's io threads. voice_soak.cpp does the same for `olympus-voice replay`.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "olympus/emulator/emulator.hpp"

#include "soak_support.hpp"
#include "support/fault_proxy.hpp"
#include "support/test_env.hpp"
#include "support/wire_events.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using olympus::test::Direction;
using namespace olympus::soak;

// Reads the child's JSON lines and counts each event id.
class Printed {
public:
    void read_from(int fd) {
        std::string pending;
        char buffer[65536];
        while (true) {
            auto n = read(fd, buffer, sizeof buffer);
            if (n <= 0) {
                return;
            }
            pending.append(buffer, static_cast<std::size_t>(n));
            std::size_t start = 0;
            for (auto nl = pending.find('\n'); nl != std::string::npos;
                 nl = pending.find('\n', start)) {
                auto line =
                    nlohmann::json::parse(pending.substr(start, nl - start), nullptr, false);
                start = nl + 1;
                if (line.is_object()) {
                    std::lock_guard lock(mutex_);
                    ++counts_[line.value("id", "")];
                    ++lines_;
                }
            }
            pending.erase(0, start);
        }
    }
    std::map<std::string, int> counts() {
        std::lock_guard lock(mutex_);
        return counts_;
    }
    std::size_t lines() {
        std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    std::mutex mutex_;
    std::map<std::string, int> counts_;
    std::size_t lines_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    auto args = olympus::soak::parse_args(argc, argv, "gateway_soak");
    if (!args) {
        return 2;
    }
    const std::string& cli = args->cli;
    const double seconds = args->seconds;
    const std::uint64_t seed = args->seed;
    const bool assert_flat = args->assert_trends;

    // The emulator replays the last 2000 events on each re-subscribe: the resume buffer. At
    // 10 events/s that covers outages of up to 200 s, above the client's 30 s backoff cap.
    olympus::emulator::EmulatorOptions options;
    options.events_per_second = 10;
    options.replay_recent_events = 2000;
    options.seed = seed;
    olympus::emulator::Emulator emu(options);
    emu.start();
    olympus::test::WireEvents wire;  // before the proxy: its tap writes here until it stops
    olympus::test::FaultProxy proxy("127.0.0.1", emu.port(), 1 << 20, seed);
    proxy.set_tap(Direction::to_client,
                  [&wire](std::uint64_t c, std::string_view bytes) { wire.feed(c, bytes); });

    auto log_path = "/tmp/olympus-soak-" + std::to_string(getpid()) + ".log";
    auto token = emu.mint_token("user-soak", 24h);
    auto child = spawn({cli, "subscribe", "orders", "--param", "location_id=loc-soak", "--url",
                        proxy.ws_url("/v1"), "--token", token},
                       log_path);
    if (child.pid <= 0) {
        std::fprintf(stderr, "gateway_soak: cannot start %s\n", cli.c_str());
        return 2;
    }
    Printed printed;
    std::thread reader([&] { printed.read_from(child.out); });

    // The faults, drawn from the seed: each comes 2-6 s after the link last came back.
    std::mt19937_64 rng(seed);
    const char* names[] = {"proxy_reset", "emulator_drop_abort", "emulator_drop_going_away",
                           "emulator_refuse_2_then_drop", "proxy_stall_1s"};
    std::map<std::string, int> injected;
    auto start = Clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    std::vector<Sample> samples;
    auto next_sample = start;
    auto next_fault = start + 3s;
    std::uint64_t seen_connections = 1;
    std::printf("%8s %10s %6s %12s %10s\n", "t_s", "rss_kib", "fds", "connections", "events");
    while (elapsed() < seconds) {
        auto now = Clock::now();
        if (now >= next_sample) {
            Sample s{elapsed(), rss_kib_of(child.pid), fds_of(child.pid)};
            samples.push_back(s);
            if (samples.size() % 10 == 1) {
                std::printf("%8.1f %10ld %6ld %12llu %10zu\n", s.t_s, s.rss_kib, s.fds,
                            static_cast<unsigned long long>(proxy.stats().accepted),
                            printed.lines());
                std::fflush(stdout);
            }
            next_sample += 1s;
        }

        // A new link resets the fault clock.
        auto connections = proxy.stats().accepted;
        if (connections != seen_connections) {
            seen_connections = connections;
            next_fault = now + std::chrono::milliseconds(
                                   std::uniform_int_distribution<int>(2000, 6000)(rng));
        }
        if (now >= next_fault) {
            auto which = std::uniform_int_distribution<int>(0, 4)(rng);
            ++injected[names[which]];
            switch (which) {
                case 0:
                    proxy.reset_all();
                    break;
                case 1:
                    emu.drop_all_connections(olympus::emulator::DropMode::abort);
                    break;
                case 2:
                    emu.drop_all_connections(olympus::emulator::DropMode::going_away);
                    break;
                case 3:
                    emu.refuse_next_connections(2);
                    emu.drop_all_connections(olympus::emulator::DropMode::abort);
                    break;
                default:
                    // Shorter than the 45 s dead-link allowance: the link must survive it.
                    proxy.set_stalled(true);
                    std::this_thread::sleep_for(1s);
                    proxy.set_stalled(false);
                    break;
            }
            next_fault = now + 1h;  // re-armed by the next reconnect
            if (which == 4) {
                next_fault =
                    Clock::now() +
                    std::chrono::milliseconds(std::uniform_int_distribution<int>(2000, 6000)(rng));
            }
        }
        std::this_thread::sleep_for(20ms);
    }

    // Quiet the server, then let the CLI print what is still in flight (the client may be in
    // a backoff wait: the replay after its reconnect brings the rest).
    emu.set_silent(true);
    auto missing_ids = [&] {
        auto counts = printed.counts();
        auto ids = wire.ids();
        std::size_t missing = 0;
        for (const auto& id : ids["orders"]) {
            missing += counts.count(id) == 0 ? 1 : 0;
        }
        return missing;
    };
    olympus::test::eventually([&] { return missing_ids() == 0 && proxy.buffered_bytes() == 0; },
                              5s);
    if (missing_ids() != 0) {
        // Still in backoff: let it reconnect and receive the replay.
        emu.set_silent(false);
        olympus::test::eventually([&] { return missing_ids() == 0; }, 40s);
    }
    auto final_rss = rss_kib_of(child.pid);
    auto final_fds = fds_of(child.pid);
    kill(child.pid, SIGTERM);
    int status = 0;
    waitpid(child.pid, &status, 0);
    reader.join();
    close(child.out);

    // Exact counts: unique ids the server sent; ids printed never, or more than once.
    auto counts = printed.counts();
    auto all_ids = wire.ids();
    const auto& on_wire = all_ids["orders"];
    std::set<std::string> unique(on_wire.begin(), on_wire.end());
    std::size_t lost = 0, duplicated = 0, printed_unique = 0;
    for (const auto& id : unique) {
        lost += counts.count(id) == 0 ? 1 : 0;
    }
    for (const auto& [id, n] : counts) {
        duplicated += n > 1 ? static_cast<std::size_t>(n - 1) : 0;
        printed_unique += 1;
    }

    // Trends: medians of the windows after warm-up (20-40 %) and at the end (80-100 %).
    auto t = trend(samples, seconds);
    auto reconnects = proxy.stats().accepted - 1;

    std::printf("\nsoak: seconds=%.0f seed=%llu faults:", seconds,
                static_cast<unsigned long long>(seed));
    for (const auto& [name, n] : injected) {
        std::printf(" %s=%d", name.c_str(), n);
    }
    std::printf(
        "\nsoak: reconnects=%llu wire_event_frames=%zu unique_events=%zu printed=%zu "
        "printed_unique=%zu lost=%zu duplicated=%zu\n",
        static_cast<unsigned long long>(reconnects), on_wire.size(), unique.size(), printed.lines(),
        printed_unique, lost, duplicated);
    std::printf("soak: rss_kib early_median=%.0f late_median=%.0f final=%ld growth=%.0f\n",
                t.rss_early, t.rss_late, final_rss, t.rss_late - t.rss_early);
    std::printf("soak: fds early_max=%ld late_max=%ld final=%ld\n", t.fds_early, t.fds_late,
                final_fds);
    std::printf("soak: cli log in %s\n", log_path.c_str());

    if (!assert_flat) {
        return 0;
    }
    bool ok = true;
    auto fail = [&](const char* what) {
        std::printf("soak: FAIL %s\n", what);
        ok = false;
    };
    if (lost != 0) {
        fail("events lost");
    }
    if (duplicated != 0) {
        fail("events printed twice");
    }
    if (static_cast<double>(reconnects) < seconds / 30) {
        fail("fewer than one reconnect per 30 s: the faults did not act");
    }
    if (t.rss_late - t.rss_early > 2048) {
        fail("RSS grew by more than 2 MiB between warm-up and the end");
    }
    if (t.fds_late > t.fds_early + 1) {
        fail("open descriptors grew");
    }
    std::printf("soak: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
