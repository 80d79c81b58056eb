// The client against the project's emulator, over ws and wss: auth, heartbeat, dead-link
// detection, backoff, re-subscription, queued requests, token rejection and refresh, local
// limits and TLS verification. Loopback only; intervals shrunk to tens of milliseconds.
#include <future>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "olympus/client.hpp"
#include "olympus/emulator/emulator.hpp"

#include "client_fixture.hpp"

namespace olympus::test {
namespace {

using emulator::DropMode;
using emulator::Emulator;
using emulator::EmulatorOptions;

EmulatorOptions emulator_options(bool tls) {
    EmulatorOptions options;
    options.tls = tls;
    options.events_per_second = 50.0;
    return options;
}

// Client options that trust the emulator's certificate.
ClientOptions options_for(const Emulator& emu, const std::string& token,
                          AuthMode mode = AuthMode::first_message) {
    auto options = fast_options(emu.gateway_url(), token, mode);
    if (emu.options().tls) {
        options.connection.tls.ca_pem = emu.certificate_pem();
    }
    return options;
}

class ClientEmulator : public ::testing::TestWithParam<bool> {
protected:
    bool tls() const { return GetParam(); }
};

// Each of the three auth ways reaches connected and receives events.
TEST_P(ClientEmulator, AuthenticatesEachWay) {
    Emulator emu(emulator_options(tls()));
    emu.start();
    for (auto mode : {AuthMode::first_message, AuthMode::header, AuthMode::query}) {
        Recorder rec;
        Client client(options_for(emu, emu.mint_token(), mode));
        client.subscribe("orders", nullptr, rec.events());
        client.start();
        ASSERT_TRUE(wait_connected(client)) << "auth mode " << static_cast<int>(mode);
        ASSERT_TRUE(eventually([&] { return rec.event_count() >= 2; }));
    }
    EXPECT_EQ(emu.stats().error_count("invalid_token"), 0u);
}

// Server pings every 30 ms are answered with pongs echoing their timestamps; no 4000 close.
TEST_P(ClientEmulator, EchoesPings) {
    auto eo = emulator_options(tls());
    eo.ping_interval = 30ms;
    eo.pong_timeout = 200ms;
    Emulator emu(eo);
    emu.start();
    Client client(options_for(emu, emu.mint_token()));
    client.start();
    ASSERT_TRUE(wait_connected(client));
    ASSERT_TRUE(eventually([&] { return emu.stats().received_of("pong") >= 5; }));
    EXPECT_EQ(emu.stats().close_count(4000), 0u);
    EXPECT_GE(client.stats().pings_answered, 5u);
    EXPECT_EQ(client.stats().reconnects, 0u);
}

// A server that goes silent is declared dead after ping + pong + slack, and the client
// reconnects once it talks again.
TEST_P(ClientEmulator, DetectsDeadLinkWhenServerSilent) {
    auto eo = emulator_options(tls());
    eo.ping_interval = 40ms;
    eo.pong_timeout = 10s;
    Emulator emu(eo);
    emu.start();
    Recorder rec;
    auto options = options_for(emu, emu.mint_token());
    options.connection.heartbeat.server_ping_interval = 40ms;
    options.connection.heartbeat.pong_timeout = 40ms;
    options.connection.heartbeat.dead_link_slack = 20ms;
    options.connection.heartbeat.client_ping_idle = 0ms;
    Client client(options);
    rec.watch(client);
    client.start();
    ASSERT_TRUE(wait_connected(client));

    emu.set_silent(true);
    auto silent_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually([&] { return client.state() != ConnectionState::connected; }));
    auto detected_after = std::chrono::steady_clock::now() - silent_at;
    EXPECT_GE(detected_after, 90ms);
    EXPECT_LT(detected_after, 2s);
    auto states = rec.states();
    bool dead = false;
    for (const auto& s : states) {
        dead |= s.to == ConnectionState::reconnecting && s.reason == errc::dead_link;
    }
    EXPECT_TRUE(dead);

    emu.set_silent(false);
    ASSERT_TRUE(wait_connected(client));
}

// After the server drops everything and refuses the next attempts, the delays drawn follow the
// policy exactly (same seed, same jitter), and the subscription comes back on the same handle.
TEST_P(ClientEmulator, ReconnectsWithBackoffAndResubscribes) {
    Emulator emu(emulator_options(tls()));
    emu.start();
    Recorder rec;
    auto options = options_for(emu, emu.mint_token());
    options.connection.reconnect.base = 10ms;
    options.connection.reconnect.cap = 60ms;
    Client client(options);
    rec.watch(client);
    auto handle = client.subscribe("orders", nullptr, rec.events());
    client.start();
    ASSERT_TRUE(wait_connected(client));
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= 2; }));

    emu.refuse_next_connections(5);
    emu.drop_all_connections(DropMode::abort);
    ASSERT_TRUE(eventually([&] { return emu.stats().connections_refused >= 5; }));
    ASSERT_TRUE(wait_connected(client));
    auto before = rec.event_count();
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= before + 3; }));

    // Replay the policy with the same seed: every delay must match, jitter included.
    auto delays = rec.delays();
    ASSERT_EQ(delays.size(), 6u);
    std::mt19937_64 rng(options.connection.reconnect.seed);
    for (std::uint32_t i = 0; i < delays.size(); ++i) {
        EXPECT_EQ(delays[i].first, i);
        EXPECT_EQ(delays[i].second, options.connection.reconnect.delay(i, rng));
        EXPECT_LE(delays[i].second, options.connection.reconnect.ceiling(i));
    }
    EXPECT_EQ(emu.stats().received_of("subscribe"), 2u);
    EXPECT_TRUE(handle.valid());
    EXPECT_EQ(client.stats().subscriptions, 1u);
}

