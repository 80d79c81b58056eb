// Options of the gateway client and the documented environment endpoints. Plain values, filled
// in by the application before constructing a Client.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "olympus/connection.hpp"

namespace olympus {

/// The gateway endpoints of protocol section 1.
enum class Environment { production, staging, development, local };

/// The gateway URL of `environment`; `local_port` is used for Environment::local only
/// ("ws://127.0.0.1:<port>/v1").
std::string gateway_url(Environment environment, std::uint16_t local_port = 8080);

struct ClientOptions {
    /// URL, auth mode, token provider, TLS, heartbeat, reconnect policy and limits.
    ConnectionOptions connection;
    /// A request (including subscribe and unsubscribe) with no answer this long after it was
    /// sent fails with errc::timeout.
    std::chrono::milliseconds request_timeout{10'000};
    /// Requests made while the link is down wait here; beyond this many the oldest fails with
    /// errc::queue_full.
    std::size_t max_queued_requests = 256;
    /// Subscriptions per connection (protocol limit 50); one more fails locally.
    std::size_t max_subscriptions = 50;
    /// How many recent event ids are remembered per client to drop duplicates after a
    /// reconnect. Bounded memory: the oldest id is forgotten first.
    std::size_t dedup_window = 4096;

    /// Options for `environment` with `provider`; everything else at its default.
    static ClientOptions for_environment(Environment environment,
                                         std::shared_ptr<TokenProvider> provider);

    /// Throws std::invalid_argument with a readable message on any invalid value.
    void validate() const;
};

}  // namespace olympus
