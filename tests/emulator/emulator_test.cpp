// The gateway emulator driven by a real WebSocket client over loopback, over ws and wss: each
// auth way, the heartbeat, subscriptions and events, each limit, error code and close code,
// hostile input and the fault controls.
#include "olympus/emulator/emulator.hpp"

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "support/test_env.hpp"
#include "support/ws_test_client.hpp"

namespace olympus::emulator {
namespace {

using namespace std::chrono_literals;
using test::WsTestClient;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

class GatewayTest : public ::testing::TestWithParam<bool> {
protected:
    /// Options with quiet defaults: no pings or events unless a test asks for them.
    static EmulatorOptions quiet() {
        EmulatorOptions options;
        options.ping_interval = 1h;
        options.events_per_second = 0;
        options.request_burst = 1000;
        options.requests_per_second = 1000;
        return options;
    }

    void start(EmulatorOptions options = quiet()) {
        options.tls = GetParam();
        emu_ = std::make_unique<Emulator>(options);
        emu_->start();
    }

    std::unique_ptr<WsTestClient> client(std::map<std::string, std::string> headers = {}) {
        test::TestClientOptions options;
        options.headers = std::move(headers);
        options.ca_pem = emu_->certificate_pem();
        return std::make_unique<WsTestClient>(options);
    }

    /// Opens a connection to `path` (with an optional query) and asserts it opened.
    std::unique_ptr<WsTestClient> open(const std::string& path = "/v1",
                                       std::map<std::string, std::string> headers = {}) {
        auto c = client(std::move(headers));
        EXPECT_TRUE(c->connect(emu_->base_url() + path)) << c->error();
        return c;
    }

    /// An open connection authenticated with a first-message auth.
    std::unique_ptr<WsTestClient> authed(const std::string& user = "user-dev") {
        auto c = open();
        c->send_json({{"type", "auth"}, {"token", emu_->mint_token(user)}});
        EXPECT_TRUE(c->next_of_type("auth_success"));
        return c;
    }

    Json subscribe(WsTestClient& c, const std::string& channel, Json params = Json::object(),
                   const std::string& id = "req-1") {
        c.send_json({{"type", "subscribe"}, {"id", id}, {"channel", channel}, {"params", params}});
        auto response = c.next_of_type("response");
        EXPECT_TRUE(response) << "no response to subscribe " << channel;
        return response.value_or(Json());
    }

    std::string token_with(std::vector<std::string> permissions,
                           std::chrono::seconds lifetime = 1h) {
        return emu_->key().mint("user-dev", "tenant-dev", std::move(permissions), lifetime);
    }

    std::unique_ptr<Emulator> emu_;
};

INSTANTIATE_TEST_SUITE_P(Transports, GatewayTest, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "wss" : "ws"; });

// --- Authentication -------------------------------------------------------------------------

// The default way: {"type":"auth"} as the first frame gets auth_success with the token's claims.
TEST_P(GatewayTest, AuthenticatesWithFirstMessage) {
    start();
    auto c = open();
    auto token = emu_->key().mint("user-abc", "tenant-xyz", {"orders.read", "kds:read"}, 2h);
    c->send_json({{"type", "auth"}, {"token", token}});
    auto ok = c->next_of_type("auth_success");
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)["user_id"], "user-abc");
    EXPECT_EQ((*ok)["tenant_id"], "tenant-xyz");
    EXPECT_EQ((*ok)["permissions"], Json::array({"orders.read", "kds:read"}));
    TokenClaims claims;
    ASSERT_FALSE(read_claims(token, claims));
    auto exp = std::chrono::system_clock::to_time_t(claims.expires_at);
    char expected[32];
    std::strftime(expected, sizeof expected, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&exp));
    EXPECT_EQ((*ok)["expires_at"], expected);
}

// ?token= on the URL authenticates without any frame from the client.
TEST_P(GatewayTest, AuthenticatesWithQueryParameter) {
    start();
    auto c = open("/v1?token=" + emu_->mint_token("user-q"));
    auto ok = c->next_of_type("auth_success");
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)["user_id"], "user-q");
}

