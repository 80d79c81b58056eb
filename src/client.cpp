// The gateway client; see client.hpp. Client::State holds everything the protocol needs
// (subscriptions, requests in flight, the offline queue, recent event ids) and lives on the
// connection's io thread; public methods post to it.
#include "olympus/client.hpp"

#include <atomic>
#include <deque>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include "olympus/log.hpp"

#include "recent_ids.hpp"
#include "while_alive.hpp"

namespace olympus {

using std::chrono::milliseconds;

std::string gateway_url(Environment environment, std::uint16_t local_port) {
    switch (environment) {
        case Environment::production:
            return "wss://ws.olympuscloud.ai/v1";
        case Environment::staging:
            return "wss://ws.staging.olympuscloud.ai/v1";
        case Environment::development:
            return "wss://ws.dev.olympuscloud.ai/v1";
        case Environment::local:
            break;
    }
    return "ws://127.0.0.1:" + std::to_string(local_port) + "/v1";
}

ClientOptions ClientOptions::for_environment(Environment environment,
                                             std::shared_ptr<TokenProvider> provider) {
    ClientOptions options;
    options.connection.url = gateway_url(environment);
    options.connection.token_provider = std::move(provider);
    return options;
}

void ClientOptions::validate() const {
    connection.validate();
    if (request_timeout.count() <= 0) {
        throw std::invalid_argument("request_timeout must be positive");
    }
    if (max_queued_requests == 0 || max_subscriptions == 0 || dedup_window == 0) {
        throw std::invalid_argument(
            "max_queued_requests, max_subscriptions and dedup_window must be positive");
    }
}

/*
 * Gateway protocol state, io thread only except where marked.
 *
 *   link up ──► re-send every live subscription ──all answered──► ready: flush the queue
 *   link down ─► requests in flight fail (closed); subscriptions stay, without server ids
 */
class Client::State : public std::enable_shared_from_this<Client::State> {
public:
    State(ClientOptions options)
        : options_(std::move(options)),
          logger_(log::get(options_.connection.logger)),
          recent_(options_.dedup_window),
          error_log_(std::chrono::seconds(5)) {}

    // Set once, before the io thread sees any hook; the Connection outlives every call.
    Connection* connection_ = nullptr;

    // ---- any thread ----

    // Reserves one of max_subscriptions; false when all are taken.
    bool reserve_subscription() {
        if (live_.fetch_add(1, std::memory_order_acq_rel) >= options_.max_subscriptions) {
            live_.fetch_sub(1, std::memory_order_acq_rel);
            return false;
        }
        return true;
    }

    // ---- io thread: link events ----

    void on_connected(bool /*first*/) {
        // Re-subscribe first; the queue waits until every subscription is back.
        link_up_ = true;
        ready_ = false;
        resubscribing_ = 0;
        for (auto& [handle, sub] : subs_) {
            ++resubscribing_;
            send_subscribe(handle, true);
        }
        if (resubscribing_ == 0) {
            become_ready();
        }
    }

    void on_link_down(std::error_code reason) {
        // Server-side state is gone with the link; requests in flight cannot be answered.
        link_up_ = false;
        ready_ = false;
        by_server_id_.clear();
        for (auto& [handle, sub] : subs_) {
            sub.server_id.clear();
        }
        auto pending = std::move(pending_);
        pending_.clear();
        for (auto& [id, p] : pending) {
            connection_->cancel(p.timer);
            if (p.kind == Kind::request || p.kind == Kind::unsubscribe) {
                finish(p.on_result, make_error_code(errc::closed), nullptr);
            }
        }
        resubscribing_ = 0;
        logger_->debug("link down reason=\"{}\" live_subscriptions={} queued={}", reason.message(),
                       subs_.size(), queue_.size());
    }

    void on_state(const StateChange& change) {
        if (change.to == ConnectionState::disconnected) {
            terminal_ = true;
            fail_queue(make_error_code(errc::closed));
        }
    }

    // ---- io thread: application requests ----

