// The fault matrix, gateway rows: every fault of fault_catalog.hpp, one table row each, against
// the gateway client (olympus::Client → FaultProxy → Emulator on loopback). Each row states the
// state the client must reach and how fast, that it recovers once the fault clears, and checks
// exact counts: events the server put on the wire against events the application got (none
// lost, none twice), subscriptions restored under the same handles, and every request answered
// exactly once. The voice session rows are in voice_fault_matrix_test.cpp. Test thread, plus the
// client's, proxy's and emulator's io threads (the recorders lock).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <sched.h>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "olympus/client.hpp"
#include "olympus/emulator/emulator.hpp"

#include "fault_catalog.hpp"
#include "support/fault_proxy.hpp"
#include "support/test_env.hpp"
#include "support/wire_events.hpp"

namespace olympus::test {
namespace {

using namespace std::chrono_literals;
using emulator::DropMode;
using emulator::Emulator;
using emulator::EmulatorOptions;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char* const kChannels[] = {"orders", "kds"};

// What the application saw: event ids per subscription handle, request results by tag, and
// state changes with their time.
class AppView {
public:
    Client::EventHandler on_event(int sub) {
        return [this, sub](const Event& event) {
            std::lock_guard lock(mutex_);
            events_[sub].push_back(event.id);
        };
    }
    Client::ResultHandler on_result(std::string tag) {
        return [this, tag](std::error_code ec, const nlohmann::json&) {
            std::lock_guard lock(mutex_);
            results_[tag].push_back(ec);
        };
    }
    void on_state(const StateChange& change) {
        std::lock_guard lock(mutex_);
        states_.emplace_back(Clock::now(), change.to);
    }

    std::vector<std::string> events(int sub) {
        std::lock_guard lock(mutex_);
        return events_[sub];
    }
    std::size_t event_count(int sub) {
        std::lock_guard lock(mutex_);
        return events_[sub].size();
    }
    std::map<std::string, std::vector<std::error_code>> results() {
        std::lock_guard lock(mutex_);
        return results_;
    }
    std::size_t result_count() {
        std::lock_guard lock(mutex_);
        return results_.size();
    }
    // The first time after `since` that the client entered `state`.
    std::optional<Clock::time_point> entered(ConnectionState state, Clock::time_point since) {
        std::lock_guard lock(mutex_);
        for (const auto& [when, to] : states_) {
            if (when >= since && to == state) {
                return when;
            }
        }
        return std::nullopt;
    }

private:
    std::mutex mutex_;
    std::map<int, std::vector<std::string>> events_;
    std::map<std::string, std::vector<std::error_code>> results_;
    std::vector<std::pair<Clock::time_point, ConnectionState>> states_;
};

// The emulator, the proxy in front of it, and a client with two subscriptions through it.
class Rig {
public:
    explicit Rig(Timing timing = {}) : timing_(timing), emu_(emulator_options(timing)) {
        emu_.start();
        proxy_ = std::make_unique<FaultProxy>("127.0.0.1", emu_.port());
        proxy_->set_tap(Direction::to_client,
                        [this](std::uint64_t c, std::string_view bytes) { wire_.feed(c, bytes); });
        client_ = std::make_unique<Client>(client_options());
        client_->add_state_observer([this](const StateChange& c) { app_.on_state(c); });
    }

    // Subscribes to both channels, connects, and waits for events on both.
    bool start() {
        for (int i = 0; i < 2; ++i) {
            handles_[i] =
                client_->subscribe(kChannels[i], {{"location_id", "loc-matrix"}}, app_.on_event(i));
        }
        // A lost SYN costs a second or more (the packet-loss row), a sanitizer build more.
        client_->start();
        return eventually([&] { return client_->state() == ConnectionState::connected; },
                          scaled(10s)) &&
               events_flowing(3, scaled(5s));
    }

    // True once each subscription got `n` more events than it had on entry.
    bool events_flowing(std::size_t n, milliseconds within) {
        std::size_t base[2] = {app_.event_count(0), app_.event_count(1)};
        return eventually(
            [&] {
                return app_.event_count(0) >= base[0] + n && app_.event_count(1) >= base[1] + n;
            },
            within);
    }

