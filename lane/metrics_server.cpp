// The /metrics endpoint over websocketpp's HTTP handling (plain HTTP, no WebSocket upgrade is
// accepted); see metrics_server.hpp. The only lane translation unit that includes websocketpp.
#include "olympus/lane/metrics_server.hpp"

#include <atomic>
#include <thread>

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include "olympus/log.hpp"

namespace olympus::lane {

using HttpServer = websocketpp::server<websocketpp::config::asio>;

struct MetricsServer::Impl {
    explicit Impl(const MetricsRegistry& r) : registry(r) {}

    // Runs on the server thread for every plain HTTP request.
    void on_http(websocketpp::connection_hdl hdl) {
        HttpServer::connection_ptr con = server.get_con_from_hdl(hdl);
        requests.fetch_add(1, std::memory_order_relaxed);
        const std::string& resource = con->get_resource();
        const std::string path = resource.substr(0, resource.find('?'));
        const std::string& method = con->get_request().get_method();
        if (auto route = posts.find(path); route != posts.end()) {
            if (method != "POST") {
                con->set_status(websocketpp::http::status_code::method_not_allowed);
                con->append_header("Allow", "POST");
                return;
            }
            const Reply reply = route->second();
            con->set_status(static_cast<websocketpp::http::status_code::value>(reply.status));
            con->append_header("Content-Type", "text/plain; charset=utf-8");
            con->set_body(reply.body);
            return;
        }
        if (method != "GET") {
            con->set_status(websocketpp::http::status_code::method_not_allowed);
            con->append_header("Allow", "GET");
            return;
        }
        if (path == "/metrics") {
            con->set_status(websocketpp::http::status_code::ok);
            con->append_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
            con->set_body(registry.render());
        } else if (path == "/healthz") {
            con->set_status(websocketpp::http::status_code::ok);
            con->append_header("Content-Type", "text/plain; charset=utf-8");
            con->set_body("ok\n");
        } else {
            con->set_status(websocketpp::http::status_code::not_found);
            con->set_body("not found\n");
        }
    }

    const MetricsRegistry& registry;
    std::map<std::string, std::function<Reply()>> posts;  // set before start, then read-only
    HttpServer server;
    std::thread thread;
    std::atomic<std::uint64_t> requests{0};
};

MetricsServer::MetricsServer(const MetricsRegistry& registry)
    : impl_(std::make_unique<Impl>(registry)) {}

MetricsServer::~MetricsServer() {
    stop();
}

void MetricsServer::add_post(const std::string& path, std::function<Reply()> handler) {
    impl_->posts[path] = std::move(handler);
}

std::error_code MetricsServer::start(const std::string& bind_address, std::uint16_t port) {
    auto log = olympus::log::get("metrics");
    HttpServer& server = impl_->server;

    // The address must be a literal (or localhost): nothing here should wait on DNS.
    std::error_code ec;
    const std::string host = bind_address == "localhost" ? "127.0.0.1" : bind_address;
    const asio::ip::address address = asio::ip::make_address(host, ec);
    if (ec) {
        log->error("metrics endpoint not started: bad bind address address={}", bind_address);
        return std::make_error_code(std::errc::invalid_argument);
    }

    // websocketpp's own logging is off: failures come back as codes and are logged here.
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio(ec);
    if (!ec) {
        server.set_http_handler([impl = impl_.get()](websocketpp::connection_hdl hdl) {
            impl->on_http(std::move(hdl));
        });
        server.set_validate_handler([](websocketpp::connection_hdl) { return false; });
        // A restarted agent must rebind while scrapes of its predecessor sit in TIME_WAIT; on
        // Linux this still refuses a second listener on the same port.
        server.set_reuse_addr(true);
        server.listen(asio::ip::tcp::endpoint(address, port), ec);
    }
    if (!ec) {
        server.start_accept(ec);
    }
    if (ec && ec.category() == asio::system_category()) {
        ec = std::error_code(ec.value(), std::system_category());  // comparable with std::errc
    }
    if (ec) {
        log->error("metrics endpoint not started address={} port={} error=\"{}\"", bind_address,
                   port, ec.message());
        return ec;
    }

    // Remember the port actually bound, then serve on the server's own thread.
    asio::error_code local_ec;
    port_ = server.get_local_endpoint(local_ec).port();
    impl_->thread = std::thread([&server] { server.run(); });
    log->info("metrics endpoint listening address={} port={} path=/metrics", bind_address, port_);
    return {};
}

void MetricsServer::stop() {
    if (!impl_->thread.joinable()) {
        return;
    }
    // Close the listening socket on the server thread first, so that no connection is accepted
    // into a backlog nobody serves any more; then end the thread.
    HttpServer& server = impl_->server;
    asio::post(server.get_io_service(), [&server] {
        std::error_code ignored;
        server.stop_listening(ignored);
        server.stop();
    });
    impl_->thread.join();
    olympus::log::get("metrics")->info("metrics endpoint stopped port={}", port_);
}

std::uint64_t MetricsServer::requests() const noexcept {
    return impl_->requests.load(std::memory_order_relaxed);
}

}  // namespace olympus::lane
