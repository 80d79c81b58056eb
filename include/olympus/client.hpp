// The gateway client (protocol section 2): requests correlated by id, channel subscriptions that
// survive reconnects, and duplicate-free event delivery, on top of Connection. Every public
// method may be called from any thread; every callback runs on the connection's io thread, must
// not block, and may call back into the client (such calls take effect after it returns).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "olympus/client_options.hpp"
#include "olympus/connection.hpp"
#include "olympus/error.hpp"

namespace olympus {

/// One event of a subscribed channel (protocol section 2.6).
struct Event {
    std::string channel;    ///< "orders", "kds", ...
    std::string name;       ///< "order.created", ... (the frame's `event`)
    std::string id;         ///< event id; empty when the server sent none
    std::string timestamp;  ///< RFC 3339, as sent
    nlohmann::json data;    ///< the payload (`data`), null when absent
    nlohmann::json raw;     ///< the whole frame
};

/// The application's name for a subscription. It stays the same across reconnects while the
/// server's subscription_id changes underneath. Zero is never a valid handle.
struct Subscription {
    std::uint64_t value = 0;
    bool valid() const { return value != 0; }
    bool operator==(const Subscription& other) const { return value == other.value; }
};

struct ClientStats : ConnectionStats {
    std::uint64_t events_delivered = 0;
    std::uint64_t duplicate_events = 0;  ///< dropped because their id was already delivered
    std::uint64_t request_timeouts = 0;
    std::uint64_t queued_requests = 0;  ///< waiting for the link right now
    std::uint64_t subscriptions = 0;    ///< live right now
};

class Client {
public:
    /// Runs on the io thread for each event of a subscription.
    using EventHandler = std::function<void(const Event& event)>;
    /// Runs on the io thread once per request: `ec` empty and the server's response, or an
    /// errc (documented codes, timeout, closed, too_large, queue_full) and the response or
    /// error frame when there was one (null otherwise).
    using ResultHandler = std::function<void(std::error_code ec, const nlohmann::json& reply)>;

    /// Validates the options (throws std::invalid_argument) and starts the io thread; the link
    /// opens on start().
    explicit Client(ClientOptions options);
    /// Closes the link and joins the io thread; pending requests fail with errc::closed.
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// Connects, and from then on reconnects by itself until close() or a terminal error.
    void start();
    /// Closes the link; no reconnect. Queued and pending requests fail with errc::closed.
    void close();

    ConnectionState state() const;
    /// Why the client stopped for good (errc::invalid_token, ...); empty while running.
    std::error_code terminal_reason() const;
    /// Observers run on the io thread, on every state transition.
    void add_state_observer(Connection::StateObserver observer);
    /// Observers run on the io thread with each reconnect delay drawn from the policy.
    void add_backoff_observer(Connection::BackoffObserver observer);

    /// Subscribes to `channel` with `params` (a JSON object, or null). Events go to
    /// `on_event`; `on_result` (optional) learns whether the first subscribe succeeded, and
    /// later of any re-subscription that failed (the subscription then ends). Returns an
    /// invalid handle, and reports errc::subscription_limit to `on_result`, when
    /// max_subscriptions are already live. Made while disconnected, it is sent on connect.
    Subscription subscribe(std::string channel, nlohmann::json params, EventHandler on_event,
                           ResultHandler on_result = {});
    /// Ends a subscription: no event reaches its handler after this call returns on the io
    /// thread. `on_done` (optional) gets the server's answer.
    void unsubscribe(Subscription subscription, ResultHandler on_done = {});

    /// Sends `message` (a JSON object with a string "type") as a request: the client sets its
    /// "id" and calls `on_result` with the matching response or error. Made while the link is
    /// down, it waits (bounded) and goes out, in order, after authentication and
    /// re-subscription. `timeout` overrides ClientOptions::request_timeout.
    void request(nlohmann::json message, ResultHandler on_result,
                 std::optional<std::chrono::milliseconds> timeout = std::nullopt);

    ClientStats stats() const;
    /// The transport core underneath, for its stats and hooks-free controls.
    Connection& connection();

private:
    class State;
    std::shared_ptr<State> state_;
    std::unique_ptr<Connection> connection_;  // last: destroyed (and joined) first
};

}  // namespace olympus