    // A request the emulator answers with a failed response (no such subscription): one
    // answer per request, with the request's id.
    void request(const std::string& tag) {
        client_->request({{"type", "unsubscribe"}, {"subscription_id", "sub-none"}},
                         app_.on_result(tag));
    }

    // Makes the server quiet, then waits until every event it put on the wire reached the
    // application. Returns the per-channel lost ids (empty when nothing was lost).
    std::map<std::string, std::set<std::string>> settle_and_diff() {
        emu_.set_silent(true);
        std::map<std::string, std::set<std::string>> missing;
        auto compute = [&] {
            missing.clear();
            auto wire = wire_.ids();
            for (int i = 0; i < 2; ++i) {
                auto got = app_.events(i);
                std::set<std::string> have(got.begin(), got.end());
                for (const auto& id : wire[kChannels[i]]) {
                    if (have.count(id) == 0) {
                        missing[kChannels[i]].insert(id);
                    }
                }
            }
            return missing.empty() && proxy_->buffered_bytes() == 0;
        };
        eventually(compute, 3s);
        return missing;
    }

    Emulator& emu() { return emu_; }
    FaultProxy& proxy() { return *proxy_; }
    FaultTargets targets() { return {emu_, *proxy_}; }
    Client& client() { return *client_; }
    AppView& app() { return app_; }
    WireEvents& wire() { return wire_; }
    const Timing& timing() const { return timing_; }
    Subscription handle(int i) const { return handles_[i]; }

private:
    static EmulatorOptions emulator_options(const Timing& timing) {
        auto options = matrix_emulator(timing);
        options.events_per_second = 10.0;
        options.replay_recent_events = 64;  // at least once: re-sent on every re-subscribe
        return options;
    }

    ClientOptions client_options() {
        ClientOptions options;
        options.connection.url = proxy_->ws_url("/v1");
        options.connection.token_provider = std::make_shared<FixedTokenProvider>(emu_.mint_token());
        apply_timing(timing_, options.connection);
        options.request_timeout = 3s;
        return options;
    }

    // Destroyed bottom up: the client stops first, then the proxy (whose tap feeds wire_),
    // then what they wrote into.
    Timing timing_;
    Emulator emu_;
    WireEvents wire_;
    AppView app_;
    std::unique_ptr<FaultProxy> proxy_;
    std::unique_ptr<Client> client_;
    Subscription handles_[2];
};

std::vector<FaultRow> rows() {
    namespace f = faults;
    const auto silent_detect = Timing{}.silent_detect();
    return {
        {f::latency_100ms_jitter_50ms(), false, 0ms, 1500ms, 1s},
        {f::bandwidth_16KBps(), false, 0ms, 1500ms, 1s},
        {f::split_1_byte_segments(), false, 0ms, 1500ms, 1s},
        {f::emulator_frame_delay_200ms(), false, 0ms, 1500ms, 1s},
        {f::stall_black_hole(), true, silent_detect, 1200ms, 2s},
        {f::reset_both_sides(), true, 300ms, 0ms, 1500ms},
        {f::half_open_cut(), true, silent_detect, 0ms, 1500ms},
        {f::close_after_16KB(), true, 2s, 1s, 2s},
        {f::emulator_drop_abort(), true, 300ms, 0ms, 1500ms},
        {f::emulator_drop_going_away(), true, 300ms, 0ms, 1500ms},
        {f::emulator_refuses_3_upgrades(), true, 300ms, 0ms, 2s},
        {f::emulator_silent(), true, silent_detect, 700ms, 2s},
    };
}

class FaultMatrix : public ::testing::TestWithParam<FaultRow> {};

// Runs one row: requests before, during and after the fault, and every check of the table.
void run_row(Rig& rig, const FaultRow& row) {
    auto& client = rig.client();
    auto& app = rig.app();
    ASSERT_TRUE(rig.start()) << "client never connected through the proxy";

    // Before the fault: three requests, all answered by the server.
    for (int i = 0; i < 3; ++i) {
        rig.request("before-" + std::to_string(i));
    }
    ASSERT_TRUE(eventually([&] { return app.result_count() == 3; }));
    auto connects_before = client.stats().connects;
    auto subscribes_before = rig.emu().stats().received_of("subscribe");

    // The fault, and three requests made while it acts.
    auto injected = Clock::now();
    auto targets = rig.targets();
    row.fault.inject(targets);
    for (int i = 0; i < 3; ++i) {
        rig.request("during-" + std::to_string(i));
    }

    // The state the row promises: off `connected` within detect_within, or never off it.
    if (row.link_drops) {
        ASSERT_TRUE(eventually(
            [&] { return app.entered(ConnectionState::reconnecting, injected).has_value(); },
            scaled(row.detect_within + 2s)));
        auto took = *app.entered(ConnectionState::reconnecting, injected) - injected;
        EXPECT_LE(took, scaled(row.detect_within)) << "link loss noticed too late";
    } else {
        EXPECT_FALSE(
            eventually([&] { return client.state() != ConnectionState::connected; }, row.hold))
            << "the client left connected under a fault it must ride out";
        EXPECT_TRUE(rig.events_flowing(2, 3s)) << "events stopped under the fault";
    }
    std::size_t expected_results = 9;
    if (row.link_drops) {
        // Requests made while the link is known to be down wait in the queue.
        for (int i = 0; i < 2; ++i) {
            rig.request("offline-" + std::to_string(i));
        }
        expected_results += 2;
    }
    if (row.link_drops && row.hold.count() > 0) {
        // Keep the fault on a while; the client keeps trying but must not get through.
        eventually([] { return false; }, row.hold);
    }

    // Clear it: the client is back, re-subscribed, with events on the same two handles.
    auto cleared = Clock::now();
    row.fault.clear(targets);
    EXPECT_TRUE(eventually([&] { return client.state() == ConnectionState::connected; },
                           scaled(row.recover_within)))
        << "not connected " << row.recover_within.count() << " ms after the fault cleared";
    EXPECT_TRUE(rig.events_flowing(3, scaled(row.recover_within + 2s))) << "events did not resume";
    auto recovered_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - cleared).count();

