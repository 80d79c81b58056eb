// Internal: the warm voice stream as a VoiceSession sees it. The stream owns the Connection and
// hands each frame to the one session riding it (its tenant); everything here runs on the
// connection's io thread unless marked "any thread".
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "olympus/log.hpp"
#include "olympus/voice_stream.hpp"

namespace olympus::detail {

/// A session riding a warm stream. io thread only.
class StreamTenant {
public:
    virtual ~StreamTenant() = default;
    /// The link is authenticated (at attach time, or again after a drop): start or resume.
    virtual void on_stream_ready(const std::string& token) = 0;
    /// The link dropped; the stream reconnects by itself.
    virtual void on_stream_down(std::error_code reason) = 0;
    /// The stream stopped for good, or turned out not to support warm connections.
    virtual void on_stream_failed(std::error_code reason, const std::string& why) = 0;
    virtual void on_stream_message(const nlohmann::json& message) = 0;
    virtual void on_stream_binary(std::string_view bytes) = 0;
};

}  // namespace olympus::detail

namespace olympus {

/*
 * The stream's mode, decided once:
 *
 *   probing ──auth_success──► warm ──server closes (1000) right after a session──► per_session
 *      │                       (reconnects keep it warm)
 *      └──`error` answering auth / no answer (auth timeout, 4001)──► per_session
 *
 * In per_session mode the warm link is closed; sessions open their own.
 */
class VoiceStream::Impl : public std::enable_shared_from_this<VoiceStream::Impl> {
public:
    explicit Impl(ConnectionOptions options);

    // Setup: the hooks hold a weak reference, so this runs after make_shared.
    void init();

    // Any thread.
    Connection& connection() { return *connection_; }
    StreamMode mode() const;
    bool idle() const;
    StreamMode wait_ready(std::chrono::milliseconds timeout) const;
    void add_mode_observer(ModeObserver observer);

    // io thread.
    /// Takes `tenant` as the session riding the stream; false when another one does.
    bool attach(std::weak_ptr<detail::StreamTenant> tenant);
    /// Lets go of `tenant` (no more frames reach it). A finished session calls this.
    void detach(const detail::StreamTenant* tenant);
    /// The link is authenticated now.
    bool ready() const { return authenticated_; }
    /// The token the link authenticated with, for start_session's access_token.
    const std::string& token() const { return token_; }

    const ConnectionOptions options_;

private:
    std::string opening_frame(const std::string& token);
    void on_connected(bool first);
    void on_link_down(std::error_code reason);
    void on_message(const nlohmann::json& message);
    void on_binary(std::string_view bytes);
    void on_state(const StateChange& change);
    void decide(StreamMode mode, const std::string& why);
    std::shared_ptr<detail::StreamTenant> tenant() const { return tenant_.lock(); }

    const std::shared_ptr<spdlog::logger> logger_;

    // Any thread: the mode and readiness, under mutex_ (pairs with ready_cv_).
    mutable std::mutex mutex_;
    mutable std::condition_variable ready_cv_;
    StreamMode mode_ = StreamMode::probing;
    bool authenticated_shared_ = false;
    bool attached_shared_ = false;
    std::vector<ModeObserver> mode_observers_;

    // io thread only.
    std::weak_ptr<detail::StreamTenant> tenant_;
    bool attached_ = false;
    bool authenticated_ = false;
    std::string token_;
    std::uint64_t sessions_on_link_ = 0;        ///< session_ended seen on the current link
    StreamMode decided_ = StreamMode::probing;  ///< mode_ follows once observers heard it

    // Declared last, destroyed first: its io thread stops while everything above still lives.
    std::unique_ptr<Connection> connection_;
};

}  // namespace olympus
