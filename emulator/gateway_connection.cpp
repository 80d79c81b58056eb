// Emulated gateway connection; see gateway_connection.hpp.
#include "gateway_connection.hpp"

#include <algorithm>
#include <cmath>

#include "olympus/log.hpp"

namespace olympus::emulator {
namespace {

using Clock = std::chrono::steady_clock;

// The server stops generating events for a connection whose peer lets this much pile up
// unread, so that a slow reader cannot make the emulator's memory grow without bound.
constexpr std::size_t kMaxBufferedBytes = 1 << 20;
constexpr std::size_t kMaxSubscriptionIdBytes = 128;

bool has_permission(const TokenClaims& claims, const std::string& channel) {
    // The docs spell permissions both "orders.read" and "orders:read".
    for (const auto& p : claims.permissions) {
        if (p == channel + ".read" || p == channel + ":read" || p == channel + ".*" ||
            p == channel + ":*" || p == "*") {
            return true;
        }
    }
    return false;
}

}  // namespace

GatewayConnection::GatewayConnection(ServerContext& context, std::unique_ptr<Transport> transport,
                                     std::optional<std::string> presented_token)
    : EmulatedConnection(context, std::move(transport)),
      presented_token_(std::move(presented_token)),
      request_tokens_(context.options.request_burst),
      tokens_updated_(Clock::now()),
      rng_(context.options.seed ^ reinterpret_cast<std::uintptr_t>(this)) {}

void GatewayConnection::start() {
    // A token in the URL or the Authorization header is checked right away.
    if (presented_token_) {
        authenticate(*presented_token_, false);
    }
    start_timers();
}

void GatewayConnection::on_binary(const std::string&) {
    touch();
    ctx_.stats.received("<binary>");
    send_error(nullptr, "invalid_message", "binary frames are not accepted on the gateway");
}

void GatewayConnection::handle(const nlohmann::json& message, const std::string& type) {
    nlohmann::json id = message.value("id", nlohmann::json());

    // Auth is always allowed; everything else needs an identity.
    if (type == "auth") {
        handle_auth(message);
        return;
    }
    if (!is_authenticated()) {
        send_error(id, "unauthorized", "authenticate before sending \"" + type + "\"");
        return;
    }
    if (!take_request_token(id)) {
        return;
    }
    if (type == "subscribe") {
        handle_subscribe(message);
    } else if (type == "unsubscribe") {
        handle_unsubscribe(message);
    } else {
        send_error(id, "invalid_message", "unknown message type \"" + type + "\"");
    }
}

bool GatewayConnection::take_request_token(const nlohmann::json& id) {
    // A token bucket: `request_burst` at once, refilled at `requests_per_second`.
    auto now = Clock::now();
    double elapsed = std::chrono::duration<double>(now - tokens_updated_).count();
    tokens_updated_ = now;
    request_tokens_ = std::min(ctx_.options.request_burst,
                               request_tokens_ + elapsed * ctx_.options.requests_per_second);
    if (request_tokens_ >= 1.0) {
        request_tokens_ -= 1.0;
        return true;
    }
    double wait_s = (1.0 - request_tokens_) / std::max(ctx_.options.requests_per_second, 1e-3);
    auto retry_after_ms = static_cast<std::int64_t>(std::ceil(wait_s * 1000.0));
    ctx_.stats.error("rate_limited");
    send({{"type", "error"},
          {"id", id},
          {"code", "rate_limited"},
          {"message", "too many requests"},
          {"retry_after_ms", retry_after_ms}});
    return false;
}

void GatewayConnection::handle_auth(const nlohmann::json& message) {
    auto token = message.find("token");
    if (token == message.end() || !token->is_string()) {
        send_error(message.value("id", nlohmann::json()), "invalid_message",
                   "auth needs a string \"token\"");
        return;
    }
    authenticate(token->get<std::string>(), is_authenticated());
}

void GatewayConnection::authenticate(const std::string& token, bool reauth) {
    if (!accept_token(token, reauth)) {
        return;
    }
    const auto& who = claims();
    send({{"type", "auth_success"},
          {"user_id", who.user_id},
          {"tenant_id", who.tenant_id},
          {"permissions", who.permissions},
          {"expires_at", rfc3339_seconds(who.expires_at)}});
    authenticated();
}

void GatewayConnection::handle_subscribe(const nlohmann::json& message) {
    const nlohmann::json id = message.value("id", nlohmann::json());
    auto channel = message.find("channel");
    if (channel == message.end() || !channel->is_string()) {
        send_failed_response(id, "invalid_message", "subscribe needs a string \"channel\"");
        return;
    }
    auto params = message.value("params", nlohmann::json::object());
    if (params.is_null()) {
        params = nlohmann::json::object();
    }
    if (!params.is_object()) {
        send_failed_response(id, "invalid_message", "\"params\" must be an object");
        return;
    }
    const auto name = channel->get<std::string>();
    if (!EventGenerator::is_channel(name)) {
        send_failed_response(id, "invalid_message",
                             "unknown channel \"" + name.substr(0, 64) + "\"");
        return;
    }
    if (!has_permission(claims(), name)) {
        send_failed_response(id, "unauthorized", "token lacks " + name + ".read");
        return;
    }
    if (subscriptions_.size() >= ctx_.options.max_subscriptions) {
        send_failed_response(id, "subscription_limit",
                             "maximum of " + std::to_string(ctx_.options.max_subscriptions) +
                                 " subscriptions per connection reached");
        return;
    }

    // Accepted: answer first, then start this subscription's event stream.
    std::string sub_id =
        "sub-" + std::to_string(++next_subscription_) + "-" + std::to_string(rng_() % 100000);
    subscriptions_.emplace(sub_id, Subscription{name, params, nullptr});
    send({{"type", "response"},
          {"id", id},
          {"success", true},
          {"subscription_id", sub_id},
          {"channel", name},
          {"params", params}});

    // An at-least-once server re-sends what the subscriber may have missed.
    if (ctx_.options.replay_recent_events > 0) {
        auto key = name + "|" + params.value("location_id", std::string());
        for (auto event : ctx_.recent_events[key]) {
            event["subscription_id"] = sub_id;
            send(event);
        }
    }
    arm_events(sub_id);
}

void GatewayConnection::handle_unsubscribe(const nlohmann::json& message) {
    const nlohmann::json id = message.value("id", nlohmann::json());
    auto sub = message.find("subscription_id");
    if (sub == message.end() || !sub->is_string() ||
        sub->get_ref<const std::string&>().size() > kMaxSubscriptionIdBytes) {
        send_failed_response(id, "invalid_message",
                             "unsubscribe needs a string \"subscription_id\"");
        return;
    }
    auto it = subscriptions_.find(sub->get<std::string>());
    if (it == subscriptions_.end()) {
        send_failed_response(id, "invalid_message",
                             "no subscription \"" + sub->get<std::string>() + "\"");
        return;
    }
    subscriptions_.erase(it);
    nlohmann::json response = {{"type", "response"},
                               {"success", true},
                               {"subscription_id", *sub},
                               {"message", "unsubscribed"}};
    if (!id.is_null()) {
        response["id"] = id;
    }
    send(response);
}

void GatewayConnection::send_failed_response(const nlohmann::json& id, const std::string& code,
                                             const std::string& text) {
    ctx_.stats.error(code);
    send(
        {{"type", "response"}, {"id", id}, {"success", false}, {"error", code}, {"message", text}});
}

void GatewayConnection::arm_events(const std::string& subscription_id) {
    if (ctx_.options.events_per_second <= 0) {
        return;
    }
    auto it = subscriptions_.find(subscription_id);
    if (it == subscriptions_.end()) {
        return;
    }

    // Poisson arrivals at the configured mean rate.
    std::exponential_distribution<double> gap(ctx_.options.events_per_second);
    auto after = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(std::min(gap(rng_), 60.0)));
    if (!it->second.timer) {
        it->second.timer = std::make_unique<asio::steady_timer>(ctx_.io);
    }
    arm(*it->second.timer, after, [this, subscription_id] { emit_event(subscription_id); });
}

void GatewayConnection::emit_event(const std::string& subscription_id) {
    auto it = subscriptions_.find(subscription_id);
    if (it == subscriptions_.end()) {
        return;
    }

    // A peer that stopped reading gets no more events until it catches up.
    if (unread_bytes() < kMaxBufferedBytes && !ctx_.silent) {
        const auto& sub = it->second;
        auto body = ctx_.events.next(sub.channel, sub.params);
        nlohmann::json event = {{"type", "event"},
                                {"channel", sub.channel},
                                {"subscription_id", subscription_id},
                                {"event", body["event"]},
                                {"id", ctx_.events.next_id()},
                                {"data", body["data"]},
                                {"timestamp", rfc3339_seconds(std::chrono::system_clock::now())}};
        send(event);
        if (ctx_.options.replay_recent_events > 0) {
            auto& recent = ctx_.recent_events[sub.channel + "|" +
                                              sub.params.value("location_id", std::string())];
            recent.push_back(event);
            while (recent.size() > ctx_.options.replay_recent_events) {
                recent.pop_front();
            }
        }
    }
    arm_events(subscription_id);
}

void GatewayConnection::released() {
    subscriptions_.clear();
}

}  // namespace olympus::emulator
