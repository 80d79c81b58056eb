// The faults of the fault matrix, shared by its gateway rows (fault_matrix_test.cpp) and its
// voice session rows (voice_fault_matrix_test.cpp): what each does to the link through the
// emulator's fault controls or the fault proxy in front of it, and how it is undone. Also the
// shrunk heartbeat both kinds of client run with, so that each fault shows within a second.
// Test thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <ostream>

#include "olympus/connection.hpp"
#include "olympus/emulator/emulator.hpp"

#include "support/fault_proxy.hpp"

namespace olympus::test {

/// What a fault acts on: the emulator and the proxy between it and the client.
struct FaultTargets {
    emulator::Emulator& emu;
    FaultProxy& proxy;
};

/// One fault: how it starts and how it is taken away.
struct Fault {
    const char* name;
    std::function<void(FaultTargets&)> inject;
    std::function<void(FaultTargets&)> clear;
};

/// One row of the matrix: a fault and what the client must do about it.
struct FaultRow {
    Fault fault;
    bool link_drops;                           ///< the client must lose the link and come back
    std::chrono::milliseconds detect_within;   ///< fault → reconnecting/resuming (link_drops)
    std::chrono::milliseconds hold;            ///< how long the fault stays before it is cleared
    std::chrono::milliseconds recover_within;  ///< clear → connected/active again
};

/// GoogleTest names a row by its fault in failure messages.
inline void PrintTo(const FaultRow& row, std::ostream* out) {
    *out << row.fault.name;
}

/// Heartbeat and timeouts shrunk so that each fault shows within a second.
struct Timing {
    std::chrono::milliseconds server_ping{150};
    std::chrono::milliseconds dead_after{500};  ///< client: silence before the link is dead
    std::chrono::milliseconds connect_timeout{400};
    std::chrono::milliseconds auth_timeout{400};

    /// Detection of a silent link: dead_after plus one heartbeat check and some slack.
    std::chrono::milliseconds silent_detect() const {
        return dead_after + std::chrono::milliseconds(400);
    }
};

/// The emulator's side of `timing`: it pings every server_ping and is patient with pongs.
inline emulator::EmulatorOptions matrix_emulator(const Timing& timing) {
    emulator::EmulatorOptions options;
    options.ping_interval = timing.server_ping;
    options.pong_timeout = std::chrono::seconds(2);
    options.auth_timeout = std::chrono::seconds(2);
    return options;
}

/// The client's side of `timing`: quick backoff, a dead link declared after dead_after.
inline void apply_timing(const Timing& timing, ConnectionOptions& options) {
    using std::chrono::milliseconds;
    options.reconnect.base = milliseconds(5);
    options.reconnect.cap = milliseconds(40);
    options.reconnect.seed = 7;
    options.heartbeat.server_ping_interval = timing.server_ping;
    options.heartbeat.pong_timeout = timing.dead_after - timing.server_ping - milliseconds(50);
    options.heartbeat.dead_link_slack = milliseconds(50);
    options.heartbeat.client_ping_idle = timing.server_ping;
    options.connect_timeout = timing.connect_timeout;
    options.auth_timeout = timing.auth_timeout;
}

namespace faults {

using namespace std::chrono_literals;

inline void nothing(FaultTargets&) {}
inline void clear_proxy(FaultTargets& t) {
    t.proxy.clear_faults();
}

inline Fault latency_100ms_jitter_50ms() {
    return {"latency_100ms_jitter_50ms",
            [](FaultTargets& t) {
                t.proxy.set_latency(Direction::to_server, 100ms, 50ms);
                t.proxy.set_latency(Direction::to_client, 100ms, 50ms);
            },
            clear_proxy};
}

inline Fault bandwidth_16KBps() {
    return {"bandwidth_16KBps",
            [](FaultTargets& t) {
                t.proxy.set_bandwidth(Direction::to_server, 16'000);
                t.proxy.set_bandwidth(Direction::to_client, 16'000);
            },
            clear_proxy};
}

inline Fault split_1_byte_segments() {
    return {"split_1_byte_segments", [](FaultTargets& t) { t.proxy.set_split_bytes(true); },
            clear_proxy};
}

inline Fault stall_black_hole() {
    return {"stall_black_hole", [](FaultTargets& t) { t.proxy.set_stalled(true); }, clear_proxy};
}

inline Fault reset_both_sides() {
    return {"reset_both_sides", [](FaultTargets& t) { t.proxy.reset_all(); }, nothing};
}

inline Fault half_open_cut() {
    return {"half_open_cut", [](FaultTargets& t) { t.proxy.cut_all(); }, nothing};
}

inline Fault close_after_16KB() {
    return {"close_after_16KB", [](FaultTargets& t) { t.proxy.set_close_after_bytes(16 * 1024); },
            clear_proxy};
}

/// For the voice stream, whose links carry a few KB/s: a fresh link lasts about a second.
inline Fault close_after_4KB() {
    return {"close_after_4KB", [](FaultTargets& t) { t.proxy.set_close_after_bytes(4 * 1024); },
            clear_proxy};
}

inline Fault emulator_drop_abort() {
    return {"emulator_drop_abort",
            [](FaultTargets& t) { t.emu.drop_all_connections(emulator::DropMode::abort); },
            nothing};
}

inline Fault emulator_drop_going_away() {
    return {"emulator_drop_going_away",
            [](FaultTargets& t) { t.emu.drop_all_connections(emulator::DropMode::going_away); },
            nothing};
}

inline Fault emulator_refuses_3_upgrades() {
    return {"emulator_refuses_3_upgrades",
            [](FaultTargets& t) {
                t.emu.refuse_next_connections(3);
                t.emu.drop_all_connections(emulator::DropMode::abort);
            },
            nothing};
}

inline Fault emulator_silent() {
    return {"emulator_silent", [](FaultTargets& t) { t.emu.set_silent(true); },
            [](FaultTargets& t) { t.emu.set_silent(false); }};
}

/// Every outbound frame of the emulator held back 200 ms: less than the dead-link allowance.
inline Fault emulator_frame_delay_200ms() {
    return {"emulator_frame_delay_200ms", [](FaultTargets& t) { t.emu.set_frame_delay(200ms); },
            [](FaultTargets& t) { t.emu.set_frame_delay(0ms); }};
}

}  // namespace faults
}  // namespace olympus::test
