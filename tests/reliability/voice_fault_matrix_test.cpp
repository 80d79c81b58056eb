// The fault matrix, voice session rows: every fault of fault_catalog.hpp against a voice session
// (olympus::VoiceSession → FaultProxy → Emulator's /stream on loopback) streaming a recorded
// order at real-time pace while the emulator greets and then answers it. Each row states the
// state the session must reach and how fast, that it comes back `active` with resumed: true and
// the same session id once the fault clears, and counts audio exactly: every frame the source
// delivered against every frame the emulator took in (one by one, by digest: none lost, none
// twice, none out of order while the outage fits the buffer; exactly `outage_dropped` lost when
// it does not), frames re-sent on the wire, and reply frames the emulator sent against those
// the client received. Test thread, plus the session's, proxy's and emulator's threads.
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "olympus/emulator/emulator.hpp"
#include "olympus/error.hpp"
#include "olympus/voice_session.hpp"

#include "fault_catalog.hpp"
#include "support/fault_proxy.hpp"
#include "support/test_env.hpp"
#include "support/wire_events.hpp"
#include "voice/frame_audit.hpp"

namespace olympus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What the application saw of the session: state changes with their time, session starts,
// errors. Written on the io thread, read by the test.
class VoiceView {
public:
    struct Start {
        std::string session_id;
        bool resumed;
    };

    VoiceSession::EventHandler handler() {
        return [this](const VoiceEvent& e) {
            std::lock_guard lock(mutex_);
            if (e.kind == VoiceEvent::Kind::state_changed) {
                states_.emplace_back(Clock::now(), e.state);
            } else if (e.kind == VoiceEvent::Kind::session_started) {
                starts_.push_back({e.session_id, e.resumed});
            } else if (e.kind == VoiceEvent::Kind::error) {
                errors_.push_back(e.error);
            }
        };
    }
    // The first time after `since` that the session entered `state`.
    std::optional<Clock::time_point> entered(VoiceState state, Clock::time_point since) {
        std::lock_guard lock(mutex_);
        for (const auto& [when, to] : states_) {
            if (when >= since && to == state) {
                return when;
            }
        }
        return std::nullopt;
    }
    std::vector<Start> starts() {
        std::lock_guard lock(mutex_);
        return starts_;
    }
    std::size_t errors_of(errc code) {
        std::lock_guard lock(mutex_);
        return static_cast<std::size_t>(std::count(errors_.begin(), errors_.end(), code));
    }

private:
    std::mutex mutex_;
    std::vector<std::pair<Clock::time_point, VoiceState>> states_;
    std::vector<Start> starts_;
    std::vector<std::error_code> errors_;
};

// The emulator (greeting on, pinging every 150 ms), the proxy in front of it with a frame
// counter on each direction, and a session streaming the order through the proxy.
class VoiceRig {
public:
    explicit VoiceRig(milliseconds outage_buffer = 2s, Timing timing = {})
        : emu_(matrix_emulator(timing)), delivered_(std::make_shared<DeliveredFrames>()) {
        emu_.start();
        proxy_ = std::make_unique<FaultProxy>("127.0.0.1", emu_.port());
        proxy_->set_tap(Direction::to_server,
                        [this](std::uint64_t c, std::string_view bytes) { up_.feed(c, bytes); });
        proxy_->set_tap(Direction::to_client,
                        [this](std::uint64_t c, std::string_view bytes) { down_.feed(c, bytes); });

        options_.connection.url = proxy_->ws_url("/stream");
        options_.connection.token_provider =
            std::make_shared<FixedTokenProvider>(emu_.mint_token());
        apply_timing(timing, options_.connection);
        // Not stretched under sanitizers: a resume the silent emulator swallows waits this long
        // before the next attempt, so it sets how long that outage lasts.
        options_.start_timeout = 1s;
        options_.outage_buffer = outage_buffer;
        auto file = FileVoiceSource::open(noisy_order_wav(), 48000, 20, true, 0ms);
        EXPECT_TRUE(file) << (file ? "" : file.error().what());
        auto source = std::make_unique<RecordingVoiceSource>(std::move(file).value(), delivered_);
        session_ =
            std::make_unique<VoiceSession>(options_, std::move(source), nullptr, view_.handler());
    }

    bool start() {
        session_->start();
        return session_->wait_for(VoiceState::active, scaled(5s));
    }

    // Lets the order and its reply play out, waits until the emulator took in every frame the
    // session sent, and ends the session.
    void finish() {
        EXPECT_TRUE(session_->wait_source_done(scaled(20s))) << "the order did not finish";
        EXPECT_TRUE(eventually([&] { return session_->stats().replies >= 1; }, scaled(5s)))
            << "the emulator never answered";
        EXPECT_TRUE(session_->wait_replies_done(600ms, scaled(15s))) << "the reply never ended";
        eventually([&] { return record().frames_received >= session_->stats().frames_sent; },
                   scaled(5s));
        session_->end();
        EXPECT_TRUE(session_->wait_for(VoiceState::ended, scaled(5s)));
    }

