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

std::string describe(const std::error_code& ec) {
    return ec.message();
}

}  // namespace

GatewayConnection::GatewayConnection(ServerContext& context, std::unique_ptr<Transport> transport,
                                     std::optional<std::string> presented_token)
    : ctx_(context),
      transport_(std::move(transport)),
      presented_token_(std::move(presented_token)),
      auth_timer_(context.io),
      ping_timer_(context.io),
      pong_timer_(context.io),
      idle_timer_(context.io),
      expiry_timer_(context.io),
      outbox_timer_(context.io),
      last_inbound_(Clock::now()),
      request_tokens_(context.options.request_burst),
      tokens_updated_(Clock::now()),
      rng_(context.options.seed ^ reinterpret_cast<std::uintptr_t>(this)) {}

GatewayConnection::~GatewayConnection() = default;

template <typename Fn>
void GatewayConnection::arm(asio::steady_timer& timer, Clock::duration after, Fn fn) {
    timer.expires_after(after);
    timer.async_wait([weak = weak_from_this(), fn](const std::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->closed_) {
            return;
        }
        fn(*self);
    });
}

void GatewayConnection::start() {
    // The idle clock runs from the moment the connection opens.
    arm_idle();

    // A token in the URL or the Authorization header is checked right away.
    if (presented_token_) {
        authenticate(*presented_token_, false);
        return;
    }
    arm(auth_timer_, ctx_.options.auth_timeout, [](GatewayConnection& self) {
        if (self.state_ == State::awaiting_auth) {
            self.close(4001, "authentication timeout");
        }
    });
}

void GatewayConnection::on_text(const std::string& text) {
    last_inbound_ = Clock::now();
    auto message = nlohmann::json::parse(text, nullptr, false);
    if (message.is_discarded()) {
        ctx_.stats.received("<malformed>");
        send_error(nullptr, "invalid_message", "message is not valid JSON");
        return;
    }
    auto type = message.is_object() ? message.find("type") : message.end();
    if (!message.is_object() || type == message.end() || !type->is_string()) {
        ctx_.stats.received("<untyped>");
        send_error(nullptr, "invalid_message", "message must be an object with a string \"type\"");
        return;
    }
    ctx_.stats.received(type->get<std::string>());
    handle(message);
}

void GatewayConnection::on_binary(const std::string&) {
    last_inbound_ = Clock::now();
    ctx_.stats.received("<binary>");
    send_error(nullptr, "invalid_message", "binary frames are not accepted on the gateway");
}

void GatewayConnection::handle(const nlohmann::json& message) {
    const auto type = message["type"].get<std::string>();
    nlohmann::json id = message.contains("id") ? message["id"] : nlohmann::json();
    if (!id.is_null() && !id.is_string() && !id.is_number_integer()) {
        send_error(nullptr, "invalid_message", "\"id\" must be a string or an integer");
        return;
    }

    // Heartbeat and auth are always allowed; everything else needs an identity.
    if (type == "pong") {
        awaiting_pong_ = false;
        pong_timer_.cancel();
        return;
    }
    if (type == "ping") {
        handle_ping(message);
        return;
    }
    if (type == "auth") {
        handle_auth(message);
        return;
    }
    if (state_ != State::authenticated) {
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
        ctx_.stats.error("invalid_message");
        send_error(message.value("id", nlohmann::json()), "invalid_message",
                   "auth needs a string \"token\"");
        return;
    }
    authenticate(token->get<std::string>(), state_ == State::authenticated);
}