    void add_subscription(std::uint64_t handle, std::string channel, nlohmann::json params,
                          EventHandler on_event, ResultHandler on_result) {
        auto& sub = subs_[handle];
        sub.channel = std::move(channel);
        sub.params = std::move(params);
        sub.on_event = std::move(on_event);
        sub.on_result = std::move(on_result);
        if (terminal_) {
            end_subscription(handle, make_error_code(errc::closed), nullptr);
        } else if (link_up_) {
            send_subscribe(handle, false);
        }
    }

    void remove_subscription(std::uint64_t handle, ResultHandler on_done) {
        auto it = subs_.find(handle);
        if (it == subs_.end()) {
            finish(on_done, {}, nullptr);
            return;
        }
        auto server_id = it->second.server_id;
        subs_.erase(it);
        live_.fetch_sub(1, std::memory_order_acq_rel);
        if (server_id.empty() || !link_up_) {
            finish(on_done, {}, nullptr);  // the server holds nothing to undo
            return;
        }
        by_server_id_.erase(server_id);
        nlohmann::json message{{"type", "unsubscribe"}, {"subscription_id", server_id}};
        send_tracked(std::move(message), Kind::unsubscribe, 0, std::move(on_done),
                     options_.request_timeout, server_id);
    }

    void add_request(nlohmann::json message, ResultHandler on_result, milliseconds timeout) {
        if (timeout.count() <= 0) {
            timeout = options_.request_timeout;
        }
        // Refuse what can never be sent.
        if (!message.is_object() || !message.contains("type") || !message["type"].is_string()) {
            finish(on_result, make_error_code(errc::invalid_message), nullptr);
            return;
        }
        if (terminal_) {
            finish(on_result, make_error_code(errc::closed), nullptr);
            return;
        }

        // Send now when ready; else wait in the bounded queue, dropping the oldest.
        // TODO: start the timeout when the request is made, not when it is sent; a queued
        // request now waits for as long as the link stays down.
        if (ready_) {
            send_tracked(std::move(message), Kind::request, 0, std::move(on_result), timeout);
            return;
        }
        queue_.push_back(Queued{std::move(message), std::move(on_result), timeout});
        if (queue_.size() > options_.max_queued_requests) {
            auto oldest = std::move(queue_.front());
            queue_.pop_front();
            finish(oldest.on_result, make_error_code(errc::queue_full), nullptr);
        }
        queued_.store(queue_.size(), std::memory_order_relaxed);
    }

    // ---- io thread: inbound frames ----

    void on_message(const nlohmann::json& message) {
        const auto& type = message["type"].get_ref<const std::string&>();
        if (type == "event") {
            on_event(message);
        } else if (type == "response") {
            on_response(message);
        } else if (type == "error") {
            on_error(message);
        } else {
            connection_->report_bad_frame("unknown type '" + type.substr(0, 40) + "'");
        }
    }

    // Counters readable from any thread.
    std::atomic<std::size_t> live_{0};
    std::atomic<std::uint64_t> next_handle_{1};
    std::atomic<std::uint64_t> delivered_{0}, duplicates_{0}, timeouts_{0}, queued_{0};

private:
    enum class Kind { request, subscribe, resubscribe, unsubscribe };

    struct Sub {
        std::string channel;
        nlohmann::json params;
        EventHandler on_event;
        ResultHandler on_result;
        std::string server_id;   // empty while not subscribed on this link
        bool confirmed = false;  // the first subscribe succeeded
    };
    struct Pending {
        Kind kind;
        bool batch;            // one of the re-subscriptions that hold back the queue
        std::uint64_t handle;  // subscriptions only
        ResultHandler on_result;
        Connection::TimerId timer;
        std::string server_id;  // unsubscribe only: matches a reply without an id
    };
    struct Queued {
        nlohmann::json message;
        ResultHandler on_result;
        milliseconds timeout;
    };

    void send_subscribe(std::uint64_t handle, bool batch) {
        auto& sub = subs_[handle];
        nlohmann::json message{{"type", "subscribe"}, {"channel", sub.channel}};
        if (!sub.params.is_null()) {
            message["params"] = sub.params;
        }
        Pending p{
            sub.confirmed ? Kind::resubscribe : Kind::subscribe, batch, handle, nullptr, 0, {}};
        send_tracked(std::move(message), std::move(p), options_.request_timeout);
    }