// An Authorization: Bearer header on the upgrade authenticates too.
TEST_P(GatewayTest, AuthenticatesWithBearerHeader) {
    start();
    auto c = open("/v1", {{"Authorization", "Bearer " + emu_->mint_token("user-h")}});
    auto ok = c->next_of_type("auth_success");
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)["user_id"], "user-h");
}

// The gateway is reachable as /v1/ws too; unknown paths are refused with 404.
TEST_P(GatewayTest, ServesBothGatewayPathsAndRefusesOthers) {
    start();
    auto c = open("/v1/ws?token=" + emu_->mint_token());
    EXPECT_TRUE(c->next_of_type("auth_success"));
    auto other = client();
    EXPECT_FALSE(other->connect(emu_->base_url() + "/v2"));
    EXPECT_EQ(other->http_status(), 404);
}

// Garbage, expired and foreign tokens, by every way: auth_error invalid_token, then close 1008.
TEST_P(GatewayTest, RejectsBadTokensWithAuthErrorAnd1008) {
    start();
    TokenClaims expired;
    expired.user_id = "user-dev";
    expired.issued_at = std::chrono::system_clock::now() - 2h;
    expired.expires_at = std::chrono::system_clock::now() - 1h;
    const std::vector<std::string> bad = {"garbage", emu_->key().sign(expired),
                                          JwtKey::generate().mint("user-dev", "t", {}, 1h)};
    for (const auto& token : bad) {
        auto first = open();
        first->send_json({{"type", "auth"}, {"token", token}});
        auto error = first->next_of_type("auth_error");
        ASSERT_TRUE(error);
        EXPECT_EQ((*error)["code"], "invalid_token");
        EXPECT_EQ(first->wait_closed(), 1008);

        auto query = open("/v1?token=" + token);
        EXPECT_TRUE(query->next_of_type("auth_error"));
        EXPECT_EQ(query->wait_closed(), 1008);

        auto header = open("/v1", {{"Authorization", "Bearer " + token}});
        EXPECT_TRUE(header->next_of_type("auth_error"));
        EXPECT_EQ(header->wait_closed(), 1008);
    }
    EXPECT_TRUE(test::eventually([&] { return emu_->stats().close_count(1008) == 9; }));
    EXPECT_EQ(emu_->stats().error_count("invalid_token"), 9u);
}

// A connection that never authenticates is closed with 4001 once the auth timeout passes.
TEST_P(GatewayTest, ClosesUnauthenticatedConnectionWith4001) {
    auto options = quiet();
    options.auth_timeout = 150ms;
    start(options);
    auto started = Clock::now();
    auto c = open();
    EXPECT_EQ(c->wait_closed(3s), 4001);
    EXPECT_GE(Clock::now() - started, 140ms);
    EXPECT_EQ(emu_->stats().close_count(4001), 1u);
}

// Requests before authentication are answered with unauthorized and the connection stays.
TEST_P(GatewayTest, RequestsBeforeAuthAreUnauthorized) {
    start();
    auto c = open();
    c->send_json({{"type", "subscribe"}, {"id", "early"}, {"channel", "orders"}});
    auto error = c->next_of_type("error");
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["code"], "unauthorized");
    EXPECT_EQ((*error)["id"], "early");
    c->send_json({{"type", "auth"}, {"token", emu_->mint_token()}});
    EXPECT_TRUE(c->next_of_type("auth_success"));
}

// A fresh token on an open connection extends it: auth_success with the new expires_at.
TEST_P(GatewayTest, ReauthenticatesOnOpenConnection) {
    start();
    auto c = open();
    c->send_json({{"type", "auth"}, {"token", token_with({"orders.read"}, 1h)}});
    auto first = c->next_of_type("auth_success");
    ASSERT_TRUE(first);
    c->send_json({{"type", "auth"}, {"token", token_with({"orders.read"}, 5h)}});
    auto second = c->next_of_type("auth_success");
    ASSERT_TRUE(second);
    EXPECT_GT((*second)["expires_at"].get<std::string>(),
              (*first)["expires_at"].get<std::string>());
    EXPECT_EQ(subscribe(*c, "orders")["success"], true);
}