    // After: three more requests, answered.
    for (int i = 0; i < 3; ++i) {
        rig.request("after-" + std::to_string(i));
    }
    ASSERT_TRUE(eventually([&] { return app.result_count() == expected_results; }, 5s));

    // Events: every id the server put on the wire reached the application, once.
    auto missing = rig.settle_and_diff();
    std::size_t lost = 0;
    for (const auto& [channel, ids] : missing) {
        lost += ids.size();
    }
    EXPECT_EQ(lost, 0u) << "events the server sent never reached the application";
    auto wire = rig.wire().ids();
    std::size_t wire_frames = 0, wire_unique = 0, delivered = 0;
    for (int i = 0; i < 2; ++i) {
        auto got = rig.app().events(i);
        std::set<std::string> unique(got.begin(), got.end());
        EXPECT_EQ(unique.size(), got.size()) << kChannels[i] << ": an event reached the app twice";
        const auto& on_wire = wire[kChannels[i]];
        std::set<std::string> wire_ids(on_wire.begin(), on_wire.end());
        EXPECT_EQ(unique, wire_ids) << kChannels[i] << ": delivered ids differ from the wire";
        wire_frames += on_wire.size();
        wire_unique += wire_ids.size();
        delivered += got.size();
    }
    auto stats = client.stats();
    if (!row.link_drops) {
        // Nothing was lost in flight, so every wire frame reached the client exactly.
        EXPECT_EQ(stats.duplicate_events, wire_frames - wire_unique);
        EXPECT_EQ(stats.events_delivered, wire_frames);
    } else {
        EXPECT_LE(stats.duplicate_events, wire_frames - wire_unique);
        EXPECT_EQ(stats.events_delivered, delivered);
    }

    // Subscriptions: the same two handles live; one re-subscribe each per new link.
    auto emu_stats = rig.emu().stats();
    auto new_links = stats.connects - connects_before;
    auto resubscribes = emu_stats.received_of("subscribe") - subscribes_before;
    EXPECT_EQ(stats.subscriptions, 2u);
    EXPECT_TRUE(rig.handle(0).valid() && rig.handle(1).valid());
    if (row.link_drops) {
        EXPECT_GE(new_links, 1u);
        EXPECT_GE(resubscribes, 2u);
        EXPECT_LE(resubscribes, 2 * new_links);
    } else {
        EXPECT_EQ(new_links, 0u);
        EXPECT_EQ(resubscribes, 0u);
    }

