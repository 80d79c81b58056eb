// One emulated gateway connection (`/v1`, `/v1/ws`): authentication three ways, requests,
// subscriptions with their event streams and the gateway's limits. io thread only.
//
//   open ──(token in query or header)──► check ──ok──► authenticated ──token expires──► 1008
//     └──(none)──► awaiting auth ──auth ok──┘  └─bad──► auth_error, 1008
//                     └─ auth timeout ──► 4001
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "emulated_connection.hpp"

namespace olympus::emulator {

class GatewayConnection : public EmulatedConnection {
public:
    /// `presented_token` is the token from the query string or Authorization header, if any.
    GatewayConnection(ServerContext& context, std::unique_ptr<Transport> transport,
                      std::optional<std::string> presented_token);

    /// Called once the WebSocket is open: checks a presented token or starts the auth timer.
    void start();

    void on_binary(const std::string& bytes) override;

private:
    struct Subscription {
        std::string channel;
        nlohmann::json params;
        std::unique_ptr<asio::steady_timer> timer;
    };

    void handle(const nlohmann::json& message, const std::string& type) override;
    void released() override;

    void handle_auth(const nlohmann::json& message);
    void handle_subscribe(const nlohmann::json& message);
    void handle_unsubscribe(const nlohmann::json& message);
    bool take_request_token(const nlohmann::json& id);

    void authenticate(const std::string& token, bool reauth);
    void send_failed_response(const nlohmann::json& id, const std::string& code,
                              const std::string& text);

    void arm_events(const std::string& subscription_id);
    void emit_event(const std::string& subscription_id);

    std::optional<std::string> presented_token_;

    // Requests and subscriptions.
    double request_tokens_;
    Clock::time_point tokens_updated_;
    std::map<std::string, Subscription> subscriptions_;
    std::uint64_t next_subscription_ = 0;
    std::mt19937_64 rng_;
};

}  // namespace olympus::emulator