// A link that keeps dropping after each successful connect is not a run of failed attempts: with
// max_attempts 2 the client rides out four drops, and gives up only after two refused attempts.
TEST_P(ClientEmulator, GivesUpOnlyAfterConsecutiveFailedAttempts) {
    Emulator emu(emulator_options(tls()));
    emu.start();
    auto options = options_for(emu, emu.mint_token());
    options.connection.reconnect.max_attempts = 2;
    Client client(options);
    client.start();
    ASSERT_TRUE(wait_connected(client));
    for (std::uint64_t drop = 1; drop <= 4; ++drop) {
        emu.drop_all_connections(DropMode::abort);
        ASSERT_TRUE(eventually([&] { return client.stats().connects == drop + 1; }))
            << "the client gave up after " << drop << " drops: " << client.terminal_reason();
        ASSERT_TRUE(wait_connected(client));
    }

    emu.refuse_next_connections(100);
    emu.drop_all_connections(DropMode::abort);
    ASSERT_TRUE(eventually([&] { return client.state() == ConnectionState::disconnected; }));
    EXPECT_EQ(client.terminal_reason(), make_error_code(errc::retries_exhausted));
    EXPECT_EQ(emu.stats().connections_refused, 2u);
}

// Requests made while disconnected wait, then go out in order after auth and re-subscription.
TEST_P(ClientEmulator, FlushesQueuedRequestsInOrder) {
    Emulator emu(emulator_options(tls()));
    emu.start();
    Recorder rec;
    auto options = options_for(emu, emu.mint_token());
    options.connection.reconnect.base = 300ms;
    options.connection.reconnect.cap = 300ms;
    options.connection.reconnect.full_jitter = false;
    Client client(options);
    client.subscribe("orders", nullptr, rec.events());
    client.start();
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= 1; }));  // subscribed

    emu.drop_all_connections(DropMode::going_away);
    ASSERT_TRUE(eventually([&] { return client.state() == ConnectionState::reconnecting; }));
    for (int i = 0; i < 5; ++i) {
        nlohmann::json unsubscribe{{"type", "unsubscribe"},
                                   {"subscription_id", "sub-none-" + std::to_string(i)}};
        client.request(unsubscribe, rec.result("req" + std::to_string(i)));
    }
    EXPECT_TRUE(eventually([&] { return client.stats().queued_requests == 5; }));
    ASSERT_TRUE(eventually([&] { return rec.result_count() == 5; }));

    auto results = rec.results();
    for (std::size_t i = 0; i < results.size(); ++i) {
        EXPECT_EQ(results[i].first, "req" + std::to_string(i));
        EXPECT_NE(results[i].second, errc::closed);
        EXPECT_NE(results[i].second, errc::timeout);
    }
    EXPECT_EQ(emu.stats().received_of("unsubscribe"), 5u);
    EXPECT_EQ(emu.stats().received_of("subscribe"), 2u);
}

// An at-least-once server replays recent events after the reconnect; each id reaches the
// application once.
TEST_P(ClientEmulator, SuppressesDuplicateEventsAcrossReconnect) {
    auto eo = emulator_options(tls());
    eo.replay_recent_events = 5;
    Emulator emu(eo);
    emu.start();
    Recorder rec;
    Client client(options_for(emu, emu.mint_token()));
    client.subscribe("orders", nullptr, rec.events());
    client.start();
    ASSERT_TRUE(eventually([&] { return rec.event_count() >= 6; }));

    emu.drop_all_connections(DropMode::abort);
    ASSERT_TRUE(eventually([&] { return client.stats().connects >= 2; }));
    ASSERT_TRUE(eventually([&] { return client.stats().duplicate_events >= 1; }));
    std::set<std::string> ids;
    for (const auto& event : rec.events_seen()) {
        EXPECT_TRUE(ids.insert(event.id).second) << "delivered twice: " << event.id;
    }
}

