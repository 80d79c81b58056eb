// What every emulated WebSocket connection does, whatever its endpoint: the auth timeout, the
// heartbeat, the idle timeout, outbound frames through the frame-delay queue, closing, and the
// fault controls. The gateway and the voice stream derive from it. io thread only.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "server_context.hpp"

namespace olympus::emulator {

class EmulatedConnection : public Session, public std::enable_shared_from_this<EmulatedConnection> {
public:
    EmulatedConnection(ServerContext& context, std::unique_ptr<Transport> transport);
    ~EmulatedConnection() override;

    /// Parses a text frame, counts it, answers heartbeat frames, and hands the rest to handle().
    void on_text(const std::string& text) final;
    void on_closed() final;
    void drop(DropMode mode) final;
    void faults_changed() final;

protected:
    using Clock = std::chrono::steady_clock;

    /// A well-formed frame with a string "type" that is not ping or pong.
    virtual void handle(const nlohmann::json& message, const std::string& type) = 0;
    /// The connection is gone: cancel the derived class's timers and release what it holds.
    virtual void released() = 0;

    /// Checks `token` (signature, algorithm, expiry; the same user on re-authentication) and,
    /// on a first authentication, the per-user connection limit. On success claims() holds the
    /// token's claims and its expiry is watched; on failure the peer got auth_error or
    /// connection_limit, the connection is closing, and false comes back.
    bool accept_token(const std::string& token, bool reauth);
    const TokenClaims& claims() const { return claims_; }

    /// Starts the idle clock and, unless authenticated first, the auth timeout.
    void start_timers();
    /// Stops the auth timeout and starts the heartbeat; call once, on first authentication.
    void authenticated();
    bool is_authenticated() const { return authenticated_; }
    bool is_closed() const { return closed_ || closing_; }
    /// Counts an inbound binary frame as activity.
    void touch() { last_inbound_ = Clock::now(); }

    void send(const nlohmann::json& message);
    void send_binary(std::string bytes);
    void send_error(const nlohmann::json& id, const std::string& code, const std::string& text);
    void close(int code, const std::string& reason);
    /// Bytes the peer has not read yet.
    std::size_t unread_bytes() const { return transport_->buffered_bytes(); }

    /// Runs `fn` after `after` unless the timer is cancelled or the connection is gone; `fn`
    /// may use `this`, which is checked alive (through a weak pointer) before it runs.
    template <typename Fn>
    void arm(asio::steady_timer& timer, Clock::duration after, Fn fn) {
        timer.expires_after(after);
        timer.async_wait([weak = weak_from_this(), fn](const std::error_code& ec) {
            auto self = weak.lock();
            if (ec || !self || self->closed_) {
                return;
            }
            fn();
        });
    }

    ServerContext& ctx_;

private:
    struct Outgoing {
        Clock::time_point due;
        std::string payload;
        bool binary = false;
        int close_code = 0;  ///< a close frame when non-zero
        std::string close_reason;
    };

    /// False when nothing may go out now: closing, silenced, or the peer stopped reading (which
    /// also starts the close).
    bool may_send();
    void enqueue(Outgoing out);
    void deliver(Outgoing& out);
    void flush_outbox();
    void arm_ping();
    void on_ping_due();
    void arm_idle();
    void answer_ping(const nlohmann::json& message);
    void reject_auth(const std::string& message);
    void arm_expiry();

    std::unique_ptr<Transport> transport_;
    bool authenticated_ = false;
    bool closing_ = false;  ///< a close frame is queued or sent
    bool closed_ = false;   ///< the transport is gone

    asio::steady_timer auth_timer_;
    asio::steady_timer ping_timer_;
    asio::steady_timer pong_timer_;
    asio::steady_timer idle_timer_;
    asio::steady_timer outbox_timer_;
    bool awaiting_pong_ = false;
    Clock::time_point last_inbound_;
    std::deque<Outgoing> outbox_;

    // Identity, once authenticated.
    TokenClaims claims_;
    bool counted_for_user_ = false;
    asio::steady_timer expiry_timer_;
};

}  // namespace olympus::emulator
