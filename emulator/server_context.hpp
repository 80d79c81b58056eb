// What every emulated connection shares: options, keys, counters, fault switches and the event
// generator. Everything here lives on the emulator's io thread, except StatsRecorder, which other
// threads read through snapshot().
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "olympus/emulator/emulator.hpp"
#include "olympus/emulator/jwt.hpp"

#include "event_generator.hpp"

namespace olympus::emulator {

/// Counters behind Emulator::stats(). Written on the io thread, read from any thread.
class StatsRecorder {
public:
    void received(const std::string& type) { add(&Stats::received, type); }
    void sent(const std::string& type) { add(&Stats::sent, type); }
    void error(const std::string& code) { add(&Stats::errors, code); }
    void closed_with(int code);
    void opened();
    void ended();
    void refused();
    void oversize();

    Stats snapshot() const;
    void reset();

private:
    void add(std::map<std::string, std::uint64_t> Stats::*field, const std::string& key);

    mutable std::mutex mutex_;
    Stats stats_;
};

/// What a connection needs from its WebSocket connection; implemented once per transport
/// (ws, wss). io thread only.
class Transport {
public:
    virtual ~Transport() = default;
    virtual void send_text(const std::string& text) = 0;
    virtual void send_binary(const std::string& bytes) = 0;
    /// Starts the closing handshake.
    virtual void close(int code, const std::string& reason) = 0;
    /// Tears the TCP connection down with a reset, without a close frame.
    virtual void abort() = 0;
    /// Bytes queued for sending that the peer has not taken yet.
    virtual std::size_t buffered_bytes() const = 0;
};

/// One accepted WebSocket connection, whatever its endpoint. io thread only.
class Session {
public:
    virtual ~Session() = default;
    virtual void on_text(const std::string& text) = 0;
    virtual void on_binary(const std::string& bytes) = 0;
    /// The transport is gone; cancel timers and release what the session holds.
    virtual void on_closed() = 0;
    virtual void drop(DropMode mode) = 0;
    /// A fault switch changed (pings enabled); re-arm timers accordingly.
    virtual void faults_changed() = 0;
};

struct VoiceSessionState;

/// State shared by every session of one emulator. io thread only, but for `stats`.
struct ServerContext {
    ServerContext(const EmulatorOptions& opts, const JwtKey& jwt, asio::io_context& context)
        : options(opts), key(jwt), io(context), events(opts.seed) {}

    const EmulatorOptions& options;
    const JwtKey& key;
    asio::io_context& io;
    StatsRecorder stats;
    EventGenerator events;

    /// Authenticated connections per user id, for the connection limit.
    std::map<std::string, std::size_t> connections_per_user;
    /// The last events sent per "channel|location_id", re-sent on a new subscription when
    /// options.replay_recent_events > 0.
    std::map<std::string, std::deque<nlohmann::json>> recent_events;

    /// Voice sessions by id, live and ended, for resume and for Emulator::voice_sessions().
    std::map<std::string, std::shared_ptr<VoiceSessionState>> voice_sessions;
    std::deque<std::string> voice_order;  ///< ids, oldest first
    std::uint64_t voice_session_counter = 0;
    /// Reply audio served at /audio/<file name>, by file name; the names newest last (bounded).
    std::map<std::string, std::string> audio_files;
    std::deque<std::string> audio_file_order;
    ReplyMode reply_mode = ReplyMode::stream;
    VoiceFault voice_fault = VoiceFault::none;

    // Fault switches.
    bool pings_enabled = true;
    bool silent = false;
    std::chrono::milliseconds frame_delay{0};
};

/// RFC 3339 UTC with milliseconds, e.g. "2026-01-18T14:30:00.125Z".
std::string rfc3339(std::chrono::system_clock::time_point t);
std::string rfc3339_seconds(std::chrono::system_clock::time_point t);

}  // namespace olympus::emulator