    // Requests: each answered exactly once; before and after by the server; during by the
    // server or, when it was in flight on the lost link, failed as closed. None sent twice.
    auto results = app.results();
    std::size_t answered = 0, closed = 0;
    for (const auto& [tag, codes] : results) {
        ASSERT_EQ(codes.size(), 1u) << tag << " answered " << codes.size() << " times";
        bool from_server = codes[0] == errc::invalid_message;
        bool during = tag.rfind("during", 0) == 0;
        EXPECT_TRUE(from_server || (during && row.link_drops && codes[0] == errc::closed))
            << tag << " ended with " << codes[0].message();
        answered += from_server ? 1 : 0;
        closed += codes[0] == errc::closed ? 1 : 0;
    }
    auto seen_by_server = emu_stats.received_of("unsubscribe");
    EXPECT_GE(seen_by_server, answered);
    EXPECT_LE(seen_by_server, answered + closed) << "a request reached the server twice";
    EXPECT_EQ(stats.bad_frames, 0u) << "a response matched no request (answered twice?)";

    std::printf(
        "[ matrix   ] %-28s new_links=%llu resubscribes=%llu wire_events=%zu "
        "unique=%zu delivered=%zu duplicates_dropped=%llu lost=%zu requests=%zu "
        "answered=%zu closed=%zu recovered_ms=%lld\n",
        row.fault.name, static_cast<unsigned long long>(new_links),
        static_cast<unsigned long long>(resubscribes), wire_frames, wire_unique, delivered,
        static_cast<unsigned long long>(stats.duplicate_events), lost, results.size(), answered,
        closed, static_cast<long long>(recovered_ms));
}

TEST_P(FaultMatrix, ClientRidesOutFault) {
    // One row: the fault named by the parameter, against a fresh emulator, proxy and client.
    Rig rig;
    run_row(rig, GetParam());
    if (std::string(GetParam().fault.name) == "emulator_refuses_3_upgrades") {
        EXPECT_EQ(rig.emu().stats().connections_refused, 3u);
    }
}

INSTANTIATE_TEST_SUITE_P(Gateway, FaultMatrix, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<FaultRow>& row_info) {
                             return std::string(row_info.param.fault.name);
                         });

// A network namespace of the test's own, with an nftables rule that drops a share of the
// packets on its loopback. The calling thread moves into it (threads it starts afterwards
// inherit it) and moves back on destruction; the namespace is deleted then.
class LossyNamespace {
public:
    static std::string unavailable_reason() {
        if (std::system("unshare -n true >/dev/null 2>&1") != 0) {
            return "no rights to create a network namespace (unshare -n failed); run as root "
                   "or with CAP_SYS_ADMIN to include the packet-loss row";
        }
        if (std::system("command -v nft >/dev/null 2>&1 && command -v ip >/dev/null 2>&1") != 0) {
            return "nft or ip is not installed (apt-get install nftables iproute2)";
        }
        return {};
    }

    explicit LossyNamespace(int drop_percent) : name_("olympus-loss-" + std::to_string(getpid())) {
        // Create it with loopback up and the drop rule on every packet leaving an interface.
        std::system(("ip netns del " + name_ + " 2>/dev/null").c_str());
        ok_ = run("ip netns add " + name_) && run("ip -n " + name_ + " link set lo up") &&
              run("ip netns exec " + name_ + " nft add table inet loss") &&
              run("ip netns exec " + name_ +
                  " nft add chain inet loss out '{ type filter hook output priority 0; }'") &&
              run("ip netns exec " + name_ +
                  " nft add rule inet loss out numgen random mod 100 "
                  "'<' " +
                  std::to_string(drop_percent) + " counter drop");

        // Enter it on this thread.
        own_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        int target = open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
        ok_ = ok_ && own_ >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0;
        if (target >= 0) {
            close(target);
        }
    }
    ~LossyNamespace() {
        if (own_ >= 0) {
            setns(own_, CLONE_NEWNET);
            close(own_);
        }
        std::system(("ip netns del " + name_ + " 2>/dev/null").c_str());
    }
    bool ok() const { return ok_; }
    const std::string& name() const { return name_; }

