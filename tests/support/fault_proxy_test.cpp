// Each fault of the proxy, observed from outside: a blocking TCP client on one side and an
// echoing TCP target on the other, measuring delay, throughput, bytes that arrive and how each
// socket ends. Loopback only; test thread plus the target's threads.
#include "support/fault_proxy.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_env.hpp"

namespace olympus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A TCP target on 127.0.0.1 that echoes every byte back (or only counts them) and records
// how each connection ended.
class EchoTarget {
public:
    explicit EchoTarget(bool echo = true) : echo_(echo) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::listen(fd_, 16);
        socklen_t len = sizeof addr;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~EchoTarget() {
        stopping_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        acceptor_.join();
        std::lock_guard lock(mutex_);
        for (int fd : peers_) {
            ::shutdown(fd, SHUT_RDWR);
        }
        for (auto& t : workers_) {
            t.join();
        }
        for (int fd : peers_) {
            ::close(fd);
        }
    }

    std::uint16_t port() const { return port_; }
    std::uint64_t received() const { return received_.load(); }
    std::uint64_t reads() const { return reads_.load(); }
    int eofs() const { return eofs_.load(); }
    int resets() const { return resets_.load(); }

private:
    void accept_loop() {
        while (!stopping_) {
            int peer = ::accept(fd_, nullptr, nullptr);
            if (peer < 0) {
                return;
            }
            std::lock_guard lock(mutex_);
            peers_.push_back(peer);
            workers_.emplace_back([this, peer] { serve(peer); });
        }
    }

    void serve(int peer) {
        char buffer[65536];
        while (true) {
            auto n = ::recv(peer, buffer, sizeof buffer, 0);
            if (n == 0) {
                ++eofs_;
                return;
            }
            if (n < 0) {
                if (errno == ECONNRESET) {
                    ++resets_;
                }
                return;
            }
            received_ += static_cast<std::uint64_t>(n);
            ++reads_;
            if (echo_ && ::send(peer, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL) < 0) {
                return;
            }
        }
    }

    const bool echo_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> received_{0}, reads_{0};
    std::atomic<int> eofs_{0}, resets_{0};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<int> peers_;
    std::vector<std::thread> workers_;
};

// A blocking client socket with a receive timeout.
class Peer {
public:
    explicit Peer(std::uint16_t port, std::chrono::milliseconds recv_timeout = 3s) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval tv{static_cast<time_t>(recv_timeout.count() / 1000),
                   static_cast<suseconds_t>((recv_timeout.count() % 1000) * 1000)};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~Peer() { ::close(fd_); }

    bool connected() const { return connected_; }

    bool send_all(const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    // Reads exactly `n` bytes; stops early on EOF, error or timeout (last_errno says which).
    std::string recv_exact(std::size_t n) {
        std::string out;
        char buffer[65536];
        while (out.size() < n) {
            auto got = ::recv(fd_, buffer, std::min(sizeof buffer, n - out.size()), 0);
            if (got <= 0) {
                last_errno_ = got == 0 ? 0 : errno;
                eof_ = got == 0;
                break;
            }
            out.append(buffer, static_cast<std::size_t>(got));
        }
        return out;
    }

    bool eof() const { return eof_; }
    int last_errno() const { return last_errno_; }

private:
    int fd_ = -1;
    bool connected_ = false;
    bool eof_ = false;
    int last_errno_ = 0;
};

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>('a' + (i * 7) % 26);
    }
    return s;
}

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Without faults, 1 MB goes through and back byte for byte.
TEST(FaultProxy, ForwardsBothWaysUnchanged) {
    EchoTarget target;
    FaultProxy proxy("127.0.0.1", target.port());
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    auto data = pattern(1 << 20);
    std::thread writer([&] { peer.send_all(data); });
    auto back = peer.recv_exact(data.size());
    writer.join();
    EXPECT_EQ(back, data);
    // Bytes are counted when their write completes, which may be after the peer read them.
    EXPECT_TRUE(eventually([&] {
        return proxy.stats().bytes_to_server == data.size() &&
               proxy.stats().bytes_to_client == data.size();
    })) << proxy.stats().bytes_to_server
        << " and " << proxy.stats().bytes_to_client;
}