// A token that runs out on an open connection ends it: auth_error, then 1008.
TEST_P(GatewayTest, ClosesWhenTokenExpiresWithoutReauth) {
    start();
    auto c = open("/v1?token=" + token_with({"orders.read"}, 1s));
    ASSERT_TRUE(c->next_of_type("auth_success"));
    auto error = c->next_of_type("auth_error", 4s);
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["code"], "invalid_token");
    EXPECT_EQ(c->wait_closed(), 1008);
}

// --- Heartbeat ------------------------------------------------------------------------------

// Pings come at the configured interval with a timestamp; answering them (even without the
// timestamp, as the published example client does) keeps the connection open.
TEST_P(GatewayTest, PingsAtIntervalAndAcceptsPongs) {
    auto options = quiet();
    options.ping_interval = 50ms;
    options.pong_timeout = 40ms;
    start(options);
    auto c = authed();
    std::vector<Clock::time_point> arrivals;
    for (int i = 0; i < 8; ++i) {
        auto ping = c->next_of_type("ping", 2s);
        ASSERT_TRUE(ping);
        arrivals.push_back(Clock::now());
        EXPECT_TRUE((*ping)["timestamp"].is_string());
        if (i % 2 == 0) {
            c->send_json({{"type", "pong"}, {"timestamp", (*ping)["timestamp"]}});
        } else {
            c->send_json({{"type", "pong"}});
        }
    }
    auto mean = (arrivals.back() - arrivals.front()) / 7;
    EXPECT_GE(mean, 45ms);
    EXPECT_LE(mean, 120ms);
    EXPECT_TRUE(c->is_open());
    EXPECT_EQ(emu_->stats().close_count(4000), 0u);
}

// No pong within the pong timeout: the server closes with 4000.
TEST_P(GatewayTest, ClosesWith4000WhenPongIsMissing) {
    auto options = quiet();
    options.ping_interval = 50ms;
    options.pong_timeout = 80ms;
    start(options);
    auto c = authed();
    auto started = Clock::now();
    ASSERT_TRUE(c->next_of_type("ping", 2s));
    EXPECT_EQ(c->wait_closed(3s), 4000);
    auto took = Clock::now() - started;
    EXPECT_GE(took, 70ms);
    EXPECT_LE(took, 1500ms);
    EXPECT_EQ(emu_->stats().close_count(4000), 1u);
}

// A client ping is answered with a pong that echoes its timestamp, or carries one.
TEST_P(GatewayTest, AnswersClientPings) {
    start();
    auto c = authed();
    c->send_json({{"type", "ping"}, {"timestamp", "2026-01-18T14:30:00Z"}});
    auto pong = c->next_of_type("pong");
    ASSERT_TRUE(pong);
    EXPECT_EQ((*pong)["timestamp"], "2026-01-18T14:30:00Z");
    c->send_json({{"type", "ping"}});
    pong = c->next_of_type("pong");
    ASSERT_TRUE(pong);
    EXPECT_TRUE((*pong)["timestamp"].is_string());
}

// --- Subscriptions and events ---------------------------------------------------------------

// subscribe is answered with the request id, a subscription id, channel and params, then
// events for that location arrive with unique ids and honour the subscription's filters.
TEST_P(GatewayTest, SubscribeStreamsFilteredEvents) {
    auto options = quiet();
    options.events_per_second = 200;
    start(options);
    auto c = authed();
    Json params = {{"location_id", "loc-xyz789"}, {"statuses", {"preparing"}}};
    auto response = subscribe(*c, "orders", params, "req-001");
    EXPECT_EQ(response["id"], "req-001");
    EXPECT_EQ(response["success"], true);
    EXPECT_EQ(response["channel"], "orders");
    EXPECT_EQ(response["params"], params);
    auto sub_id = response["subscription_id"].get<std::string>();
    EXPECT_FALSE(sub_id.empty());

    const std::set<std::string> names = {"order.created", "order.updated", "order.status_changed",
                                         "order.paid", "order.closed"};
    std::set<std::string> ids;
    for (int i = 0; i < 20; ++i) {
        auto event = c->next_of_type("event");
        ASSERT_TRUE(event);
        EXPECT_EQ((*event)["channel"], "orders");
        EXPECT_EQ((*event)["subscription_id"], sub_id);
        EXPECT_TRUE(names.count((*event)["event"].get<std::string>()));
        EXPECT_EQ((*event)["data"]["location_id"], "loc-xyz789");
        EXPECT_EQ((*event)["data"]["status"], "preparing");
        EXPECT_TRUE((*event)["data"]["order_id"].is_string());
        EXPECT_TRUE((*event)["timestamp"].is_string());
        ids.insert((*event)["id"].get<std::string>());
    }
    EXPECT_EQ(ids.size(), 20u);
}