void GatewayConnection::authenticate(const std::string& token, bool reauth) {
    // Signature, algorithm and expiry.
    TokenClaims claims;
    if (auto ec = ctx_.key.verify(token, claims)) {
        reject_auth("Access token is expired or invalid: " + describe(ec));
        return;
    }
    if (reauth && claims.user_id != claims_.user_id) {
        reject_auth("a fresh token must belong to the same user");
        return;
    }

    // The connection limit counts authenticated connections per user.
    if (!reauth) {
        auto& count = ctx_.connections_per_user[claims.user_id];
        if (count >= ctx_.options.max_connections_per_user) {
            ctx_.stats.error("connection_limit");
            send(
                {{"type", "error"},
                 {"code", "connection_limit"},
                 {"message", "maximum of " + std::to_string(ctx_.options.max_connections_per_user) +
                                 " connections per user reached"}});
            close(1008, "connection limit");
            return;
        }
        ++count;
        counted_for_user_ = true;
    }

    // Authenticated: from now on the heartbeat runs and the token's expiry is watched.
    claims_ = std::move(claims);
    state_ = State::authenticated;
    auth_timer_.cancel();
    send({{"type", "auth_success"},
          {"user_id", claims_.user_id},
          {"tenant_id", claims_.tenant_id},
          {"permissions", claims_.permissions},
          {"expires_at", rfc3339_seconds(claims_.expires_at)}});
    arm_expiry();
    if (!reauth) {
        arm_ping();
    }
}

void GatewayConnection::reject_auth(const std::string& message) {
    ctx_.stats.error("invalid_token");
    send({{"type", "auth_error"}, {"code", "invalid_token"}, {"message", message}});
    close(1008, "invalid token");
}

