// A fault-injecting TCP proxy for tests: it listens on 127.0.0.1, forwards every accepted
// connection to a target, and can delay, throttle, stall, reset, freeze, fragment or cut the
// bytes on their way. It runs its own io thread; every public method may be called from any
// other thread (controls take effect on the io thread before the call returns).
//
//   client ──► [accept] ─ to_server: read ─► queue (due time) ─► write ─► target
//   client ◄── [socket] ◄─ write ◄─ queue (due time) ◄─ read ─ to_client ◄─┘
//
// Each direction keeps at most max_buffered_bytes queued; past that it stops reading, so a
// stalled peer costs bounded memory and the sender sees TCP back-pressure.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace olympus::test {

/// Which way bytes travel through the proxy.
enum class Direction {
    to_server,  ///< from the accepted (client) socket to the target
    to_client,  ///< from the target back to the client
};

/// What the proxy did since it started, readable from any thread.
struct FaultProxyStats {
    std::uint64_t accepted = 0;           ///< client connections accepted
    std::uint64_t open = 0;               ///< connections alive right now (frozen ones count)
    std::uint64_t upstream_failures = 0;  ///< connections whose target refused
    std::uint64_t bytes_to_server = 0;    ///< bytes written to the target
    std::uint64_t bytes_to_client = 0;    ///< bytes written back to clients
    std::uint64_t writes_to_server = 0;   ///< write calls that carried them
    std::uint64_t writes_to_client = 0;
    std::uint64_t resets = 0;              ///< connections torn down with a reset
    std::uint64_t closed_after_limit = 0;  ///< connections closed by close_after_bytes
    std::uint64_t peak_buffered = 0;       ///< most bytes one direction ever held queued
};

class FaultProxy {
public:
    /// Listens on 127.0.0.1 (an ephemeral port) and forwards to `target_host:target_port`.
    /// Throws std::system_error when it cannot listen.
    FaultProxy(std::string target_host, std::uint16_t target_port,
               std::size_t max_buffered_bytes = 1 << 20, std::uint64_t seed = 1);
    /// Closes every connection and joins the io thread.
    ~FaultProxy();
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    std::uint16_t port() const;
    /// "ws://127.0.0.1:<port>" followed by `path`.
    std::string ws_url(const std::string& path) const;

    /// Every chunk read in `direction` waits `latency` plus a uniform draw in [0, `jitter`]
    /// before it is forwarded; order is always kept. Applies to chunks read from now on.
    void set_latency(Direction direction, std::chrono::milliseconds latency,
                     std::chrono::milliseconds jitter = std::chrono::milliseconds(0));
    /// Forwards at most `bytes_per_second` in `direction`; 0 removes the cap.
    void set_bandwidth(Direction direction, std::size_t bytes_per_second);
    /// While stalled, connections (present and new) accept and queue bytes but forward
    /// nothing; at max_buffered_bytes they stop reading. Clearing it forwards what waited.
    void set_stalled(bool stalled);
    /// Forwards one byte per write (TCP_NODELAY on both sockets), so every byte travels in its
    /// own TCP segment.
    void set_split_bytes(bool split);
    /// Closes each connection (FIN both ways) once it has forwarded `bytes` in total, both
    /// directions together; counts from each connection's start. nullopt removes the limit.
    void set_close_after_bytes(std::optional<std::uint64_t> bytes);

    /// Tears down every open connection with a TCP reset on both sides.
    void reset_all();
    /// Freezes every open connection half-open: nothing more is read, written or closed, so
    /// neither side learns anything until its own timers give up. New connections are not
    /// affected. The frozen sockets close with the proxy.
    void cut_all();
    /// Removes every latency, cap, stall, split and byte limit (frozen connections stay frozen).
    void clear_faults();

    /// Sees every byte read in a direction, before any fault acts on it, with the number of
    /// the connection it belongs to (1, 2, ... in accept order). Runs on the proxy's io thread;
    /// must not block or call back into the proxy. An empty function removes the tap.
    using Tap = std::function<void(std::uint64_t connection, std::string_view bytes)>;
    void set_tap(Direction direction, Tap tap);

    FaultProxyStats stats() const;
    /// Bytes queued in the proxy right now, both directions of every connection.
    std::uint64_t buffered_bytes() const;

private:
    class Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace olympus::test