// Every documented channel produces its own documented events.
TEST_P(GatewayTest, EveryChannelStreamsItsEvents) {
    auto options = quiet();
    options.events_per_second = 100;
    start(options);
    const std::map<std::string, std::string> prefix = {
        {"orders", "order."}, {"kds", "kds.ticket."},      {"inventory", "inventory."},
        {"tables", "table."}, {"analytics", "analytics."}, {"voice", "voice."}};
    for (const auto& [channel, expected] : prefix) {
        auto c = authed();
        ASSERT_EQ(subscribe(*c, channel, {{"location_id", "loc-1"}})["success"], true);
        auto event = c->next_of_type("event");
        ASSERT_TRUE(event) << channel;
        EXPECT_EQ((*event)["event"].get<std::string>().rfind(expected, 0), 0u) << *event;
        EXPECT_TRUE((*event)["data"].is_object());
    }
}

// unsubscribe echoes its id and the subscription's events stop.
TEST_P(GatewayTest, UnsubscribeStopsEvents) {
    auto options = quiet();
    options.events_per_second = 200;
    start(options);
    auto c = authed();
    auto sub_id = subscribe(*c, "kds")["subscription_id"];
    ASSERT_TRUE(c->next_of_type("event"));
    c->send_json({{"type", "unsubscribe"}, {"id", "req-2"}, {"subscription_id", sub_id}});
    auto response = c->next_of_type("response");
    ASSERT_TRUE(response);
    EXPECT_EQ((*response)["id"], "req-2");
    EXPECT_EQ((*response)["success"], true);
    EXPECT_EQ((*response)["subscription_id"], sub_id);
    // Events already in flight may still arrive; after a quiet period none does.
    while (c->next_of_type("event", 100ms)) {
    }
    EXPECT_FALSE(c->next_of_type("event", 300ms));
}

// Failures are responses with success:false and a documented code.
TEST_P(GatewayTest, FailedRequestsCarryDocumentedCodes) {
    start();
    auto c = open("/v1?token=" + token_with({"orders.read"}));
    ASSERT_TRUE(c->next_of_type("auth_success"));
    auto unknown = subscribe(*c, "weather", {}, "r-unknown");
    EXPECT_EQ(unknown["success"], false);
    EXPECT_EQ(unknown["error"], "invalid_message");
    EXPECT_EQ(unknown["id"], "r-unknown");
    auto denied = subscribe(*c, "kds", {}, "r-denied");
    EXPECT_EQ(denied["success"], false);
    EXPECT_EQ(denied["error"], "unauthorized");
    c->send_json({{"type", "unsubscribe"}, {"id", "r-gone"}, {"subscription_id", "sub-nope"}});
    auto gone = c->next_of_type("response");
    ASSERT_TRUE(gone);
    EXPECT_EQ((*gone)["success"], false);
    EXPECT_EQ((*gone)["error"], "invalid_message");
    EXPECT_TRUE(c->is_open());
}

