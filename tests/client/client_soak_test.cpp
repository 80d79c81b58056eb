// Reconnect soak: 200 forced drops in a row against the independent Node.js server (a separate
// process, so every descriptor and thread counted here is the client's own).
#include <dirent.h>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "olympus/client.hpp"

#include "client_fixture.hpp"
#include "node_peer.hpp"

namespace olympus::test {
namespace {

std::size_t entries_in(const char* dir) {
    std::size_t n = 0;
    if (DIR* d = opendir(dir)) {
        while (readdir(d) != nullptr) {
            ++n;
        }
        closedir(d);
    }
    return n;
}

long rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        if (key == "VmRSS:") {
            long value = 0;
            status >> value;
            return value;
        }
        status.ignore(1 << 12, '\n');
    }
    return 0;
}

// Reconnects once per drop; returns false when the client did not come back in time.
bool drop_and_reconnect(NodePeer& peer, Client& client) {
    auto connects = client.stats().connects;
    if (!peer.drop()) {
        return false;
    }
    return eventually([&] {
        return client.stats().connects > connects && client.state() == ConnectionState::connected;
    });
}

// 200 forced reconnects leave no sockets, threads or memory behind, and the subscription lives.
TEST(ClientSoak, TwoHundredReconnectsLeakNothing) {
    if (!NodePeer::available()) {
        GTEST_SKIP() << "node or tests/node/node_modules missing: run npm ci in tests/node";
    }
    NodePeer peer({"--event-ms", "20"});
    ASSERT_TRUE(peer.ok());
    Recorder rec;
    auto options = fast_options(peer.url(), "good-token");
    options.connection.reconnect.base = 1ms;
    options.connection.reconnect.cap = 4ms;
    Client client(options);
    client.subscribe("orders", nullptr, rec.events());
    client.start();
    ASSERT_TRUE(wait_connected(client));

    // Warm up so allocator pools and lazily created state exist before the baseline.
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(drop_and_reconnect(peer, client)) << "warm-up drop " << i;
    }
    auto fds = entries_in("/proc/self/fd");
    auto threads = entries_in("/proc/self/task");
    [[maybe_unused]] auto rss = rss_kib();

    for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(drop_and_reconnect(peer, client)) << "drop " << i;
    }

    auto before = rec.event_count();
    ASSERT_TRUE(eventually([&] { return rec.event_count() > before; }));
    EXPECT_EQ(entries_in("/proc/self/fd"), fds);
    EXPECT_EQ(entries_in("/proc/self/task"), threads);
#if defined(__has_feature)
#if __has_feature(address_sanitizer)  // clang's spelling of __SANITIZE_ADDRESS__
#define OLYMPUS_SOAK_UNDER_ASAN 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(OLYMPUS_SOAK_UNDER_ASAN)
    // ASan's quarantine holds freed memory, so RSS is only meaningful without it; LSan checks
    // for leaks in that build instead.
    EXPECT_LT(rss_kib() - rss, 8 * 1024) << "RSS grew from " << rss << " KiB";
#endif
    EXPECT_EQ(client.stats().subscriptions, 1u);
    EXPECT_GE(client.stats().reconnects, 220u);
}

}  // namespace
}  // namespace olympus::test
