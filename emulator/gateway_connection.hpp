// One emulated gateway connection (`/v1`, `/v1/ws`): authentication, heartbeat, requests,
// subscriptions with their event streams, limits and fault behaviour. io thread only.
//
//   open ──(token in query/header valid)──────────────┐
//     │                                                ▼
//     └─(no token)─► awaiting_auth ──auth ok──► authenticated ──auth_error/timeout──► closing
//                         │ auth_timeout → 4001             │ token expires → 1008
//                         └ bad token → auth_error + 1008   └ pong missing → 4000, idle → 4002
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "server_context.hpp"

namespace olympus::emulator {

class GatewayConnection : public Session, public std::enable_shared_from_this<GatewayConnection> {
public:
    /// `presented_token` is the token from the query string or Authorization header, if any.
    GatewayConnection(ServerContext& context, std::unique_ptr<Transport> transport,
                      std::optional<std::string> presented_token);
    ~GatewayConnection() override;

    /// Called once the WebSocket is open: checks a presented token or starts the auth timer.
    void start();

    void on_text(const std::string& text) override;
    void on_binary(const std::string& bytes) override;
    void on_closed() override;
    void drop(DropMode mode) override;
    void faults_changed() override;

private:
    enum class State { awaiting_auth, authenticated, closing };

    struct Subscription {
        std::string channel;
        nlohmann::json params;
        std::unique_ptr<asio::steady_timer> timer;
    };

    struct Outgoing {
        std::chrono::steady_clock::time_point due;
        std::string text;  ///< frame to send, when close_code is 0
        int close_code = 0;
        std::string close_reason;
    };

    // Inbound dispatch.
    void handle(const nlohmann::json& message);
    void handle_auth(const nlohmann::json& message);
    void handle_subscribe(const nlohmann::json& message);
    void handle_unsubscribe(const nlohmann::json& message);
    void handle_ping(const nlohmann::json& message);
    bool take_request_token(const nlohmann::json& id);

    // Authentication.
    void authenticate(const std::string& token, bool reauth);
    void reject_auth(const std::string& message);

    // Outbound, through the frame-delay queue.
    void send(const nlohmann::json& message);
    void send_error(const nlohmann::json& id, const std::string& code, const std::string& text);
    void send_failed_response(const nlohmann::json& id, const std::string& code,
                              const std::string& text);
    void close(int code, const std::string& reason);
    void enqueue(Outgoing out);
    void flush_outbox();

    // Timers.
    void arm_ping();
    void on_ping_due();
    void arm_idle();
    void arm_expiry();
    void arm_events(const std::string& subscription_id);
    void emit_event(const std::string& subscription_id);
    template <typename Fn>
    void arm(asio::steady_timer& timer, std::chrono::steady_clock::duration after, Fn fn);

    ServerContext& ctx_;
    std::unique_ptr<Transport> transport_;
    std::optional<std::string> presented_token_;
    State state_ = State::awaiting_auth;
    bool closed_ = false;

    // Identity, once authenticated.
    TokenClaims claims_;
    bool counted_for_user_ = false;

    // Heartbeat and timeouts.
    asio::steady_timer auth_timer_;
    asio::steady_timer ping_timer_;
    asio::steady_timer pong_timer_;
    asio::steady_timer idle_timer_;
    asio::steady_timer expiry_timer_;
    asio::steady_timer outbox_timer_;
    bool awaiting_pong_ = false;
    std::chrono::steady_clock::time_point last_inbound_;

    // Requests and subscriptions.
    double request_tokens_;
    std::chrono::steady_clock::time_point tokens_updated_;
    std::map<std::string, Subscription> subscriptions_;
    std::uint64_t next_subscription_ = 0;
    std::mt19937_64 rng_;

    std::deque<Outgoing> outbox_;
};

}  // namespace olympus::emulator
