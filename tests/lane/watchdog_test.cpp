// Tests of the systemd watchdog: the test plays systemd's part by listening on the unix datagram
// socket named in NOTIFY_SOCKET and reading what the service sends.
#include "olympus/lane/watchdog.hpp"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/test_env.hpp"

namespace olympus::lane {
namespace {

// A bound notification socket and NOTIFY_SOCKET pointing at it, for the test's lifetime.
class FakeSystemd {
public:
    FakeSystemd() : dir_(olympus::test::make_temp_dir("olympus-notify")) {
        const std::string path = dir_ + "/notify";
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        path.copy(address.sun_path, sizeof address.sun_path - 1);
        EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        setenv("NOTIFY_SOCKET", path.c_str(), 1);
    }
    ~FakeSystemd() {
        unsetenv("NOTIFY_SOCKET");
        close(fd_);
        std::filesystem::remove_all(dir_);
    }

    // The next message, or "" when none arrives within `timeout`.
    std::string receive(std::chrono::milliseconds timeout = std::chrono::milliseconds(200)) {
        timeval tv{0, static_cast<suseconds_t>(timeout.count() * 1000)};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buffer[4096];
        const ssize_t got = recv(fd_, buffer, sizeof buffer, 0);
        return got > 0 ? std::string(buffer, static_cast<std::size_t>(got)) : "";
    }

    // Every message already queued.
    std::vector<std::string> drain() {
        std::vector<std::string> out;
        for (std::string m = receive(std::chrono::milliseconds(1)); !m.empty();
             m = receive(std::chrono::milliseconds(1))) {
            out.push_back(m);
        }
        return out;
    }

private:
    std::string dir_;
    int fd_ = -1;
};

int count(const std::vector<std::string>& messages, const std::string& text) {
    int n = 0;
    for (const std::string& m : messages) {
        n += m == text ? 1 : 0;
    }
    return n;
}

// Readiness and status reach systemd in its KEY=value format.
TEST(Watchdog, NotifiesReadinessAndStatus) {
    FakeSystemd systemd;
    Watchdog watchdog;
    EXPECT_FALSE(watchdog.notify_ready("connected lane=lane-1"));
    EXPECT_EQ(systemd.receive(), "READY=1\nSTATUS=connected lane=lane-1");
    EXPECT_FALSE(watchdog.notify_stopping("shutting down"));
    EXPECT_EQ(systemd.receive(), "STOPPING=1\nSTATUS=shutting down");
}

// Both threads make progress: fed. The network thread stops ticking: not fed, and systemd's
// status names it. It resumes: fed again.
TEST(Watchdog, FeedsOnlyWhileEveryCheckAdvances) {
    FakeSystemd systemd;
    std::uint64_t frames = 0;
    std::uint64_t ticks = 0;
    Watchdog watchdog;
    watchdog.add_check("audio_pipeline", [&] { return frames; });
    watchdog.add_check("network", [&] { return ticks; });

    EXPECT_TRUE(watchdog.poll().fed);
    EXPECT_EQ(systemd.receive(), "WATCHDOG=1");

    frames += 100;
    ticks += 1;
    EXPECT_TRUE(watchdog.poll().fed);
    EXPECT_EQ(systemd.receive(), "WATCHDOG=1");

    frames += 100;  // the network thread is stuck
    const Watchdog::Poll stuck = watchdog.poll();
    EXPECT_FALSE(stuck.fed);
    EXPECT_EQ(stuck.stalled, std::vector<std::string>{"network"});
    EXPECT_EQ(systemd.receive(), "STATUS=stalled: network");
    frames += 100;
    EXPECT_FALSE(watchdog.poll().fed);
    EXPECT_EQ(systemd.receive(), "") << "no ping and no repeated status while stalled";

    frames += 100;
    ticks += 1;
    EXPECT_TRUE(watchdog.poll().fed);
    const std::vector<std::string> resumed = systemd.drain();
    EXPECT_EQ(count(resumed, "WATCHDOG=1"), 1);
    EXPECT_EQ(count(resumed, "STATUS=running"), 1);
}

// On its own thread: pings keep coming while the audio worker runs, and stop within a couple of
// periods once the worker hangs.
TEST(Watchdog, StopsPingingWhenTheAudioThreadHangs) {
    FakeSystemd systemd;
    std::atomic<std::uint64_t> frames{0};
    std::atomic<bool> hang{false};
    std::atomic<bool> quit{false};
    std::thread audio([&] {
        while (!quit) {
            if (!hang) {
                frames.fetch_add(1);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a 1 ms "frame"
        }
    });

    Watchdog watchdog;
    watchdog.add_check("audio_pipeline", [&] { return frames.load(); });
    watchdog.start(std::chrono::milliseconds(20));
    EXPECT_TRUE(olympus::test::eventually([&] { return watchdog.feeds() >= 5; }));
    EXPECT_EQ(systemd.receive(), "WATCHDOG=1");

    hang = true;
    EXPECT_TRUE(olympus::test::eventually([&] {
        for (const std::string& m : systemd.drain()) {
            if (m == "STATUS=stalled: audio_pipeline") {
                return true;
            }
        }
        return false;
    }));
    const std::uint64_t feeds = watchdog.feeds();
    EXPECT_EQ(systemd.receive(std::chrono::milliseconds(150)), "") << "fed while stuck";
    EXPECT_EQ(watchdog.feeds(), feeds);

    watchdog.stop();
    quit = true;
    audio.join();
}

// Without systemd (no NOTIFY_SOCKET) nothing fails, and there is no watchdog period.
TEST(Watchdog, IsQuietOutsideSystemd) {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    Watchdog watchdog;
    EXPECT_FALSE(watchdog.notify_ready("ready"));
    EXPECT_TRUE(watchdog.poll().fed);
    EXPECT_EQ(Watchdog::recommended_period().count(), 0);

    // WATCHDOG_USEC meant for this process gives half of it as the period.
    setenv("WATCHDOG_USEC", "20000000", 1);
    setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
    EXPECT_EQ(Watchdog::recommended_period(), std::chrono::seconds(10));
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

}  // namespace
}  // namespace olympus::lane