// An at-least-once server re-sends recent events to a new subscription, with the same ids.
TEST_P(GatewayTest, ReplaysRecentEventsToNewSubscription) {
    auto options = quiet();
    options.events_per_second = 100;
    options.replay_recent_events = 3;
    start(options);
    auto first = authed();
    auto subscribed = subscribe(*first, "orders", {{"location_id", "loc-1"}});
    std::vector<std::string> seen;
    for (int i = 0; i < 5; ++i) {
        auto event = first->next_of_type("event");
        ASSERT_TRUE(event);
        seen.push_back((*event)["id"]);
    }
    // Unsubscribe, and keep every event that came before the answer: after it the server
    // sends none, so `seen` is all the server sent (a close alone leaves events in flight
    // that the closing side drops unread).
    first->send_json({{"type", "unsubscribe"},
                      {"id", "r-stop"},
                      {"subscription_id", subscribed["subscription_id"]}});
    for (;;) {
        auto frame = first->next(5s);
        ASSERT_TRUE(frame) << "no answer to unsubscribe";
        auto message = frame->json();
        if (message.value("type", "") == "event") {
            seen.push_back(message["id"]);
        } else if (message.value("type", "") == "response" && message.value("id", "") == "r-stop") {
            break;
        }
    }
    first->close();
    ASSERT_TRUE(first->wait_closed());
    auto second = authed();
    subscribe(*second, "orders", {{"location_id", "loc-1"}});
    auto replayed = second->next_of_type("event");
    ASSERT_TRUE(replayed);
    EXPECT_NE(std::find(seen.begin(), seen.end(), (*replayed)["id"]), seen.end());
}

// --- Limits ---------------------------------------------------------------------------------

// 50 subscriptions per connection; the 51st fails with subscription_limit.
TEST_P(GatewayTest, FiftyFirstSubscriptionFails) {
    start();
    auto c = authed();
    for (int i = 0; i < 50; ++i) {
        ASSERT_EQ(subscribe(*c, "orders", {{"location_id", "loc-" + std::to_string(i)}},
                            "r" + std::to_string(i))["success"],
                  true);
    }
    auto over = subscribe(*c, "orders", {}, "r50");
    EXPECT_EQ(over["success"], false);
    EXPECT_EQ(over["error"], "subscription_limit");
    EXPECT_EQ(over["id"], "r50");
    EXPECT_TRUE(c->is_open());
}

// 10 connections per user; the 11th gets error connection_limit and close 1008, while another
// user is unaffected and a freed slot can be used again.
TEST_P(GatewayTest, EleventhConnectionOfAUserIsRefused) {
    start();
    std::vector<std::unique_ptr<WsTestClient>> held;
    for (int i = 0; i < 10; ++i) {
        held.push_back(authed("user-busy"));
    }
    auto eleventh = open("/v1?token=" + emu_->mint_token("user-busy"));
    auto error = eleventh->next_of_type("error");
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["code"], "connection_limit");
    EXPECT_EQ(eleventh->wait_closed(), 1008);
    auto other_user = authed("user-other");
    EXPECT_TRUE(other_user->is_open());
    held.back()->close();
    ASSERT_TRUE(held.back()->wait_closed());
    EXPECT_TRUE(test::eventually([&] { return emu_->stats().connections_open == 10; }));
    auto again = open("/v1?token=" + emu_->mint_token("user-busy"));
    EXPECT_TRUE(again->next_of_type("auth_success"));
}

// A frame of exactly 64 KB is read; one byte more closes the connection with 1009.
TEST_P(GatewayTest, FrameOver64KBClosesWith1009) {
    start();
    auto c = authed();
    Json ping = {{"type", "ping"}, {"timestamp", "t"}, {"pad", ""}};
    auto overhead = ping.dump().size();
    ping["pad"] = std::string(65536 - overhead, 'x');
    ASSERT_EQ(ping.dump().size(), 65536u);
    c->send_json(ping);
    EXPECT_TRUE(c->next_of_type("pong"));
    ping["pad"] = std::string(65537 - overhead, 'x');
    c->send_json(ping);
    EXPECT_EQ(c->wait_closed(), 1009);
    EXPECT_TRUE(test::eventually([&] { return emu_->stats().oversize_frames == 1; }));
    EXPECT_EQ(emu_->stats().close_count(1009), 1u);
}

