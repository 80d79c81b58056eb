// A voice stream connection kept open between sessions: the warm link of a drive-thru lane. It
// authenticates with {"type":"auth"} as soon as it opens, keeps the heartbeat going while no
// session runs, and carries one VoiceSession after another ([ours]; see the README's "Notes on
// the protocol"). Against a server without that extension (it refuses or ignores `auth` on the
// voice stream, or hangs up after each session) it turns to per-session mode, and each
// VoiceSession opens a connection of its own, as it does without a stream.
//
// Threads: public methods may be called from any thread; observers run on the connection's io
// thread and must not block.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "olympus/connection.hpp"

namespace olympus {

/// What the server turned out to support.
enum class StreamMode {
    probing,      ///< the first `auth` has not been answered yet
    warm,         ///< `auth` was accepted: sessions ride this connection
    per_session,  ///< not supported: every session opens its own connection
};
const char* to_string(StreamMode mode);

class VoiceStream {
public:
    using ModeObserver = std::function<void(StreamMode mode, const std::string& why)>;

    /// Validates `options` (throws std::invalid_argument). The auth mode is always "first
    /// message"; the link stays down until start().
    explicit VoiceStream(ConnectionOptions options);
    /// Closes the link and joins its io thread (unless shared). Sessions riding the stream
    /// must be destroyed first.
    ~VoiceStream();
    VoiceStream(const VoiceStream&) = delete;
    VoiceStream& operator=(const VoiceStream&) = delete;

    /// Connects and authenticates. Idempotent.
    void start();
    /// Closes the link for good (a session riding it fails). Idempotent.
    void close();

    StreamMode mode() const;
    /// True while the warm link is authenticated and no session rides it.
    bool idle() const;
    /// Blocks until the mode is known (per_session, or warm with the link authenticated) or
    /// `timeout` passes; returns the mode then.
    StreamMode wait_ready(std::chrono::milliseconds timeout) const;

    /// The warm link (in per-session mode: closed).
    const Connection& connection() const;
    const ConnectionOptions& options() const;

    /// Called when the mode is decided, with the reason in words, and once more if a warm
    /// stream later turns per-session (the server hung up right after a session).
    void add_mode_observer(ModeObserver observer);
    /// The warm link's state changes (connecting, connected, reconnecting, ...).
    void add_state_observer(Connection::StateObserver observer);

    class Impl;

private:
    std::shared_ptr<Impl> impl_;
    friend class VoiceSession;
};

}  // namespace olympus