// Latency is added once per direction: 80 ms up and 40 ms down make a round trip of at least
// 120 ms, and not much more.
TEST(FaultProxy, AddsLatencyPerDirection) {
    EchoTarget target;
    FaultProxy proxy("127.0.0.1", target.port());
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    ASSERT_TRUE(peer.send_all("warm"));
    ASSERT_EQ(peer.recv_exact(4), "warm");

    proxy.set_latency(Direction::to_server, 80ms);
    proxy.set_latency(Direction::to_client, 40ms);
    auto start = Clock::now();
    ASSERT_TRUE(peer.send_all("ping"));
    ASSERT_EQ(peer.recv_exact(4), "ping");
    auto rtt = ms_since(start);
    EXPECT_GE(rtt, 120.0);
    EXPECT_LT(rtt, 400.0);
}

// Jitter spreads the delays but never reorders: 100 numbered writes come back in order, and
// the round trips differ by more than a few milliseconds.
TEST(FaultProxy, JitterKeepsOrder) {
    EchoTarget target;
    FaultProxy proxy("127.0.0.1", target.port());
    proxy.set_latency(Direction::to_server, 5ms, 30ms);
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    std::string expected;
    std::vector<double> rtts;
    for (int i = 0; i < 40; ++i) {
        char record[8];
        std::snprintf(record, sizeof record, "%07d", i);
        auto start = Clock::now();
        ASSERT_TRUE(peer.send_all(std::string(record, 7)));
        ASSERT_EQ(peer.recv_exact(7), std::string(record, 7));
        rtts.push_back(ms_since(start));
    }
    auto [lo, hi] = std::minmax_element(rtts.begin(), rtts.end());
    EXPECT_GE(*lo, 5.0);
    EXPECT_GT(*hi - *lo, 10.0) << "jitter of 30 ms should spread 40 round trips";

    // Many writes in flight at once still arrive in the order sent.
    std::string burst;
    for (int i = 0; i < 200; ++i) {
        char record[8];
        std::snprintf(record, sizeof record, "%07d", i);
        burst += std::string(record, 7);
        ASSERT_TRUE(peer.send_all(std::string(record, 7)));
    }
    EXPECT_EQ(peer.recv_exact(burst.size()), burst);
}