    // The emulator's only session.
    emulator::VoiceSessionRecord record() {
        auto sessions = emu_.voice_sessions();
        EXPECT_EQ(sessions.size(), 1u) << "the session was not resumed but replaced";
        return sessions.empty() ? emulator::VoiceSessionRecord{} : sessions.front();
    }
    std::vector<std::uint64_t> produced() { return uplink_digests(delivered_->frames(), options_); }

    FaultTargets targets() { return {emu_, *proxy_}; }
    VoiceSession& session() { return *session_; }
    VoiceView& view() { return view_; }
    WireEvents& uplink_wire() { return up_; }

private:
    // Destroyed bottom up: the session first, then the proxy (whose taps feed the counters).
    emulator::Emulator emu_;
    WireEvents up_, down_;
    VoiceView view_;
    std::shared_ptr<DeliveredFrames> delivered_;
    std::unique_ptr<FaultProxy> proxy_;
    VoiceSessionOptions options_;
    std::unique_ptr<VoiceSession> session_;
};

/// A voice row: a fault, and whether the outage it causes outlasts the outage buffer.
struct VoiceRow {
    FaultRow row;
    bool beyond_buffer = false;
};

void PrintTo(const VoiceRow& row, std::ostream* out) {
    *out << row.row.fault.name;
}

std::vector<VoiceRow> voice_rows() {
    namespace f = faults;
    const auto silent_detect = Timing{}.silent_detect();

    // Silent and refusing every upgrade for 3 s: the outage outlasts the 2 s buffer.
    Fault long_outage{"emulator_gone_3s_beyond_buffer",
                      [](FaultTargets& t) {
                          t.emu.refuse_next_connections(1'000'000);
                          t.emu.set_silent(true);
                      },
                      [](FaultTargets& t) {
                          t.emu.refuse_next_connections(0);
                          t.emu.set_silent(false);
                      }};
    return {
        {{f::latency_100ms_jitter_50ms(), false, 0ms, 1500ms, 1s}},
        {{f::bandwidth_16KBps(), false, 0ms, 1500ms, 1s}},
        {{f::split_1_byte_segments(), false, 0ms, 1500ms, 1s}},
        {{f::emulator_frame_delay_200ms(), false, 0ms, 1500ms, 1s}},
        {{f::stall_black_hole(), true, silent_detect, 1200ms, 2s}},
        {{f::reset_both_sides(), true, 300ms, 0ms, 1500ms}},
        {{f::half_open_cut(), true, silent_detect, 0ms, 1500ms}},
        {{f::close_after_4KB(), true, 1s, 2s, 2s}},
        {{f::emulator_drop_abort(), true, 300ms, 0ms, 1500ms}},
        {{f::emulator_drop_going_away(), true, 300ms, 0ms, 1500ms}},
        {{f::emulator_refuses_3_upgrades(), true, 300ms, 0ms, 2s}},
        {{f::emulator_silent(), true, silent_detect, 700ms, 2s}},
        {{long_outage, true, silent_detect, 3s, 2s}, true},
    };
}

class VoiceFaultMatrix : public ::testing::TestWithParam<VoiceRow> {};

// The state the row promises while the fault acts: resuming within detect_within, or never
// leaving active.
void expect_state_under_fault(VoiceRig& rig, const FaultRow& row, Clock::time_point injected) {
    auto& session = rig.session();
    if (!row.link_drops) {
        EXPECT_FALSE(eventually([&] { return session.state() != VoiceState::active; }, row.hold))
            << "the session left active under a fault it must ride out";
        return;
    }
    ASSERT_TRUE(
        eventually([&] { return rig.view().entered(VoiceState::resuming, injected).has_value(); },
                   scaled(row.detect_within + 2s)))
        << "the session never noticed the fault";
    auto took = *rig.view().entered(VoiceState::resuming, injected) - injected;
    EXPECT_LE(took, scaled(row.detect_within)) << "link loss noticed too late";
    if (row.hold.count() > 0) {
        // The fault stays on a while; the session keeps trying but must not get through.
        eventually([] { return false; }, row.hold);
    }
}

// One resumed session throughout: the first start new, every later one a resume of it.
void expect_one_session(VoiceRig& rig, const VoiceStats& stats,
                        const emulator::VoiceSessionRecord& record) {
    auto starts = rig.view().starts();
    ASSERT_FALSE(starts.empty());
    EXPECT_FALSE(starts.front().resumed);
    for (std::size_t i = 1; i < starts.size(); ++i) {
        EXPECT_TRUE(starts[i].resumed) << "start " << i << " was not a resume";
        EXPECT_EQ(starts[i].session_id, starts.front().session_id);
    }
    EXPECT_EQ(stats.resumes, starts.size() - 1);
    // A silent emulator takes resumes whose answer it then swallows: it may count more.
    EXPECT_GE(static_cast<std::uint64_t>(record.resumes), stats.resumes);
    EXPECT_EQ(rig.view().errors_of(errc::session_lost), 0u);
}