    void send_tracked(nlohmann::json message, Kind kind, std::uint64_t, ResultHandler on_result,
                      milliseconds timeout, std::string server_id = {}) {
        send_tracked(std::move(message),
                     Pending{kind, false, 0, std::move(on_result), 0, std::move(server_id)},
                     timeout);
    }

    // Gives the message an id, sends it and starts its timeout.
    void send_tracked(nlohmann::json message, Pending p, milliseconds timeout) {
        auto id = "req-" + std::to_string(next_request_++);
        message["id"] = id;
        auto ec = connection_->send_text(message.dump());
        if (ec) {
            complete(p, ec, nullptr);
            return;
        }
        std::weak_ptr<State> weak = weak_from_this();
        p.timer = connection_->call_after(timeout, [weak, id] {
            if (auto self = weak.lock())
                self->on_timeout(id);
        });
        pending_.emplace(id, std::move(p));
    }

    void on_timeout(const std::string& id) {
        auto it = pending_.find(id);
        if (it == pending_.end()) {
            return;
        }
        auto p = std::move(it->second);
        pending_.erase(it);
        timeouts_.fetch_add(1, std::memory_order_relaxed);
        complete(p, make_error_code(errc::timeout), nullptr);
    }

    void on_response(const nlohmann::json& message) {
        // Match by id; the documented unsubscribe reply carries only the subscription_id.
        auto it = pending_.end();
        if (auto id = message.find("id"); id != message.end() && id->is_string()) {
            it = pending_.find(id->get_ref<const std::string&>());
        } else if (auto sid = message.find("subscription_id");
                   sid != message.end() && sid->is_string()) {
            for (auto p = pending_.begin(); p != pending_.end(); ++p) {
                if (p->second.kind == Kind::unsubscribe && p->second.server_id == *sid) {
                    it = p;
                    break;
                }
            }
        }
        if (it == pending_.end()) {
            connection_->report_bad_frame("response to an unknown request id");
            return;
        }
        auto p = std::move(it->second);
        pending_.erase(it);
        connection_->cancel(p.timer);

        // A failed response names its code in "error" (or "code").
        std::error_code ec;
        auto success = message.find("success");
        if (success != message.end() && success->is_boolean() && !success->get<bool>()) {
            auto code = message.value("error", message.value("code", std::string()));
            ec = make_error_code(errc_from_protocol(code));
        }
        complete(p, ec, message);
    }

    void on_error(const nlohmann::json& message) {
        auto code = message.contains("code") && message["code"].is_string()
                        ? message["code"].get<std::string>()
                        : std::string("server_error");

        // An error about one request fails that request.
        if (auto id = message.find("id"); id != message.end() && id->is_string()) {
            if (auto it = pending_.find(id->get_ref<const std::string&>()); it != pending_.end()) {
                auto p = std::move(it->second);
                pending_.erase(it);
                connection_->cancel(p.timer);
                complete(p, make_error_code(errc_from_protocol(code)), message);
                return;
            }
        }

        // Otherwise it is about the link; the server closes it when it must.
        // TODO: honour retry_after_ms of rate_limited by pausing the queue; without it a client
        // that keeps sending keeps being refused until the server's bucket refills.
        std::size_t suppressed = 0;
        if (error_log_.allow(suppressed)) {
            logger_->warn("server error code={} message=\"{}\" (suppressed since last={})", code,
                          message.value("message", std::string()).substr(0, 200), suppressed);
        }
    }

    void on_event(const nlohmann::json& message) {
        // Which subscription: by server id, else (a server without ids) by channel.
        std::vector<std::uint64_t> targets;
        auto sid = message.find("subscription_id");
        if (sid != message.end() && sid->is_string()) {
            if (auto it = by_server_id_.find(*sid); it != by_server_id_.end()) {
                targets.push_back(it->second);
            }
        } else if (auto ch = message.find("channel"); ch != message.end() && ch->is_string()) {
            for (const auto& [handle, sub] : subs_) {
                if (sub.channel == *ch && !sub.server_id.empty()) {
                    targets.push_back(handle);
                }
            }
        } else {
            connection_->report_bad_frame("event without subscription_id or channel");
            return;
        }

        // Decode once; string fields of the wrong type count as malformed.
        Event event;
        if (!read_string(message, "channel", event.channel) ||
            !read_string(message, "event", event.name) || !read_string(message, "id", event.id) ||
            !read_string(message, "timestamp", event.timestamp)) {
            connection_->report_bad_frame("event field of the wrong type");
            return;
        }
        event.data = message.value("data", nlohmann::json());
        event.raw = message;
        for (auto handle : targets) {
            deliver(handle, event);
        }
    }

