// The client against an independent server: tests/node/gateway_server.js, written with the `ws`
// package from the protocol document alone. Loopback only; each test bounded to seconds.
#include <future>
#include <set>

#include <gtest/gtest.h>

#include "olympus/client.hpp"

#include "client_fixture.hpp"
#include "node_peer.hpp"

namespace olympus::test {
namespace {

#define OLYMPUS_REQUIRE_NODE()                                                               \
    if (!NodePeer::available()) {                                                            \
        GTEST_SKIP() << "node or tests/node/node_modules missing: run npm ci in tests/node"; \
    }

class NodeAuth : public ::testing::TestWithParam<AuthMode> {};

// Each auth way is accepted by a server that only knows the document, and events flow.
TEST_P(NodeAuth, AuthenticatesAndReceivesEvents) {
    OLYMPUS_REQUIRE_NODE();
    NodePeer peer;
    ASSERT_TRUE(peer.ok());
    Recorder rec;
    Client client(fast_options(peer.url(), "good-token", GetParam()));
    rec.watch(client);
    client.subscribe("orders", {{"location_id", "loc-1"}}, rec.events(), rec.result("sub"));
    client.start();

    ASSERT_TRUE(wait_connected(client));
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= 3; }));
    auto stats = peer.stats();
    const char* way = GetParam() == AuthMode::first_message ? "first_message"
                      : GetParam() == AuthMode::header      ? "header"
                                                            : "query";
    EXPECT_EQ(stats["auth_ways"].value(way, 0), 1);
    EXPECT_EQ(rec.events_seen().front().channel, "orders");
    EXPECT_EQ(rec.events_seen().front().name, "order.created");
}

INSTANTIATE_TEST_SUITE_P(Client, NodeAuth,
                         ::testing::Values(AuthMode::first_message, AuthMode::header,
                                           AuthMode::query));

// The server pings every 30 ms and checks that each pong echoes its timestamp.
TEST(ClientNode, EchoesServerPingTimestamp) {
    OLYMPUS_REQUIRE_NODE();
    NodePeer peer({"--ping-ms", "30", "--pong-timeout-ms", "500"});
    ASSERT_TRUE(peer.ok());
    Client client(fast_options(peer.url(), "good-token"));
    client.start();
    ASSERT_TRUE(wait_connected(client));

    ASSERT_TRUE(eventually([&] { return peer.stats().value("pongs_echoed", 0) >= 5; }));
    EXPECT_EQ(peer.stats().value("pongs_wrong", 0), 0);
    EXPECT_GE(client.stats().pings_answered, 5u);
    EXPECT_EQ(client.stats().reconnects, 0u);
}

// After the server drops every connection, the client re-subscribes under the same handle and
// then sends the requests queued meanwhile, in order.
TEST(ClientNode, ResubscribesAndFlushesQueueAfterDrop) {
    OLYMPUS_REQUIRE_NODE();
    NodePeer peer;
    ASSERT_TRUE(peer.ok());
    Recorder rec;
    auto options = fast_options(peer.url(), "good-token");
    options.connection.reconnect.base = 200ms;  // long enough to queue requests meanwhile
    options.connection.reconnect.cap = 200ms;
    options.connection.reconnect.full_jitter = false;
    Client client(options);
    rec.watch(client);
    auto handle = client.subscribe("orders", nullptr, rec.events(), rec.result("sub"));
    client.start();
    ASSERT_TRUE(wait_connected(client));
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= 2; }));

    ASSERT_TRUE(peer.drop());
    ASSERT_TRUE(eventually([&] { return client.state() != ConnectionState::connected; }));
    for (int i = 0; i < 5; ++i) {
        client.request({{"type", "order.get"}, {"n", i}}, rec.result("req" + std::to_string(i)));
    }
    ASSERT_TRUE(wait_connected(client));
    auto before = rec.event_count();
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= before + 3; }));
    ASSERT_TRUE(eventually([&] { return rec.result_count() >= 6; }));

    auto stats = peer.stats();
    EXPECT_EQ(stats.value("subscribes", 0), 2);
    auto ids = stats["request_ids"];
    ASSERT_EQ(ids.size(), 5u);
    auto results = rec.results();
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(results[static_cast<std::size_t>(i) + 1].first, "req" + std::to_string(i));
        EXPECT_FALSE(results[static_cast<std::size_t>(i) + 1].second);
    }
    EXPECT_TRUE(handle.valid());
    EXPECT_EQ(client.stats().subscriptions, 1u);
}

// A token the server rejects, with a provider that has no other, stops the client for good.
TEST(ClientNode, StopsOnRejectedToken) {
    OLYMPUS_REQUIRE_NODE();
    NodePeer peer;
    ASSERT_TRUE(peer.ok());
    Client client(fast_options(peer.url(), "bad-token"));
    client.start();
    ASSERT_TRUE(eventually([&] { return bool(client.terminal_reason()); }));
    EXPECT_EQ(client.terminal_reason(), errc::invalid_token);
    EXPECT_EQ(client.state(), ConnectionState::disconnected);
    EXPECT_EQ(peer.stats().value("connections", 0), 1);
}

// A server that replays recent events to a new subscription: each event id reaches the
// application once across the reconnect.
TEST(ClientNode, SuppressesDuplicateEventsAcrossReconnect) {
    OLYMPUS_REQUIRE_NODE();
    NodePeer peer({"--replay", "5", "--event-ms", "20"});
    ASSERT_TRUE(peer.ok());
    Recorder rec;
    Client client(fast_options(peer.url(), "good-token"));
    client.subscribe("orders", nullptr, rec.events());
    client.start();
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= 6; }));

    ASSERT_TRUE(peer.drop());
    auto before = rec.event_count();
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= before + 5; }));
    std::set<std::string> ids;
    for (const auto& event : rec.events_seen()) {
        EXPECT_TRUE(ids.insert(event.id).second) << "delivered twice: " << event.id;
    }
    EXPECT_GE(client.stats().duplicate_events, 1u);
}

// Malformed, unexpected and oversize frames are counted and dropped; the link carries on.
TEST(ClientNode, SurvivesBadFrames) {
    OLYMPUS_REQUIRE_NODE();
    NodePeer peer;
    ASSERT_TRUE(peer.ok());
    Client client(fast_options(peer.url(), "good-token"));
    client.start();
    ASSERT_TRUE(wait_connected(client));
    std::promise<std::error_code> done;
    client.request({{"type", "test.bad_frames"}},
                   [&](std::error_code ec, const nlohmann::json&) { done.set_value(ec); });
    auto result = done.get_future();
    ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
    EXPECT_FALSE(result.get());

    auto stats = client.stats();
    EXPECT_EQ(stats.dropped_frames, 1u);
    EXPECT_GE(stats.bad_frames, 6u);
    EXPECT_EQ(client.state(), ConnectionState::connected);
    EXPECT_EQ(stats.reconnects, 0u);
}

}  // namespace
}  // namespace olympus::test