void GatewayConnection::handle_subscribe(const nlohmann::json& message) {
    const nlohmann::json id = message.value("id", nlohmann::json());
    auto channel = message.find("channel");
    if (channel == message.end() || !channel->is_string()) {
        send_failed_response(id, "invalid_message", "subscribe needs a string \"channel\"");
        return;
    }
    auto params = message.value("params", nlohmann::json::object());
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
    if (!has_permission(claims_, name)) {
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

void GatewayConnection::handle_ping(const nlohmann::json& message) {
    auto stamp = message.find("timestamp");
    send({{"type", "pong"},
          {"timestamp", stamp != message.end() && stamp->is_string()
                            ? stamp->get<std::string>()
                            : rfc3339(std::chrono::system_clock::now())}});
}

void GatewayConnection::send(const nlohmann::json& message) {
    if (closed_ || state_ == State::closing || ctx_.silent) {
        return;
    }
    ctx_.stats.sent(message.value("type", "?"));
    enqueue({Clock::now() + ctx_.frame_delay, message.dump(), 0, {}});
}

void GatewayConnection::send_error(const nlohmann::json& id, const std::string& code,
                                   const std::string& text) {
    ctx_.stats.error(code);
    nlohmann::json frame = {{"type", "error"}, {"code", code}, {"message", text}};
    if (!id.is_null()) {
        frame["id"] = id;
    }
    send(frame);
}

void GatewayConnection::send_failed_response(const nlohmann::json& id, const std::string& code,
                                             const std::string& text) {
    ctx_.stats.error(code);
    send(
        {{"type", "response"}, {"id", id}, {"success", false}, {"error", code}, {"message", text}});
}

void GatewayConnection::close(int code, const std::string& reason) {
    if (closed_ || state_ == State::closing) {
        return;
    }
    state_ = State::closing;
    ctx_.stats.closed_with(code);
    enqueue({Clock::now() + ctx_.frame_delay, {}, code, reason});
}

void GatewayConnection::enqueue(Outgoing out) {
    // Without a delay and with nothing waiting, a frame goes straight out.
    if (outbox_.empty() && ctx_.frame_delay.count() == 0) {
        if (out.close_code != 0) {
            transport_->close(out.close_code, out.close_reason);
        } else {
            transport_->send_text(out.text);
        }
        return;
    }
    outbox_.push_back(std::move(out));
    if (outbox_.size() == 1) {
        flush_outbox();
    }
}

void GatewayConnection::flush_outbox() {
    // Frames leave in order, each no earlier than its due time.
    auto now = Clock::now();
    while (!outbox_.empty() && outbox_.front().due <= now) {
        auto out = std::move(outbox_.front());
        outbox_.pop_front();
        if (out.close_code != 0) {
            transport_->close(out.close_code, out.close_reason);
        } else {
            transport_->send_text(out.text);
        }
    }
    if (!outbox_.empty()) {
        arm(outbox_timer_, outbox_.front().due - now,
            [](GatewayConnection& self) { self.flush_outbox(); });
    }
}

void GatewayConnection::arm_ping() {
    if (!ctx_.pings_enabled) {
        return;
    }
    arm(ping_timer_, ctx_.options.ping_interval,
        [](GatewayConnection& self) { self.on_ping_due(); });
}

void GatewayConnection::on_ping_due() {
    if (!ctx_.pings_enabled || ctx_.silent) {
        arm_ping();
        return;
    }

    // Each ping opens a pong window; a missing pong ends the connection with 4000.
    send({{"type", "ping"}, {"timestamp", rfc3339(std::chrono::system_clock::now())}});
    if (!awaiting_pong_) {
        awaiting_pong_ = true;
        arm(pong_timer_, ctx_.options.pong_timeout, [](GatewayConnection& self) {
            if (self.awaiting_pong_ && self.ctx_.pings_enabled) {
                self.close(4000, "heartbeat timeout");
            }
        });
    }
    arm_ping();
}

void GatewayConnection::arm_idle() {
    // Fires at the idle deadline measured from the last inbound frame, re-arming when
    // something arrived in between.
    auto deadline = last_inbound_ + ctx_.options.idle_timeout;
    arm(idle_timer_, deadline - Clock::now(), [](GatewayConnection& self) {
        if (Clock::now() - self.last_inbound_ >= self.ctx_.options.idle_timeout) {
            self.close(4002, "idle timeout");
        } else {
            self.arm_idle();
        }
    });
}

void GatewayConnection::arm_expiry() {
    auto left = claims_.expires_at - std::chrono::system_clock::now();
    arm(expiry_timer_, std::chrono::duration_cast<Clock::duration>(left),
        [](GatewayConnection& self) {
            if (self.claims_.expires_at <= std::chrono::system_clock::now()) {
                self.reject_auth("Access token expired; re-authenticate before expires_at");
            } else {
                self.arm_expiry();
            }
        });
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
    arm(*it->second.timer, after,
        [subscription_id](GatewayConnection& self) { self.emit_event(subscription_id); });
}

void GatewayConnection::emit_event(const std::string& subscription_id) {
    auto it = subscriptions_.find(subscription_id);
    if (it == subscriptions_.end()) {
        return;
    }

    // A peer that stopped reading gets no more events until it catches up.
    if (transport_->buffered_bytes() < kMaxBufferedBytes && !ctx_.silent) {
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

void GatewayConnection::on_closed() {
    closed_ = true;
    for (auto* timer :
         {&auth_timer_, &ping_timer_, &pong_timer_, &idle_timer_, &expiry_timer_, &outbox_timer_}) {
        timer->cancel();
    }
    subscriptions_.clear();
    outbox_.clear();
    if (counted_for_user_) {
        auto it = ctx_.connections_per_user.find(claims_.user_id);
        if (it != ctx_.connections_per_user.end() && --it->second == 0) {
            ctx_.connections_per_user.erase(it);
        }
        counted_for_user_ = false;
    }
}

void GatewayConnection::drop(DropMode mode) {
    if (closed_) {
        return;
    }
    if (mode == DropMode::abort) {
        transport_->abort();
        return;
    }
    // A going-away close is sent even when frames are delayed or the server is silent.
    outbox_.clear();
    state_ = State::closing;
    ctx_.stats.closed_with(1001);
    transport_->close(1001, "server going away");
}

void GatewayConnection::faults_changed() {
    if (closed_ || state_ != State::authenticated) {
        return;
    }
    if (ctx_.pings_enabled) {
        arm_ping();
    } else {
        ping_timer_.cancel();
        pong_timer_.cancel();
        awaiting_pong_ = false;
    }
}

}  // namespace olympus::emulator