    void deliver(std::uint64_t handle, const Event& event) {
        if (!event.id.empty() && !recent_.insert(std::to_string(handle) + '/' + event.id)) {
            duplicates_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        auto it = subs_.find(handle);
        if (it == subs_.end() || !it->second.on_event) {
            return;
        }
        delivered_.fetch_add(1, std::memory_order_relaxed);
        auto handler = it->second.on_event;  // a copy: the handler may unsubscribe itself
        try {
            handler(event);
        } catch (const std::exception& e) {
            logger_->error("event handler threw: {}", e.what());
        }
    }

    // Ends a request of any kind with `ec` (empty on success).
    void complete(const Pending& p, std::error_code ec, const nlohmann::json& reply) {
        if (p.kind == Kind::request || p.kind == Kind::unsubscribe) {
            finish(p.on_result, ec, reply);
            return;
        }
        subscribed(p.handle, ec, reply);

        // The queue goes out once the last re-subscription has its answer.
        if (p.batch && resubscribing_ > 0 && --resubscribing_ == 0 && link_up_) {
            become_ready();
        }
    }

    void subscribed(std::uint64_t handle, std::error_code ec, const nlohmann::json& reply) {
        auto it = subs_.find(handle);
        if (it != subs_.end()) {
            if (ec) {
                end_subscription(handle, ec, reply);
            } else {
                auto& sub = it->second;
                sub.server_id = reply.value("subscription_id", std::string());
                if (!sub.server_id.empty()) {
                    by_server_id_[sub.server_id] = handle;
                }
                bool first = !sub.confirmed;
                sub.confirmed = true;
                if (first) {
                    finish(sub.on_result, {}, reply);
                }
            }
        }
    }

    void end_subscription(std::uint64_t handle, std::error_code ec, const nlohmann::json& reply) {
        auto it = subs_.find(handle);
        if (it == subs_.end()) {
            return;
        }
        auto on_result = std::move(it->second.on_result);
        subs_.erase(it);
        live_.fetch_sub(1, std::memory_order_acq_rel);
        logger_->warn("subscription ended reason=\"{}\"", ec.message());
        finish(on_result, ec, reply);
    }

    void become_ready() {
        ready_ = true;
        auto queue = std::move(queue_);
        queue_.clear();
        queued_.store(0, std::memory_order_relaxed);
        for (auto& q : queue) {
            send_tracked(std::move(q.message), Kind::request, 0, std::move(q.on_result), q.timeout);
        }
    }

    void fail_queue(std::error_code ec) {
        auto queue = std::move(queue_);
        queue_.clear();
        queued_.store(0, std::memory_order_relaxed);
        for (auto& q : queue) {
            finish(q.on_result, ec, nullptr);
        }
    }

    void finish(const ResultHandler& handler, std::error_code ec, const nlohmann::json& reply) {
        if (!handler) {
            return;
        }
        try {
            handler(ec, reply);
        } catch (const std::exception& e) {
            logger_->error("result handler threw: {}", e.what());
        }
    }

    static bool read_string(const nlohmann::json& message, const char* key, std::string& out) {
        auto it = message.find(key);
        if (it == message.end() || it->is_null()) {
            return true;
        }
        if (!it->is_string()) {
            return false;
        }
        out = it->get<std::string>();
        return true;
    }

    const ClientOptions options_;
    const std::shared_ptr<spdlog::logger> logger_;

    // io thread only.
    std::map<std::uint64_t, Sub> subs_;  // ordered: re-subscribed in the order made
    std::unordered_map<std::string, std::uint64_t> by_server_id_;
    std::unordered_map<std::string, Pending> pending_;
    std::deque<Queued> queue_;
    detail::RecentIds recent_;
    std::uint64_t next_request_ = 1;
    std::size_t resubscribing_ = 0;
    bool link_up_ = false;
    bool ready_ = false;
    bool terminal_ = false;
    log::RateLimit error_log_;
};

Client::Client(ClientOptions options) {
    options.validate();
    state_ = std::make_shared<State>(options);

    // The hooks hold a weak_ptr: they never run after the State is gone.
    std::weak_ptr<State> weak = state_;
    Connection::Hooks hooks;
    hooks.on_connected = detail::while_alive(weak, &State::on_connected);
    hooks.on_link_down = detail::while_alive(weak, &State::on_link_down);
    hooks.on_message = detail::while_alive(weak, &State::on_message);
    connection_ = std::make_unique<Connection>(std::move(options.connection), std::move(hooks));
    state_->connection_ = connection_.get();
    connection_->add_state_observer(detail::while_alive(weak, &State::on_state));
}

Client::~Client() {
    connection_.reset();
}

void Client::start() {
    connection_->start();
}

void Client::close() {
    connection_->close();
}

ConnectionState Client::state() const {
    return connection_->state();
}

std::error_code Client::terminal_reason() const {
    return connection_->terminal_reason();
}

void Client::add_state_observer(Connection::StateObserver observer) {
    connection_->add_state_observer(std::move(observer));
}

void Client::add_backoff_observer(Connection::BackoffObserver observer) {
    connection_->add_backoff_observer(std::move(observer));
}

Subscription Client::subscribe(std::string channel, nlohmann::json params, EventHandler on_event,
                               ResultHandler on_result) {
    // The limit is checked here, synchronously, so the 51st fails without a round trip.
    std::weak_ptr<State> weak = state_;
    if (!state_->reserve_subscription()) {
        connection_->post([on_result = std::move(on_result)] {
            if (on_result) {
                on_result(make_error_code(errc::subscription_limit), nullptr);
            }
        });
        return {};
    }
    Subscription handle{state_->next_handle_.fetch_add(1, std::memory_order_relaxed)};
    connection_->post([weak, handle, channel = std::move(channel), params = std::move(params),
                       on_event = std::move(on_event), on_result = std::move(on_result)]() mutable {
        if (auto s = weak.lock()) {
            s->add_subscription(handle.value, std::move(channel), std::move(params),
                                std::move(on_event), std::move(on_result));
        }
    });
    return handle;
}

void Client::unsubscribe(Subscription subscription, ResultHandler on_done) {
    std::weak_ptr<State> weak = state_;
    connection_->post([weak, subscription, on_done = std::move(on_done)]() mutable {
        if (auto s = weak.lock()) {
            s->remove_subscription(subscription.value, std::move(on_done));
        }
    });
}

void Client::request(nlohmann::json message, ResultHandler on_result,
                     std::optional<milliseconds> timeout) {
    // Size is known before the id is added; the id adds a few bytes at most.
    auto limit = connection_->options().max_message_bytes;
    if (message.dump().size() + 32 > limit) {
        connection_->post([on_result = std::move(on_result)] {
            if (on_result) {
                on_result(make_error_code(errc::too_large), nullptr);
            }
        });
        return;
    }
    std::weak_ptr<State> weak = state_;
    auto wait = timeout.value_or(std::chrono::milliseconds(0));
    connection_->post(
        [weak, message = std::move(message), on_result = std::move(on_result), wait]() mutable {
            if (auto s = weak.lock()) {
                s->add_request(std::move(message), std::move(on_result), wait);
            }
        });
}

ClientStats Client::stats() const {
    ClientStats out;
    static_cast<ConnectionStats&>(out) = connection_->stats();
    out.events_delivered = state_->delivered_.load(std::memory_order_relaxed);
    out.duplicate_events = state_->duplicates_.load(std::memory_order_relaxed);
    out.request_timeouts = state_->timeouts_.load(std::memory_order_relaxed);
    out.queued_requests = state_->queued_.load(std::memory_order_relaxed);
    out.subscriptions = state_->live_.load(std::memory_order_relaxed);
    return out;
}

Connection& Client::connection() {
    return *connection_;
}

}  // namespace olympus