// Nothing at all from the client for the idle timeout: close 4002. Traffic keeps it open.
TEST_P(GatewayTest, IdleConnectionClosesWith4002) {
    auto options = quiet();
    options.idle_timeout = 200ms;
    start(options);
    auto busy = authed();
    auto idle = authed();
    auto started = Clock::now();
    for (int i = 0; i < 6; ++i) {
        busy->send_json({{"type", "ping"}});
        ASSERT_TRUE(busy->next_of_type("pong"));
        std::this_thread::sleep_for(60ms);  // paced client traffic, below the idle timeout
    }
    EXPECT_EQ(idle->wait_closed(2s), 4002);
    EXPECT_GE(Clock::now() - started, 190ms);
    EXPECT_TRUE(busy->is_open());
}

// A flood of subscribes is cut off with rate_limited and a retry hint; the connection stays.
TEST_P(GatewayTest, SubscribeFloodIsRateLimited) {
    auto options = quiet();
    options.request_burst = 10;
    options.requests_per_second = 5;
    start(options);
    auto c = authed();
    for (int i = 0; i < 200; ++i) {
        c->send_json({{"type", "subscribe"}, {"id", i}, {"channel", "tables"}});
    }
    int accepted = 0;
    int limited = 0;
    while (accepted + limited < 200) {
        auto frame = c->next(2s);
        ASSERT_TRUE(frame);
        auto message = frame->json();
        if (message["type"] == "response" && message["success"] == true) {
            ++accepted;
        } else if (message["type"] == "error" && message["code"] == "rate_limited") {
            EXPECT_GT(message["retry_after_ms"].get<int>(), 0);
            ++limited;
        }
    }
    EXPECT_GE(accepted, 10);
    EXPECT_LE(accepted, 14);
    EXPECT_EQ(emu_->stats().error_count("rate_limited"), static_cast<std::uint64_t>(limited));
    EXPECT_TRUE(c->is_open());
}

// --- Hostile input --------------------------------------------------------------------------

// Malformed JSON, wrong types, missing fields and unknown types each get invalid_message (with
// the request id when there is one); the connection carries on and every one is counted.
TEST_P(GatewayTest, MalformedInputGetsInvalidMessage) {
    start();
    auto c = authed();
    const std::vector<std::string> bad = {
        "{not json",
        "[1,2,3]",
        R"({"id":"x"})",
        R"({"type":42})",
        R"({"type":"subscribe","id":{"nested":true},"channel":"orders"})",
        R"({"type":"subscribe","id":"m1"})",
        R"({"type":"subscribe","id":"m2","channel":7})",
        R"({"type":"subscribe","id":"m3","channel":"orders","params":[1]})",
        R"({"type":"unsubscribe","id":"m4"})",
        R"({"type":"auth"})",
        R"({"type":"order.create","id":"m5"})",
    };
    for (const auto& text : bad) {
        c->send_text(text);
        auto frame = c->next(2s);
        ASSERT_TRUE(frame) << text;
        auto reply = frame->json();
        bool is_error = reply["type"] == "error" && reply["code"] == "invalid_message";
        bool is_failed = reply["type"] == "response" && reply["error"] == "invalid_message";
        EXPECT_TRUE(is_error || is_failed) << text << " -> " << frame->payload;
    }
    c->send_text(R"({"type":"order.create","id":"m6"})");
    auto unknown = c->next_of_type("error");
    ASSERT_TRUE(unknown);
    EXPECT_EQ((*unknown)["id"], "m6");
    EXPECT_TRUE(c->is_open());
    auto stats = emu_->stats();
    EXPECT_EQ(stats.error_count("invalid_message"), bad.size() + 1);
    EXPECT_EQ(stats.received_of("<malformed>"), 1u);
    EXPECT_EQ(stats.received_of("<untyped>"), 3u);
}

// A binary frame has no place on the gateway: invalid_message, and the connection stays.
TEST_P(GatewayTest, BinaryFrameIsRefusedWithoutClosing) {
    start();
    auto c = authed();
    c->send_binary(std::string("\x01\x02\x03", 3));
    auto error = c->next_of_type("error");
    ASSERT_TRUE(error);
    EXPECT_EQ((*error)["code"], "invalid_message");
    EXPECT_TRUE(c->is_open());
    EXPECT_EQ(emu_->stats().received_of("<binary>"), 1u);
}

