// The voice soak: runs the real CLI (`olympus-voice replay --loop`) as a child process, streaming
// a recorded order at real-time pace session after session against the emulator through the
// fault proxy, for a set time, and injects a random fault a few seconds after each new link
// (seeded, so a run repeats), each one short enough for the outage to fit the 2 s resume buffer.
// It samples the child's RSS and open descriptors every second, counts reconnects and resumes,
// and compares each session's frames, one by one, with what the emulator took in: lost,
// duplicated and reordered, all exact, and lost against what the CLI counted as dropped.
//
//   voice_soak <olympus-voice> [--seconds N] [--seed S] [--assert]
//
// With --assert it exits 1 unless memory and descriptors stay flat, nothing was lost,
// duplicated or reordered, and every session ended cleanly. Main thread plus a reader thread
// for the child's stdout and the proxy's and emulator's io threads.
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "olympus/emulator/emulator.hpp"
#include "olympus/voice_session.hpp"

#include "soak_support.hpp"
#include "support/fault_proxy.hpp"
#include "support/test_env.hpp"
#include "voice/frame_audit.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using namespace olympus::soak;
using olympus::test::FrameAudit;

// The JSON stats lines the CLI prints, one per session, in order.
class SessionLines {
public:
    void read_from(int fd) {
        std::string pending;
        char buffer[4096];
        while (true) {
            auto n = read(fd, buffer, sizeof buffer);
            if (n <= 0) {
                return;
            }
            pending.append(buffer, static_cast<std::size_t>(n));
            for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
                auto line = nlohmann::json::parse(pending.substr(0, nl), nullptr, false);
                pending.erase(0, nl + 1);
                if (line.is_object() && line.contains("session_id")) {
                    std::lock_guard lock(mutex_);
                    lines_.push_back(line);
                }
            }
        }
    }
    std::vector<nlohmann::json> lines() {
        std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    std::mutex mutex_;
    std::vector<nlohmann::json> lines_;
};

// Totals over every session audited so far.
struct Totals {
    std::size_t sessions = 0, failed = 0, missing_records = 0;
    std::uint64_t produced = 0, received = 0, lost = 0, duplicated = 0, reordered = 0, foreign = 0,
                  counted_dropped = 0, resumes = 0, link_drops = 0, reply_sent = 0,
                  reply_received = 0;
    bool distinct = true;
    std::string detail;
};

// Audits one session: the frames the CLI captured (a prefix of the order's) against the
// emulator's record of that session.
void audit_session(const nlohmann::json& line, const olympus::emulator::Emulator& emu,
                   const std::vector<std::uint64_t>& order, bool last, Totals& totals) {
    ++totals.sessions;
    auto captured = line.value("frames_captured", std::uint64_t{0});
    auto error = line.value("error", std::string());
    if (!error.empty() && !last) {
        ++totals.failed;
        totals.detail += "session " + line.value("session_id", "") + " failed: " + error + "; ";
    }
    auto record = emu.voice_session(line.value("session_id", ""));
    if (!record) {
        ++totals.missing_records;
        return;
    }
    std::vector<std::uint64_t> produced(
        order.begin(), order.begin() + static_cast<std::ptrdiff_t>(
                                           std::min<std::uint64_t>(captured, order.size())));
    FrameAudit audit = olympus::test::audit_frames(produced, record->frame_digests);
    totals.distinct = totals.distinct && audit.distinct;
    totals.produced += audit.expected;
    totals.received += audit.received;
    totals.lost += audit.lost;
    totals.duplicated += audit.duplicated;
    totals.reordered += audit.reordered;
    totals.foreign += audit.foreign;
    totals.counted_dropped +=
        line.value("outage_dropped", std::uint64_t{0}) + line.value("uplink_overflows", 0ull);
    totals.resumes += line.value("resumes", std::uint64_t{0});
    totals.link_drops += line.value("link_drops", std::uint64_t{0});
    totals.reply_sent += record->reply_frames_sent;
    totals.reply_received += line.value("reply_frames_received", std::uint64_t{0});
    if (!audit.exact() && totals.detail.size() < 2000) {
        totals.detail += record->session_id + ": " + audit.detail;
    }
}

