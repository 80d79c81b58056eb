// Unit tests of the client's parts that need no server: backoff arithmetic, the duplicate
// window, option validation, token providers, timestamps and local limits.
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "olympus/client.hpp"
#include "olympus/error.hpp"
#include "olympus/reconnect_policy.hpp"
#include "olympus/token_provider.hpp"

#include "client_fixture.hpp"
#include "recent_ids.hpp"

namespace olympus::test {
namespace {

// The ceiling doubles from the base and stops at the cap; attempt 100 does not overflow.
TEST(ReconnectPolicy, CeilingDoublesUpToCap) {
    ReconnectPolicy policy;
    EXPECT_EQ(policy.ceiling(0), 1000ms);
    EXPECT_EQ(policy.ceiling(1), 2000ms);
    EXPECT_EQ(policy.ceiling(4), 16000ms);
    EXPECT_EQ(policy.ceiling(5), 30000ms);
    EXPECT_EQ(policy.ceiling(100), 30000ms);
}

// Full jitter spreads delays over the whole [0, ceiling] range, and a seed repeats them.
TEST(ReconnectPolicy, FullJitterSpansRangeAndRepeatsWithSeed) {
    ReconnectPolicy policy;
    std::mt19937_64 a(7);
    std::mt19937_64 b(7);
    std::chrono::milliseconds low{30000};
    std::chrono::milliseconds high{0};
    for (int i = 0; i < 2000; ++i) {
        auto d = policy.delay(5, a);
        EXPECT_EQ(d, policy.delay(5, b));
        ASSERT_GE(d.count(), 0);
        ASSERT_LE(d, 30000ms);
        low = std::min(low, d);
        high = std::max(high, d);
    }
    EXPECT_LT(low, 1000ms);
    EXPECT_GT(high, 29000ms);
}

// Ids beyond the window's capacity are forgotten oldest first.
TEST(RecentIds, ForgetsOldestBeyondCapacity) {
    detail::RecentIds ids(3);
    EXPECT_TRUE(ids.insert("a"));
    EXPECT_FALSE(ids.insert("a"));
    EXPECT_TRUE(ids.insert("b"));
    EXPECT_TRUE(ids.insert("c"));
    EXPECT_TRUE(ids.insert("d"));
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_TRUE(ids.insert("a"));  // forgotten, so new again
    EXPECT_FALSE(ids.insert("d"));
}

// Bad options are refused at construction with a message naming the problem.
TEST(ClientOptions, RefusesInvalidOptions) {
    auto expect_refused = [](ClientOptions options, const std::string& needle) {
        try {
            Client client(std::move(options));
            ADD_FAILURE() << "accepted options that should fail on '" << needle << "'";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    auto good = fast_options("ws://127.0.0.1:1/v1", "t");
    auto bad_url = good;
    bad_url.connection.url = "http://example.com/v1?token=secret";
    expect_refused(bad_url, "ws://");
    auto no_host = good;
    no_host.connection.url = "wss:///v1";
    expect_refused(no_host, "no host");
    auto negative = good;
    negative.connection.heartbeat.pong_timeout = -5ms;
    expect_refused(negative, "pong_timeout");
    auto no_provider = good;
    no_provider.connection.token_provider.reset();
    expect_refused(no_provider, "token provider");
    auto ca = good;
    ca.connection.tls.ca_file = "/nonexistent/ca.pem";
    expect_refused(ca, "CA file");

    // The URL in a message never shows its query string.
    try {
        Client client(bad_url);
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos);
    }
}

// An unreadable token file is refused when the provider is made.
TEST(FileTokenProvider, RefusesUnreadableFile) {
    EXPECT_THROW(FileTokenProvider("/nonexistent/token"), std::invalid_argument);
}

// A token file rewritten by a sidecar is picked up on the next request.
TEST(FileTokenProvider, RereadsWhenFileChanges) {
    auto dir = make_temp_dir("olympus-token");
    auto path = std::filesystem::path(dir) / "token";
    std::ofstream(path) << "first-token\n";
    FileTokenProvider provider(path);
    EXPECT_EQ(provider.token(TokenRequest::connect), "first-token");
    std::ofstream(path) << "second-token-longer\n";
    EXPECT_EQ(provider.token(TokenRequest::refresh), "second-token-longer");
    std::filesystem::remove_all(dir);
}

// Timestamps round-trip at second precision and reject non-UTC offsets.
TEST(Timestamp, ParsesAndFormatsRfc3339) {
    auto t = parse_timestamp("2026-01-18T16:00:00Z");
    ASSERT_TRUE(t);
    EXPECT_EQ(format_timestamp(*t), "2026-01-18T16:00:00.000Z");
    EXPECT_TRUE(parse_timestamp("2026-01-18T16:00:00.250Z"));
    EXPECT_FALSE(parse_timestamp("2026-01-18T16:00:00+02:00"));
    EXPECT_FALSE(parse_timestamp("yesterday"));
}

// A server's expires_at far outside the clock's range is refused, not overflowed (a fuzzer
// found "1406-12-04T03:42:05Z" overflowing the nanosecond clock).
TEST(Timestamp, RefusesOutOfRangeFields) {
    EXPECT_FALSE(parse_timestamp("1406-12-04T03:42:05Z"));
    EXPECT_FALSE(parse_timestamp("9999-01-01T00:00:00Z"));
    EXPECT_FALSE(parse_timestamp("2026-13-01T00:00:00Z"));
    EXPECT_FALSE(parse_timestamp("2026-01-01T25:00:00Z"));
    EXPECT_TRUE(parse_timestamp("2199-12-31T23:59:59Z"));
}

// Protocol error strings map to typed codes; unknown ones to server_error.
TEST(ErrorCategory, MapsProtocolCodes) {
    EXPECT_EQ(make_error_code(errc_from_protocol("subscription_limit")), errc::subscription_limit);
    EXPECT_EQ(make_error_code(errc_from_protocol("rate_limited")), errc::rate_limited);
    EXPECT_EQ(make_error_code(errc_from_protocol("whatever")), errc::server_error);
    EXPECT_STREQ(error_category().name(), "olympus");
}

// A request over 64 KB fails with too_large without touching the network.
TEST(Client, RefusesOversizeRequestLocally) {
    Client client(fast_options("ws://127.0.0.1:1/v1", "t"));
    std::promise<std::error_code> done;
    client.request({{"type", "note"}, {"text", std::string(70'000, 'x')}},
                   [&](std::error_code ec, const nlohmann::json&) { done.set_value(ec); });
    auto result = done.get_future();
    ASSERT_EQ(result.wait_for(2s), std::future_status::ready);
    EXPECT_EQ(result.get(), errc::too_large);
    EXPECT_EQ(client.connection().send_text(std::string(65'537, 'x')), errc::too_large);
}

// The 51st subscription fails at once with subscription_limit, even before connecting.
TEST(Client, FailsFiftyFirstSubscriptionLocally) {
    Client client(fast_options("ws://127.0.0.1:1/v1", "t"));
    for (int i = 0; i < 50; ++i) {
        EXPECT_TRUE(client.subscribe("orders", nullptr, [](const Event&) {}).valid());
    }
    std::promise<std::error_code> done;
    auto handle = client.subscribe(
        "orders", nullptr, [](const Event&) {},
        [&](std::error_code ec, const nlohmann::json&) { done.set_value(ec); });
    EXPECT_FALSE(handle.valid());
    auto result = done.get_future();
    ASSERT_EQ(result.wait_for(2s), std::future_status::ready);
    EXPECT_EQ(result.get(), errc::subscription_limit);
}

// Closing a client that never connected fails its queued requests with closed.
TEST(Client, FailsQueuedRequestsOnClose) {
    Client client(fast_options("ws://127.0.0.1:1/v1", "t"));
    std::promise<std::error_code> done;
    client.request({{"type", "order.get"}},
                   [&](std::error_code ec, const nlohmann::json&) { done.set_value(ec); });
    client.close();
    auto result = done.get_future();
    ASSERT_EQ(result.wait_for(2s), std::future_status::ready);
    EXPECT_EQ(result.get(), errc::closed);
}

}  // namespace
}  // namespace olympus::test