// --- Fault controls -------------------------------------------------------------------------

// drop_all_connections(abort) kills every link without a close frame (the peer sees 1006);
// going_away sends 1001.
TEST_P(GatewayTest, DropsEveryConnection) {
    start();
    auto a = authed();
    auto b = authed();
    emu_->drop_all_connections(DropMode::abort);
    EXPECT_EQ(a->wait_closed(), 1006);
    EXPECT_EQ(b->wait_closed(), 1006);
    auto c = authed();
    emu_->drop_all_connections(DropMode::going_away);
    EXPECT_EQ(c->wait_closed(), 1001);
}

// refuse_next_connections(2): two upgrades get HTTP 503, the third succeeds.
TEST_P(GatewayTest, RefusesTheNextConnections) {
    start();
    emu_->refuse_next_connections(2);
    for (int i = 0; i < 2; ++i) {
        auto c = client();
        EXPECT_FALSE(c->connect(emu_->gateway_url()));
        EXPECT_EQ(c->http_status(), 503);
    }
    auto c = open();
    EXPECT_TRUE(c->is_open());
    EXPECT_EQ(emu_->stats().connections_refused, 2u);
}

// A silent server sends nothing (no pings, answers or events) yet keeps reading; it speaks
// again once silence is lifted.
TEST_P(GatewayTest, SilentServerSendsNothing) {
    auto options = quiet();
    options.ping_interval = 30ms;
    options.pong_timeout = 1h;
    start(options);
    auto c = authed();
    ASSERT_TRUE(c->next_of_type("ping"));
    emu_->set_silent(true);
    while (c->next(50ms)) {
    }
    c->send_json({{"type", "ping"}});
    EXPECT_FALSE(c->next(300ms));
    EXPECT_TRUE(test::eventually([&] { return emu_->stats().received_of("ping") == 1; }));
    emu_->set_silent(false);
    EXPECT_TRUE(c->next_of_type("ping"));
}

// With pings disabled no ping arrives and no one is closed for a missing pong.
TEST_P(GatewayTest, PingsCanBeStopped) {
    auto options = quiet();
    options.ping_interval = 30ms;
    options.pong_timeout = 30ms;
    start(options);
    emu_->set_pings_enabled(false);
    auto c = authed();
    EXPECT_FALSE(c->next_of_type("ping", 300ms));
    EXPECT_TRUE(c->is_open());
}

// A frame delay holds every outbound frame that long, in order.
TEST_P(GatewayTest, FrameDelayHoldsFramesInOrder) {
    start();
    auto c = authed();
    emu_->set_frame_delay(150ms);
    auto sent = Clock::now();
    for (int i = 0; i < 5; ++i) {
        c->send_json({{"type", "ping"}, {"timestamp", std::to_string(i)}});
    }
    for (int i = 0; i < 5; ++i) {
        auto pong = c->next_of_type("pong", 2s);
        ASSERT_TRUE(pong);
        EXPECT_EQ((*pong)["timestamp"], std::to_string(i));
    }
    EXPECT_GE(Clock::now() - sent, 145ms);
}

// Stats count inbound types, outbound types, error codes and close codes.
TEST_P(GatewayTest, StatsCountWhatHappened) {
    start();
    auto c = authed();
    subscribe(*c, "orders");
    c->send_text("nope");
    ASSERT_TRUE(c->next_of_type("error"));
    c->close(1000);
    ASSERT_TRUE(c->wait_closed());
    auto stats = emu_->stats();
    EXPECT_EQ(stats.received_of("auth"), 1u);
    EXPECT_EQ(stats.received_of("subscribe"), 1u);
    EXPECT_EQ(stats.sent_of("auth_success"), 1u);
    EXPECT_EQ(stats.sent_of("response"), 1u);
    EXPECT_EQ(stats.error_count("invalid_message"), 1u);
    EXPECT_EQ(stats.connections_opened, 1u);
    auto json = stats.to_json();
    EXPECT_EQ(json["received"]["subscribe"], 1);
}

}  // namespace
}  // namespace olympus::emulator