// One fault, drawn from the seed. Each keeps the outage inside the 2 s resume buffer.
const char* inject(std::mt19937_64& rng, olympus::emulator::Emulator& emu,
                   olympus::test::FaultProxy& proxy) {
    using olympus::emulator::DropMode;
    switch (std::uniform_int_distribution<int>(0, 4)(rng)) {
        case 0:
            proxy.reset_all();
            return "proxy_reset";
        case 1:
            emu.drop_all_connections(DropMode::abort);
            return "emulator_drop_abort";
        case 2:
            emu.drop_all_connections(DropMode::going_away);
            return "emulator_drop_going_away";
        case 3:
            emu.refuse_next_connections(2);
            emu.drop_all_connections(DropMode::abort);
            return "emulator_refuse_2_then_drop";
        default:
            // Shorter than the dead-link allowance: the link holds, the audio waits in the proxy.
            proxy.set_stalled(true);
            std::this_thread::sleep_for(1s);
            proxy.set_stalled(false);
            return "proxy_stall_1s";
    }
}

}  // namespace

int main(int argc, char** argv) {
    auto args = olympus::soak::parse_args(argc, argv, "voice_soak");
    if (!args) {
        return 2;
    }
    const std::string& cli = args->cli;
    const double seconds = args->seconds;
    const std::uint64_t seed = args->seed;
    const bool assert_clean = args->assert_trends;

    // The order, and the packets every session must deliver of it.
    const auto& order_file = olympus::test::noisy_order_wav();
    olympus::VoiceSessionOptions defaults;  // the CLI's: 48 kHz Opus, 20 ms, 24 kb/s
    auto order = olympus::test::uplink_digests(
        olympus::test::file_frames(order_file, defaults, 0ms), defaults);

    // The emulator (pinging every 5 s, as the embedded one does) behind the proxy.
    olympus::emulator::EmulatorOptions options;
    options.ping_interval = 5s;
    options.max_recorded_seconds = 30;
    options.seed = seed;
    olympus::emulator::Emulator emu(options);
    emu.start();
    olympus::test::FaultProxy proxy("127.0.0.1", emu.port(), 1 << 20, seed);

    // The CLI, one session per loop of the order until the soak ends it.
    auto log_path = "/tmp/olympus-voice-soak-" + std::to_string(getpid()) + ".log";
    auto child = spawn({cli, "--log-level", "warn", "replay", order_file, "--loop", "100000",
                        "--trailing-silence", "0s", "--stats-json", "--url",
                        proxy.ws_url("/stream"), "--token", emu.mint_token("user-soak", 24h)},
                       log_path);
    if (child.pid <= 0) {
        std::fprintf(stderr, "voice_soak: cannot start %s\n", cli.c_str());
        return 2;
    }
    SessionLines lines;
    std::thread reader([&] { lines.read_from(child.out); });

    // Faults 2-6 s after each new link; samples every second; sessions audited as they end.
    std::mt19937_64 rng(seed);
    std::map<std::string, int> injected;
    Totals totals;
    std::vector<Sample> samples;
    auto start = Clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    auto next_sample = start;
    auto next_fault = start + 3s;
    std::uint64_t seen_links = 0;
    std::size_t audited = 0;
    std::printf("%8s %10s %6s %8s %9s\n", "t_s", "rss_kib", "fds", "links", "sessions");
    int status = 0;
    bool exited_early = false;
    while (elapsed() < seconds) {
        // The CLI loops until it is stopped: an exit before then is a failure.
        if (waitpid(child.pid, &status, WNOHANG) == child.pid) {
            exited_early = true;
            break;
        }
        auto now = Clock::now();
        if (now >= next_sample) {
            samples.push_back({elapsed(), rss_kib_of(child.pid), fds_of(child.pid)});
            if (samples.size() % 10 == 1) {
                std::printf("%8.1f %10ld %6ld %8llu %9zu\n", samples.back().t_s,
                            samples.back().rss_kib, samples.back().fds,
                            static_cast<unsigned long long>(proxy.stats().accepted), audited);
                std::fflush(stdout);
            }
            next_sample += 1s;
        }
        auto done = lines.lines();
        for (; audited < done.size(); ++audited) {
            audit_session(done[audited], emu, order, false, totals);
        }
        auto links = proxy.stats().accepted;
        if (links != seen_links) {
            seen_links = links;
            next_fault = now + std::chrono::milliseconds(
                                   std::uniform_int_distribution<int>(2000, 6000)(rng));
        }
        if (now >= next_fault) {
            ++injected[inject(rng, emu, proxy)];
            next_fault = Clock::now() + std::chrono::milliseconds(
                                            std::uniform_int_distribution<int>(2000, 6000)(rng));
        }
        std::this_thread::sleep_for(20ms);
    }

    // Ctrl-C: the CLI ends the session it is in (end_session) and prints its figures.
    auto final_rss = rss_kib_of(child.pid);
    auto final_fds = fds_of(child.pid);
    if (!exited_early) {
        kill(child.pid, SIGINT);
        waitpid(child.pid, &status, 0);
    }
    reader.join();
    close(child.out);
    olympus::test::eventually([&] { return emu.stats().connections_open == 0; }, 5s);
    auto done = lines.lines();
    for (; audited < done.size(); ++audited) {
        audit_session(done[audited], emu, order, !exited_early && audited + 1 == done.size(),
                      totals);
    }

    auto t = trend(samples, seconds);
    std::printf("\nvoice soak: seconds=%.0f seed=%llu faults:", seconds,
                static_cast<unsigned long long>(seed));
    for (const auto& [name, n] : injected) {
        std::printf(" %s=%d", name.c_str(), n);
    }
    std::printf(
        "\nvoice soak: sessions=%zu failed=%zu links=%llu link_drops=%llu resumes=%llu\n"
        "voice soak: frames produced=%llu received=%llu lost=%llu duplicated=%llu "
        "reordered=%llu foreign=%llu counted_dropped=%llu\n"
        "voice soak: reply_frames sent=%llu received=%llu\n",
        totals.sessions, totals.failed, static_cast<unsigned long long>(proxy.stats().accepted),
        static_cast<unsigned long long>(totals.link_drops),
        static_cast<unsigned long long>(totals.resumes),
        static_cast<unsigned long long>(totals.produced),
        static_cast<unsigned long long>(totals.received),
        static_cast<unsigned long long>(totals.lost),
        static_cast<unsigned long long>(totals.duplicated),
        static_cast<unsigned long long>(totals.reordered),
        static_cast<unsigned long long>(totals.foreign),
        static_cast<unsigned long long>(totals.counted_dropped),
        static_cast<unsigned long long>(totals.reply_sent),
        static_cast<unsigned long long>(totals.reply_received));
    std::printf("voice soak: rss_kib early_median=%.0f late_median=%.0f final=%ld growth=%.0f\n",
                t.rss_early, t.rss_late, final_rss, t.rss_late - t.rss_early);
    std::printf("voice soak: fds early_max=%ld late_max=%ld final=%ld\n", t.fds_early, t.fds_late,
                final_fds);
    if (!totals.detail.empty()) {
        std::printf("voice soak: %s\n", totals.detail.c_str());
    }
    std::printf("voice soak: cli log in %s\n", log_path.c_str());

    if (!assert_clean) {
        return 0;
    }
    bool ok = true;
    auto fail = [&](const char* what) {
        std::printf("voice soak: FAIL %s\n", what);
        ok = false;
    };
    if (exited_early) {
        fail("the CLI exited before the soak ended");
    }
    if (!totals.distinct) {
        fail("two frames of the order encode alike: the audit is blind");
    }
    if (totals.lost != 0 || totals.duplicated != 0 || totals.reordered != 0 ||
        totals.foreign != 0) {
        fail("frames lost, duplicated or reordered");
    }
    if (totals.lost != totals.counted_dropped) {
        fail("frames lost differ from those the CLI counted as dropped");
    }
    if (totals.failed != 0 || totals.missing_records != 0 || totals.sessions < 2) {
        fail("a session failed, or the emulator has no record of it");
    }
    if (static_cast<double>(totals.resumes) < seconds / 30) {
        fail("fewer than one resume per 30 s: the faults did not act");
    }
    if (t.rss_late - t.rss_early > 2048) {
        fail("RSS grew by more than 2 MiB between warm-up and the end");
    }
    if (t.fds_late > t.fds_early + 1) {
        fail("open descriptors grew");
    }
    std::printf("voice soak: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