// A token signed by another key is rejected; the provider has no other, so the client stops.
TEST_P(ClientEmulator, StopsOnRejectedToken) {
    Emulator emu(emulator_options(tls()));
    emu.start();
    auto stranger = emulator::JwtKey::generate().mint("user-dev", "tenant-dev",
                                                      emulator::default_permissions(), 1h);
    Client client(options_for(emu, stranger));
    client.start();
    ASSERT_TRUE(eventually([&] { return bool(client.terminal_reason()); }));
    EXPECT_EQ(client.terminal_reason(), errc::invalid_token);
    EXPECT_EQ(client.state(), ConnectionState::disconnected);
    EXPECT_EQ(emu.stats().connections_opened, 1u);
}

// A rejected token is replaced when the provider has a different one.
TEST_P(ClientEmulator, RetriesWithFreshTokenAfterRejection) {
    Emulator emu(emulator_options(tls()));
    emu.start();
    auto options = options_for(emu, "");
    options.connection.token_provider =
        std::make_shared<CallbackTokenProvider>([&emu](TokenRequest why) {
            return why == TokenRequest::rejected ? emu.mint_token() : std::string("expired.x.y");
        });
    Client client(options);
    client.start();
    ASSERT_TRUE(wait_connected(client));
    EXPECT_EQ(emu.stats().error_count("invalid_token"), 1u);
}

// The 51st subscription and a 64 KB request fail locally; the server sees neither.
TEST_P(ClientEmulator, EnforcesLimitsLocally) {
    auto eo = emulator_options(tls());
    eo.request_burst = 100;  // 50 subscribes at once are not what this test is about
    eo.events_per_second = 1;
    Emulator emu(eo);
    emu.start();
    Recorder rec;
    Client client(options_for(emu, emu.mint_token()));
    client.start();
    ASSERT_TRUE(wait_connected(client));
    for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(client.subscribe("orders", nullptr, [](const Event&) {}).valid());
    }
    auto extra = client.subscribe(
        "orders", nullptr, [](const Event&) {}, rec.result("51st"));
    EXPECT_FALSE(extra.valid());
    client.request({{"type", "note"}, {"text", std::string(66'000, 'x')}}, rec.result("big"));
    ASSERT_TRUE(eventually([&] { return rec.result_count() == 2; }));
    ASSERT_TRUE(eventually([&] { return emu.stats().sent_of("response") >= 50; }));

    auto results = rec.results();
    EXPECT_EQ(results[0].second, errc::subscription_limit);
    EXPECT_EQ(results[1].second, errc::too_large);
    EXPECT_EQ(emu.stats().received_of("subscribe"), 50u);
    EXPECT_EQ(emu.stats().error_count("subscription_limit"), 0u);
    EXPECT_EQ(emu.stats().oversize_frames, 0u);
}

// A token about to expire is replaced on the open link, before expires_at.
TEST_P(ClientEmulator, ReauthenticatesBeforeExpiry) {
    Emulator emu(emulator_options(tls()));
    emu.start();
    auto options = options_for(emu, "");
    options.connection.reauth_margin = 1500ms;
    options.connection.token_provider = std::make_shared<CallbackTokenProvider>(
        [&emu](TokenRequest) { return emu.mint_token("user-dev", 2s); });
    Client client(options);
    client.start();
    ASSERT_TRUE(wait_connected(client));
    ASSERT_TRUE(eventually([&] { return client.stats().reauths >= 2; }, 5s));
    EXPECT_TRUE(eventually([&] { return emu.stats().received_of("auth") >= 3; }));
    EXPECT_EQ(client.state(), ConnectionState::connected);
    EXPECT_EQ(client.stats().reconnects, 0u);
}

INSTANTIATE_TEST_SUITE_P(Client, ClientEmulator, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "wss" : "ws"; });

// A certificate that does not name the host is refused; the same server is fine once the name
// check is off, so the name check is what refused it.
TEST(ClientTls, RejectsWrongHostname) {
    auto eo = emulator_options(true);
    eo.host = "127.0.0.2";  // loopback, but not a name the certificate carries
    Emulator emu(eo);
    emu.start();
    auto url = "wss://127.0.0.2:" + std::to_string(emu.port()) + "/v1";
    auto options = fast_options(url, emu.mint_token());
    options.connection.tls.ca_pem = emu.certificate_pem();
    {
        Client client(options);
        client.start();
        ASSERT_TRUE(eventually([&] { return client.stats().reconnects >= 2; }));
        EXPECT_EQ(client.stats().connects, 0u);
    }
    options.connection.tls.verify_hostname = false;
    Client relaxed(options);
    relaxed.start();
    EXPECT_TRUE(wait_connected(relaxed));
}

// A certificate from no trusted authority is refused.
TEST(ClientTls, RejectsUntrustedCertificate) {
    Emulator emu(emulator_options(true));
    emu.start();
    auto options = fast_options(emu.gateway_url(), emu.mint_token());  // system store only
    Client client(options);
    client.start();
    ASSERT_TRUE(eventually([&] { return client.stats().reconnects >= 2; }));
    EXPECT_EQ(client.stats().connects, 0u);
    EXPECT_EQ(emu.stats().connections_opened, 0u);
}

}  // namespace
}  // namespace olympus::test
