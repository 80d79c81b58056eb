// The transport core shared by the gateway client and the voice stream: one WebSocket link that
// authenticates, keeps itself alive with heartbeats, detects a dead peer and reconnects with
// backoff. It owns one io thread, or shares one (ConnectionOptions::io_thread); public methods
// may be called from any thread unless marked "io thread only", and every hook and observer
// runs on the io thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "olympus/io_thread.hpp"
#include "olympus/reconnect_policy.hpp"
#include "olympus/token_provider.hpp"

namespace olympus {

/// The five documented connection states (protocol section 2.2).
enum class ConnectionState {
    connecting,      ///< TCP, TLS and WebSocket handshakes in progress
    authenticating,  ///< open; waiting for the server to accept the token
    connected,       ///< authenticated: ready to send and receive
    reconnecting,    ///< lost the link; waiting out a backoff delay before the next attempt
    disconnected,    ///< not started, closed by the application, or stopped for good
};
const char* to_string(ConnectionState state);

/// How the access token reaches the server (protocol section 2.1).
enum class AuthMode {
    first_message,  ///< {"type":"auth","token":...} as the first frame (default)
    header,         ///< Authorization: Bearer <token> on the upgrade request
    query,          ///< ?token=<token> in the URL (never logged)
};

struct TlsOptions {
    std::string ca_file;          ///< PEM file of trusted CAs; empty: the system store (or ca_pem)
    std::string ca_pem;           ///< PEM text of trusted CAs or a pinned self-signed certificate
    bool verify_peer = true;      ///< check the certificate chain; turn off for debugging only
    bool verify_hostname = true;  ///< check the certificate names the URL's host
};

struct HeartbeatOptions {
    /// The server's ping period; with pong_timeout and dead_link_slack it sets how long
    /// silence may last before the link is declared dead (default 30 + 10 + 5 = 45 s).
    std::chrono::milliseconds server_ping_interval{30'000};
    std::chrono::milliseconds pong_timeout{10'000};
    std::chrono::milliseconds dead_link_slack{5'000};
    /// Send a client {"type":"ping"} when nothing has arrived for this long; 0 disables.
    std::chrono::milliseconds client_ping_idle{25'000};

    std::chrono::milliseconds dead_after() const {
        return server_ping_interval + pong_timeout + dead_link_slack;
    }
};

struct ConnectionOptions {
    std::string url;  ///< ws:// or wss:// URL of the endpoint
    AuthMode auth_mode = AuthMode::first_message;
    std::shared_ptr<TokenProvider> token_provider;  ///< required
    TlsOptions tls;
    HeartbeatOptions heartbeat;
    ReconnectPolicy reconnect;
    std::chrono::milliseconds connect_timeout{10'000};  ///< TCP + TLS + upgrade
    std::chrono::milliseconds auth_timeout{10'000};     ///< open until auth_success
    /// Re-authenticate this long before the token's expires_at; 0 disables re-auth.
    std::chrono::milliseconds reauth_margin{60'000};
    std::size_t max_message_bytes = 65'536;  ///< protocol limit, both directions
    /// Inbound frames above max_message_bytes and up to this size are dropped and counted
    /// while the link carries on; larger ones make the WebSocket layer close the link (1009)
    /// so that memory stays bounded.
    std::size_t inbound_hard_limit = 4 * 65'536;
    std::string user_agent = "olympus-voice/0.1";
    std::string logger = "client";  ///< name of the log::get() logger to use
    /// Null (default): the Connection starts and joins an io thread of its own. Set: it runs
    /// on this shared thread instead, and its hooks share the thread with every other
    /// Connection on it. The IoThread must outlive the Connection.
    std::shared_ptr<IoThread> io_thread;

    /// Throws std::invalid_argument with a readable message on a bad URL, a missing token
    /// provider, a negative or zero interval, or an unreadable CA file.
    void validate() const;
};

/// One state transition, as observers see it.
struct StateChange {
    ConnectionState from;
    ConnectionState to;
    std::error_code reason;  ///< why the link went down or stopped; empty on the way up
    std::uint32_t attempt;   ///< consecutive failed attempts so far
};

/// Counters, readable from any thread while the connection runs.
struct ConnectionStats {
    std::uint64_t messages_sent = 0;
    std::uint64_t messages_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t connects = 0;        ///< WebSocket handshakes that succeeded
    std::uint64_t reconnects = 0;      ///< connection attempts after the first
    std::uint64_t dropped_frames = 0;  ///< inbound frames over max_message_bytes
    std::uint64_t bad_frames = 0;      ///< inbound frames that were malformed or unexpected
    std::uint64_t pings_answered = 0;  ///< server pings answered with a pong
    std::uint64_t pings_sent = 0;      ///< client pings sent on an idle link
    std::uint64_t reauths = 0;         ///< re-authentications on an open link
    std::optional<std::chrono::microseconds> last_rtt;  ///< of the last client ping
};

class Connection {
public:
    /// What the owner (gateway client, voice session) plugs in. All run on the io thread and
    /// must not block. Set before start().
    struct Hooks {
        /// Builds the first frame in first_message mode from the token. Default: the auth frame.
        std::function<std::string(const std::string& token)> opening_frame;
        /// The link is authenticated (state is now connected). `first` is false after a
        /// reconnect.
        std::function<void(bool first)> on_connected;
        /// The link went down (reason set); requests in flight are lost.
        std::function<void(std::error_code reason)> on_link_down;
        /// Every JSON object frame the core did not consume (pings, pongs and auth replies are
        /// consumed).
        std::function<void(const nlohmann::json& message)> on_message;
        /// Binary frames. Unset: each binary frame counts as a bad frame.
        std::function<void(std::string_view bytes)> on_binary;
    };

    using StateObserver = std::function<void(const StateChange&)>;
    /// Called with each scheduled reconnect delay, before the wait starts.
    using BackoffObserver =
        std::function<void(std::uint32_t attempt, std::chrono::milliseconds delay)>;
    using TimerId = std::uint64_t;

    /// Validates `options` (throws std::invalid_argument) and starts the io thread (unless
    /// options.io_thread is shared); the link
    /// stays down until start().
    Connection(ConnectionOptions options, Hooks hooks);
    /// Closes the link like close() and joins the io thread.
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Starts connecting. Any thread; idempotent.
    void start();
    /// Closes the link with code 1000 and does not reconnect; ends in disconnected with
    /// errc::closed_by_application. Any thread; idempotent.
    void close();

    ConnectionState state() const;
    /// Why the connection is disconnected (terminal reason); empty while running.
    std::error_code terminal_reason() const;
    ConnectionStats stats() const;
    const ConnectionOptions& options() const;

    void add_state_observer(StateObserver observer);
    void add_backoff_observer(BackoffObserver observer);

    /// Runs `task` on the io thread (inline when already on it). Any thread.
    void post(std::function<void()> task);
    bool on_io_thread() const;

    /// Sends a text frame. Any thread: frames over max_message_bytes return errc::too_large at
    /// once; otherwise the frame goes out on the io thread if the link is open, and is
    /// dropped (logged) if not. On the io thread the result is exact: errc::closed when the
    /// link is not open.
    std::error_code send_text(std::string text);
    std::error_code send_binary(std::string bytes);

    // io thread only.

    /// Calls `task` after `delay` unless cancelled first.
    TimerId call_after(std::chrono::milliseconds delay, std::function<void()> task);
    void cancel(TimerId id);
    /// For owners whose opening frame is not an auth frame (the voice stream): mark the link
    /// authenticated. `expires_at` schedules re-authentication.
    void complete_authentication(
        std::optional<std::chrono::system_clock::time_point> expires_at = std::nullopt);
    /// Counts a frame the owner found malformed and logs it, rate-limited.
    void report_bad_frame(std::string_view what);
    /// The close code the peer sent when the last link closed (1006 when it ended without a
    /// close frame); 0 while the current link is open or none has closed yet.
    int last_close_code() const;

private:
    class Impl;
    std::shared_ptr<Impl> impl_;
};

/// RFC 3339 UTC time with milliseconds, e.g. "2026-01-18T14:30:00.123Z".
std::string format_timestamp(std::chrono::system_clock::time_point time);
/// Parses "2026-01-18T16:00:00Z" (fractional seconds and a "+00:00" offset allowed).
std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text);

}  // namespace olympus