TEST_P(VoiceFaultMatrix, SessionRidesOutFault) {
    // One row: the fault named by the parameter, against a fresh emulator, proxy and session.
    const FaultRow& row = GetParam().row;
    const bool beyond_buffer = GetParam().beyond_buffer;
    VoiceRig rig;
    auto& session = rig.session();
    ASSERT_TRUE(rig.start()) << "the session never became active through the proxy";

    // The fault strikes half a second in, while the greeting plays.
    ASSERT_TRUE(eventually([&] { return session.stats().frames_sent >= 25; }, scaled(5s)));
    auto injected = Clock::now();
    auto targets = rig.targets();
    row.fault.inject(targets);
    expect_state_under_fault(rig, row, injected);

    // Cleared, the session is active again: resumed when the link dropped.
    auto cleared = Clock::now();
    row.fault.clear(targets);
    EXPECT_TRUE(eventually(
        [&] {
            return session.state() == VoiceState::active &&
                   (!row.link_drops || session.stats().resumes >= 1);
        },
        scaled(row.recover_within)))
        << "not active " << row.recover_within.count() << " ms after the fault cleared";
    auto recovered_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - cleared).count();
    rig.finish();

    // Uplink: what the source delivered against what the emulator holds, frame by frame.
    auto stats = session.stats();
    auto record = rig.record();
    auto produced = rig.produced();
    auto audit = audit_frames(produced, record.frame_digests);
    ASSERT_TRUE(audit.distinct) << "two frames of the order encode alike: the audit is blind";
    EXPECT_EQ(stats.frames_captured, produced.size());
    EXPECT_EQ(record.frames_received, record.frame_digests.size());
    EXPECT_EQ(audit.duplicated, 0u) << audit.detail;
    EXPECT_EQ(audit.reordered, 0u) << audit.detail;
    EXPECT_EQ(audit.foreign, 0u) << audit.detail;
    EXPECT_EQ(stats.uplink_overflows, 0u);
    if (beyond_buffer) {
        // The oldest frames of the outage went, each one counted, and only those.
        EXPECT_GT(stats.outage_dropped, 0u);
        EXPECT_EQ(audit.lost, stats.outage_dropped) << audit.detail;
        EXPECT_EQ(audit.lost_runs, 1u) << audit.detail;
    } else {
        EXPECT_TRUE(audit.exact()) << audit.detail;
        EXPECT_EQ(stats.outage_dropped, 0u);
    }
    EXPECT_EQ(stats.frames_sent + stats.outage_dropped, stats.frames_captured);

    // The session: the same one throughout, resumed after every drop, ended without an error.
    EXPECT_FALSE(stats.error) << stats.error.message();
    expect_one_session(rig, stats, record);
    auto resent = rig.uplink_wire().binary_frames() - record.frames_received;
    if (row.link_drops) {
        EXPECT_GE(stats.link_drops, 1u);
        EXPECT_GE(stats.resumes, 1u);
    } else {
        EXPECT_EQ(stats.link_drops, 0u);
        EXPECT_EQ(stats.resumes, 0u);
        EXPECT_EQ(resent, 0u) << "frames went out twice on a link that held";
    }

    // Downlink: every reply frame arrives while the link holds; a drop loses what was in flight.
    EXPECT_EQ(record.replies, 1u);
    EXPECT_EQ(stats.replies, 1u);
    if (row.link_drops) {
        EXPECT_LE(stats.reply_frames_received, record.reply_frames_sent);
    } else {
        EXPECT_EQ(stats.reply_frames_received, record.reply_frames_sent);
    }

    std::printf(
        "[ matrix   ] %-30s resumes=%llu frames produced=%zu received=%zu lost=%zu "
        "duplicated=%zu reordered=%zu outage_dropped=%llu outage_peak=%llu resent=%llu "
        "reply_frames sent=%llu received=%llu recovered_ms=%lld\n",
        row.fault.name, static_cast<unsigned long long>(stats.resumes), audit.expected,
        audit.received, audit.lost, audit.duplicated, audit.reordered,
        static_cast<unsigned long long>(stats.outage_dropped),
        static_cast<unsigned long long>(stats.outage_peak), static_cast<unsigned long long>(resent),
        static_cast<unsigned long long>(record.reply_frames_sent),
        static_cast<unsigned long long>(stats.reply_frames_received),
        static_cast<long long>(recovered_ms));
}

INSTANTIATE_TEST_SUITE_P(Voice, VoiceFaultMatrix, ::testing::ValuesIn(voice_rows()),
                         [](const ::testing::TestParamInfo<VoiceRow>& row_info) {
                             return std::string(row_info.param.row.fault.name);
                         });

}  // namespace
}  // namespace olympus::test