// A 200 KB/s cap makes 100 KB take about half a second instead of a millisecond.
TEST(FaultProxy, CapsBandwidth) {
    EchoTarget target;
    FaultProxy proxy("127.0.0.1", target.port());
    proxy.set_bandwidth(Direction::to_client, 200'000);
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    auto data = pattern(100'000);
    auto start = Clock::now();
    std::thread writer([&] { peer.send_all(data); });
    auto back = peer.recv_exact(data.size());
    writer.join();
    auto elapsed = ms_since(start);
    EXPECT_EQ(back, data);
    EXPECT_GE(elapsed, 400.0);
    EXPECT_LT(elapsed, 1500.0);
    EXPECT_EQ(target.received(), data.size()) << "only the return direction is capped";
}

// A stall takes bytes in but forwards none, holds at most its cap, and when cleared forwards
// every byte it held, in order.
TEST(FaultProxy, StallBuffersBoundedThenReleases) {
    EchoTarget target(false);
    const std::size_t cap = 256 * 1024;
    FaultProxy proxy("127.0.0.1", target.port(), cap);
    proxy.set_stalled(true);
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());

    // 4 MB against a 256 KB cap: the proxy fills up, then TCP back-pressure blocks the writer.
    auto data = pattern(4 << 20);
    std::thread writer([&] { peer.send_all(data); });
    ASSERT_TRUE(eventually([&] { return proxy.buffered_bytes() >= cap; }));
    EXPECT_EQ(target.received(), 0u);
    EXPECT_LE(proxy.stats().peak_buffered, cap);

    proxy.set_stalled(false);
    ASSERT_TRUE(eventually([&] { return target.received() == data.size(); }, 10s));
    writer.join();
    EXPECT_LE(proxy.stats().peak_buffered, cap);
    EXPECT_EQ(proxy.buffered_bytes(), 0u);
}

// reset_all() tears the connection down with a reset on both sides.
TEST(FaultProxy, ResetReachesBothSides) {
    EchoTarget target;
    FaultProxy proxy("127.0.0.1", target.port());
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    ASSERT_TRUE(peer.send_all("hello"));
    ASSERT_EQ(peer.recv_exact(5), "hello");

    proxy.reset_all();
    EXPECT_EQ(peer.recv_exact(1), "");
    EXPECT_EQ(peer.last_errno(), ECONNRESET);
    EXPECT_TRUE(eventually([&] { return target.resets() == 1; }));
    EXPECT_EQ(proxy.stats().resets, 1u);
}

// A cut connection stays open and silent: what the client sends never arrives, nothing comes
// back, and neither side sees an end. A new connection works.
TEST(FaultProxy, CutIsSilentAndHalfOpen) {
    EchoTarget target;
    FaultProxy proxy("127.0.0.1", target.port());
    Peer peer(proxy.port(), 300ms);
    ASSERT_TRUE(peer.connected());
    ASSERT_TRUE(peer.send_all("one"));
    ASSERT_EQ(peer.recv_exact(3), "one");

    proxy.cut_all();
    ASSERT_TRUE(peer.send_all("two"));
    EXPECT_EQ(peer.recv_exact(3), "");
    EXPECT_FALSE(peer.eof());
    EXPECT_EQ(peer.last_errno(), EAGAIN);
    EXPECT_EQ(target.received(), 3u);
    EXPECT_EQ(target.eofs() + target.resets(), 0);
    EXPECT_EQ(proxy.stats().open, 1u);

    Peer fresh(proxy.port());
    ASSERT_TRUE(fresh.send_all("three"));
    EXPECT_EQ(fresh.recv_exact(5), "three");
}

// Split mode forwards one byte per write, and the bytes still arrive intact.
TEST(FaultProxy, SplitsIntoSingleByteSegments) {
    EchoTarget target;
    FaultProxy proxy("127.0.0.1", target.port());
    proxy.set_split_bytes(true);
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    auto data = pattern(2000);
    ASSERT_TRUE(peer.send_all(data));
    EXPECT_EQ(peer.recv_exact(data.size()), data);
    // Likewise a write, counted when it completes.
    EXPECT_TRUE(eventually([&] {
        return proxy.stats().writes_to_server == data.size() &&
               proxy.stats().writes_to_client == data.size();
    })) << proxy.stats().writes_to_server
        << " and " << proxy.stats().writes_to_client;
    EXPECT_GT(target.reads(), 1u) << "the target should see the bytes in pieces";
}

// With a limit of 1000 bytes, exactly 1000 bytes are forwarded, then both sides see an end.
TEST(FaultProxy, ClosesAfterByteLimit) {
    EchoTarget target(false);
    FaultProxy proxy("127.0.0.1", target.port());
    proxy.set_close_after_bytes(1000);
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    peer.send_all(pattern(5000));  // may fail part-way once the proxy closes
    EXPECT_EQ(peer.recv_exact(1), "");
    EXPECT_TRUE(peer.eof() || peer.last_errno() == ECONNRESET);
    ASSERT_TRUE(eventually([&] { return target.eofs() + target.resets() == 1; }));
    EXPECT_EQ(target.received(), 1000u);
    EXPECT_EQ(proxy.stats().closed_after_limit, 1u);
}

// A target that refuses leaves the client with a closed connection, counted.
TEST(FaultProxy, TargetRefusalClosesClient) {
    std::uint16_t dead_port = 0;
    {
        EchoTarget gone;
        dead_port = gone.port();
    }
    FaultProxy proxy("127.0.0.1", dead_port);
    Peer peer(proxy.port());
    ASSERT_TRUE(peer.connected());
    EXPECT_EQ(peer.recv_exact(1), "");
    EXPECT_TRUE(peer.eof() || peer.last_errno() == ECONNRESET);
    EXPECT_EQ(proxy.stats().upstream_failures, 1u);
}

}  // namespace
}  // namespace olympus::test
