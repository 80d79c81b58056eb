// A small local HTTP endpoint that serves a MetricsRegistry at GET /metrics for Prometheus (and
// GET /healthz for a quick liveness probe), plus POST routes the lane adds (POST /trigger from a
// loop detector). It runs its own network thread; the registry is rendered on that thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <system_error>

#include "olympus/lane/metrics_registry.hpp"

namespace olympus::lane {

/// Threads: start()/stop()/port() on the setup thread; requests are answered on the server's own
/// thread, which only calls registry.render().
///
///   Prometheus --GET /metrics--> [server thread: websocketpp HTTP handler] --render()--> registry
class MetricsServer {
public:
    /// `registry` must outlive the server.
    explicit MetricsServer(const MetricsRegistry& registry);
    ~MetricsServer();  ///< stops the server
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    /// The answer to a POST.
    struct Reply {
        int status = 200;
        std::string body;
    };

    /// Serves POST `path` with `handler`, which runs on the server thread and must be quick and
    /// thread-safe. Other methods on that path get 405. Call before start().
    void add_post(const std::string& path, std::function<Reply()> handler);

    /// Binds `bind_address` ("127.0.0.1", "::1", "localhost") and `port` (0 picks a free one),
    /// then serves on a new thread. Errors: std::errc::address_in_use when the port is taken,
    /// std::errc::invalid_argument for an address that does not parse, other bind errors as the
    /// system reports them. On error nothing keeps running.
    std::error_code start(const std::string& bind_address, std::uint16_t port);

    /// Stops serving and joins the thread. Idempotent.
    void stop();

    /// The port actually bound (useful with port 0); 0 before start().
    std::uint16_t port() const noexcept { return port_; }

    /// Requests answered so far (any path). Any thread.
    std::uint64_t requests() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::uint16_t port_ = 0;
};

}  // namespace olympus::lane
