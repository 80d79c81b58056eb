// Behaviour shared by the emulated endpoints; see emulated_connection.hpp.
#include "emulated_connection.hpp"

namespace olympus::emulator {
namespace {

// A peer that lets this much pile up unread is cut off: it is not reading.
constexpr std::size_t kMaxUnreadBytes = 8 << 20;

}  // namespace

EmulatedConnection::EmulatedConnection(ServerContext& context, std::unique_ptr<Transport> transport)
    : ctx_(context),
      transport_(std::move(transport)),
      auth_timer_(context.io),
      ping_timer_(context.io),
      pong_timer_(context.io),
      idle_timer_(context.io),
      outbox_timer_(context.io),
      last_inbound_(Clock::now()),
      expiry_timer_(context.io) {}

EmulatedConnection::~EmulatedConnection() = default;

void EmulatedConnection::start_timers() {
    arm_idle();
    if (!authenticated_) {
        arm(auth_timer_, ctx_.options.auth_timeout, [this] {
            if (!authenticated_) {
                close(4001, "authentication timeout");
            }
        });
    }
}

bool EmulatedConnection::accept_token(const std::string& token, bool reauth) {
    // Signature, algorithm and expiry.
    TokenClaims claims;
    if (auto ec = ctx_.key.verify(token, claims)) {
        reject_auth("Access token is expired or invalid: " + ec.message());
        return false;
    }
    if (reauth && claims.user_id != claims_.user_id) {
        reject_auth("a fresh token must belong to the same user");
        return false;
    }

    // The connection limit counts authenticated connections per user.
    if (!reauth) {
        auto& count = ctx_.connections_per_user[claims.user_id];
        if (count >= ctx_.options.max_connections_per_user) {
            send_error(nullptr, "connection_limit",
                       "maximum of " + std::to_string(ctx_.options.max_connections_per_user) +
                           " connections per user reached");
            close(1008, "connection limit");
            return false;
        }
        ++count;
        counted_for_user_ = true;
    }
    claims_ = std::move(claims);
    arm_expiry();
    return true;
}

void EmulatedConnection::reject_auth(const std::string& message) {
    ctx_.stats.error("invalid_token");
    send({{"type", "auth_error"}, {"code", "invalid_token"}, {"message", message}});
    close(1008, "invalid token");
}

void EmulatedConnection::arm_expiry() {
    auto left = claims_.expires_at - std::chrono::system_clock::now();
    arm(expiry_timer_, std::chrono::duration_cast<Clock::duration>(left), [this] {
        if (claims_.expires_at <= std::chrono::system_clock::now()) {
            reject_auth("Access token expired; re-authenticate before expires_at");
        } else {
            arm_expiry();
        }
    });
}

void EmulatedConnection::authenticated() {
    if (authenticated_) {
        return;
    }
    authenticated_ = true;
    auth_timer_.cancel();
    arm_ping();
}

void EmulatedConnection::on_text(const std::string& text) {
    touch();
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
    const auto name = type->get<std::string>();
    ctx_.stats.received(name);
    auto id = message.find("id");
    if (id != message.end() && !id->is_null() && !id->is_string() && !id->is_number_integer()) {
        send_error(nullptr, "invalid_message", "\"id\" must be a string or an integer");
        return;
    }

    // The heartbeat is the same on every endpoint.
    if (name == "pong") {
        awaiting_pong_ = false;
        pong_timer_.cancel();
        return;
    }
    if (name == "ping") {
        answer_ping(message);
        return;
    }
    handle(message, name);
}

void EmulatedConnection::answer_ping(const nlohmann::json& message) {
    auto stamp = message.find("timestamp");
    send({{"type", "pong"},
          {"timestamp", stamp != message.end() && stamp->is_string()
                            ? stamp->get<std::string>()
                            : rfc3339(std::chrono::system_clock::now())}});
}

bool EmulatedConnection::may_send() {
    if (closed_ || closing_ || ctx_.silent) {
        return false;
    }
    if (unread_bytes() > kMaxUnreadBytes) {
        ctx_.stats.error("slow_consumer");
        close(1008, "peer is not reading");
        return false;
    }
    return true;
}

void EmulatedConnection::send(const nlohmann::json& message) {
    if (may_send()) {
        ctx_.stats.sent(message.value("type", "?"));
        enqueue({Clock::now() + ctx_.frame_delay, message.dump(), false, 0, {}});
    }
}

void EmulatedConnection::send_binary(std::string bytes) {
    if (may_send()) {
        ctx_.stats.sent("<binary>");
        enqueue({Clock::now() + ctx_.frame_delay, std::move(bytes), true, 0, {}});
    }
}

void EmulatedConnection::send_error(const nlohmann::json& id, const std::string& code,
                                    const std::string& text) {
    ctx_.stats.error(code);
    nlohmann::json frame = {{"type", "error"}, {"code", code}, {"message", text}};
    if (!id.is_null()) {
        frame["id"] = id;
    }
    send(frame);
}

void EmulatedConnection::close(int code, const std::string& reason) {
    if (closed_ || closing_) {
        return;
    }
    closing_ = true;
    ctx_.stats.closed_with(code);
    enqueue({Clock::now() + ctx_.frame_delay, {}, false, code, reason});
}

void EmulatedConnection::enqueue(Outgoing out) {
    // Without a delay and with nothing waiting, a frame goes straight out.
    if (outbox_.empty() && ctx_.frame_delay.count() == 0) {
        deliver(out);
        return;
    }
    outbox_.push_back(std::move(out));
    if (outbox_.size() == 1) {
        flush_outbox();
    }
}

void EmulatedConnection::deliver(Outgoing& out) {
    if (out.close_code != 0) {
        transport_->close(out.close_code, out.close_reason);
    } else if (out.binary) {
        transport_->send_binary(out.payload);
    } else {
        transport_->send_text(out.payload);
    }
}

void EmulatedConnection::flush_outbox() {
    // Frames leave in order, each no earlier than its due time.
    auto now = Clock::now();
    while (!outbox_.empty() && outbox_.front().due <= now) {
        auto out = std::move(outbox_.front());
        outbox_.pop_front();
        deliver(out);
    }
    if (!outbox_.empty()) {
        arm(outbox_timer_, outbox_.front().due - now, [this] { flush_outbox(); });
    }
}

void EmulatedConnection::arm_ping() {
    if (!ctx_.pings_enabled) {
        return;
    }
    arm(ping_timer_, ctx_.options.ping_interval, [this] { on_ping_due(); });
}

void EmulatedConnection::on_ping_due() {
    if (!ctx_.pings_enabled || ctx_.silent) {
        arm_ping();
        return;
    }

    // Each ping opens a pong window; a missing pong ends the connection with 4000.
    send({{"type", "ping"}, {"timestamp", rfc3339(std::chrono::system_clock::now())}});
    if (!awaiting_pong_) {
        awaiting_pong_ = true;
        arm(pong_timer_, ctx_.options.pong_timeout, [this] {
            if (awaiting_pong_ && ctx_.pings_enabled) {
                close(4000, "heartbeat timeout");
            }
        });
    }
    arm_ping();
}

void EmulatedConnection::arm_idle() {
    // Fires at the idle deadline measured from the last inbound frame, re-arming when
    // something arrived in between.
    auto deadline = last_inbound_ + ctx_.options.idle_timeout;
    arm(idle_timer_, deadline - Clock::now(), [this] {
        if (Clock::now() - last_inbound_ >= ctx_.options.idle_timeout) {
            close(4002, "idle timeout");
        } else {
            arm_idle();
        }
    });
}

void EmulatedConnection::on_closed() {
    closed_ = true;
    for (auto* timer :
         {&auth_timer_, &ping_timer_, &pong_timer_, &idle_timer_, &outbox_timer_, &expiry_timer_}) {
        timer->cancel();
    }
    outbox_.clear();
    if (counted_for_user_) {
        auto it = ctx_.connections_per_user.find(claims_.user_id);
        if (it != ctx_.connections_per_user.end() && --it->second == 0) {
            ctx_.connections_per_user.erase(it);
        }
        counted_for_user_ = false;
    }
    released();
}

void EmulatedConnection::drop(DropMode mode) {
    if (closed_) {
        return;
    }
    if (mode == DropMode::abort) {
        transport_->abort();
        return;
    }
    // A going-away close is sent even when frames are delayed or the server is silent.
    outbox_.clear();
    closing_ = true;
    ctx_.stats.closed_with(1001);
    transport_->close(1001, "server going away");
}

void EmulatedConnection::faults_changed() {
    if (closed_ || !authenticated_) {
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