    /// Packets the drop rule has dropped so far (its nftables counter); -1 if unreadable.
    long long dropped_packets() const {
        FILE* pipe =
            popen(("ip netns exec " + name_ + " nft list chain inet loss out").c_str(), "r");
        if (pipe == nullptr) {
            return -1;
        }
        long long dropped = -1;
        char line[512];
        while (std::fgets(line, sizeof line, pipe) != nullptr) {
            if (const char* at = std::strstr(line, "counter packets ")) {
                dropped = std::atoll(at + std::strlen("counter packets "));
            }
        }
        pclose(pipe);
        return dropped;
    }

private:
    static bool run(const std::string& command) {
        return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
    }

    std::string name_;
    int own_ = -1;
    bool ok_ = false;
};

// TCP segments retransmitted in the calling thread's network namespace.
long long retransmitted_segments() {
    std::ifstream snmp("/proc/thread-self/net/snmp");
    std::string header, values;
    while (std::getline(snmp, header) && std::getline(snmp, values)) {
        if (header.rfind("Tcp:", 0) != 0) {
            continue;
        }
        std::istringstream names(header), numbers(values);
        std::string name, number;
        while (names >> name && numbers >> number) {
            if (name == "RetransSegs") {
                return std::stoll(number);
            }
        }
    }
    return -1;
}

// Real packet loss: 10% of all packets on the namespace's loopback are dropped for 3 s. TCP
// retransmits; the client may reconnect, but no event is lost or duplicated and every request
// is answered once.
TEST(FaultMatrixNetns, PacketLossTenPercent) {
    if (auto why = LossyNamespace::unavailable_reason(); !why.empty()) {
        GTEST_SKIP() << why;
    }
    bool namespace_ok = false;
    std::string name;
    {
        LossyNamespace ns(10);
        name = ns.name();
        namespace_ok = ns.ok();
        ASSERT_TRUE(namespace_ok) << "could not set up namespace " << name;

        // Retransmission timeouts start at 200 ms: give the heartbeat room for a few.
        Timing slow;
        slow.dead_after = 3s;
        slow.connect_timeout = 3s;
        slow.auth_timeout = 3s;
        Rig rig(slow);
        FaultRow row{{"packet_loss_10pct", faults::nothing, faults::nothing}, false, 0ms, 3s, 5s};
        // The rule is in place from the start, so "during" covers the whole run: allow
        // reconnects, but hold every exactness check.
        ASSERT_TRUE(rig.start());
        for (int i = 0; i < 10; ++i) {
            rig.request("r-" + std::to_string(i));
        }
        ASSERT_TRUE(eventually([&] { return rig.app().result_count() == 10; }, 15s));
        EXPECT_TRUE(rig.events_flowing(10, 15s));
        auto missing = rig.settle_and_diff();
        EXPECT_TRUE(missing.empty()) << "events lost under packet loss";
        for (int i = 0; i < 2; ++i) {
            auto got = rig.app().events(i);
            EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size());
        }
        for (const auto& [tag, codes] : rig.app().results()) {
            ASSERT_EQ(codes.size(), 1u) << tag;
            EXPECT_TRUE(codes[0] == errc::invalid_message || codes[0] == errc::closed)
                << tag << ": " << codes[0].message();
        }
        // The loss was real: the rule dropped packets (hundreds went through it). Whether TCP
        // had to retransmit depends on which were hit (a lost pure ACK often needs nothing),
        // so retransmissions are reported, not required.
        auto dropped = ns.dropped_packets();
        EXPECT_GT(dropped, 0) << "the drop rule did not act";
        auto retransmits = retransmitted_segments();
        std::printf(
            "[ matrix   ] %-28s dropped=%lld retransmits=%lld connects=%llu delivered=%llu "
            "duplicates_dropped=%llu\n",
            row.fault.name, dropped, retransmits,
            static_cast<unsigned long long>(rig.client().stats().connects),
            static_cast<unsigned long long>(rig.client().stats().events_delivered),
            static_cast<unsigned long long>(rig.client().stats().duplicate_events));
    }

    // The namespace is gone once the test is done.
    EXPECT_NE(std::system(("ip netns pids " + name + " >/dev/null 2>&1").c_str()), 0)
        << "namespace " << name << " was left behind";
}

}  // namespace
}  // namespace olympus::test
