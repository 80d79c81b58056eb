// websocketpp behind WsTransport; see ws_transport.hpp. Runs on the connection's io thread.
#include "ws_transport.hpp"

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_client.hpp>

#include "olympus/error.hpp"

namespace olympus::detail {
namespace {

// websocketpp's client configs without their per-frame logging; max_message_size is set per
// link from the options.
struct PlainConfig : websocketpp::config::asio_client {
    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
};
struct TlsConfig : websocketpp::config::asio_tls_client {
    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
};

// Host part of a URL, without brackets or port, for hostname verification.
std::string host_of(const std::string& url) {
    auto start = url.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    if (start < url.size() && url[start] == '[') {
        auto end = url.find(']', start);
        return url.substr(start + 1, end == std::string::npos ? end : end - start - 1);
    }
    auto end = url.find_first_of(":/?", start);
    return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// The TLS context of one link: peer verification against the system store, a CA file or a
// pinned PEM, and the host name check that websocketpp leaves to us.
std::shared_ptr<asio::ssl::context> make_tls_context(const TlsOptions& tls,
                                                     const std::string& host) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    if (!tls.verify_peer) {
        ctx->set_verify_mode(asio::ssl::verify_none);
        return ctx;
    }
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);

    // Trust what the application named; the system store only when it named nothing.
    asio::error_code ec;
    if (!tls.ca_pem.empty()) {
        ctx->add_certificate_authority(asio::buffer(tls.ca_pem), ec);
    }
    if (!tls.ca_file.empty()) {
        ctx->load_verify_file(tls.ca_file, ec);
    }
    if (tls.ca_pem.empty() && tls.ca_file.empty()) {
        ctx->set_default_verify_paths(ec);
    }

    if (tls.verify_hostname) {
        ctx->set_verify_callback(asio::ssl::host_name_verification(host));
    }
    return ctx;
}

template <typename Config>
class Transport final : public WsTransport {
    using Endpoint = websocketpp::client<Config>;
    using ConnectionPtr = typename Endpoint::connection_ptr;
    using MessagePtr = typename Endpoint::message_ptr;

    // One link's identity: handlers hold a weak_ptr and check `live`, so a replaced, aborted
    // or finished link falls silent.
    struct Link {
        TransportEvents events;
        websocketpp::connection_hdl hdl;
        bool opened = false;
        bool live = true;
    };

public:
    explicit Transport(asio::io_context& io) {
        endpoint_.clear_access_channels(websocketpp::log::alevel::all);
        endpoint_.clear_error_channels(websocketpp::log::elevel::all);
        endpoint_.init_asio(&io);
    }

    ~Transport() override { abort(); }

    std::error_code connect(const TransportRequest& request, TransportEvents events) override {
        abort();

        // Build the link; a malformed URL fails here, synchronously. websocketpp asks for the
        // TLS context while building it, so the TLS settings go in first.
        configure_tls(request);
        std::error_code ec;
        ConnectionPtr con = endpoint_.get_connection(request.url, ec);
        if (ec) {
            return ec;
        }
        auto link = std::make_shared<Link>();
        link->events = std::move(events);
        link->hdl = con->get_handle();
        link_ = link;

        configure(con, request);
        bind_handlers(con, link);
        endpoint_.connect(con);
        return {};
    }

    std::error_code send(bool binary, const std::string& payload) override {
        if (!link_ || !link_->live || !link_->opened) {
            return make_error_code(errc::closed);
        }
        std::error_code ec;
        endpoint_.send(
            link_->hdl, payload,
            binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text, ec);
        return ec;
    }

    void close(int code, const std::string& reason) override {
        if (!link_ || !link_->live) {
            return;
        }
        std::error_code ec;
        endpoint_.close(link_->hdl, static_cast<websocketpp::close::status::value>(code), reason,
                        ec);
        if (ec) {
            abort();  // not open yet: nothing to shake hands with
        }
    }

    void abort() override {
        if (!link_) {
            return;
        }
        auto link = std::move(link_);
        link_.reset();
        link->live = false;
        std::error_code ec;
        auto con = endpoint_.get_con_from_hdl(link->hdl, ec);
        if (!ec && con) {
            con->terminate(ec);  // terminate() takes a reason; this closes the socket now
        }
    }

private:
    void configure(const ConnectionPtr& con, const TransportRequest& request) {
        // Limits and timeouts of the handshake and the close.
        con->set_max_message_size(request.max_frame_bytes);
        con->set_open_handshake_timeout(static_cast<long>(request.connect_timeout.count()));
        con->set_close_handshake_timeout(1000);
        for (const auto& [name, value] : request.headers) {
            con->append_header(name, value);
        }

        // Small frames (pongs, requests) must not wait for Nagle.
        con->set_tcp_pre_init_handler([](websocketpp::connection_hdl hdl) {
            auto raw = connection_of(hdl);
            if (!raw) {
                return;
            }
            std::error_code ec;
            raw->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
        });
    }

    void configure_tls(const TransportRequest& request);

    void bind_handlers(const ConnectionPtr& con, const std::shared_ptr<Link>& link) {
        std::weak_ptr<Link> weak = link;
        con->set_open_handler([weak](websocketpp::connection_hdl) {
            if (auto l = weak.lock(); l && l->live) {
                l->opened = true;
                l->events.on_open();
            }
        });
        con->set_fail_handler([weak](websocketpp::connection_hdl hdl) {
            auto l = weak.lock();
            auto c = connection_of(hdl);
            if (l && l->live && c) {
                l->live = false;
                l->events.on_fail(c->get_ec(), static_cast<int>(c->get_response_code()));
            }
        });
        con->set_close_handler([weak](websocketpp::connection_hdl hdl) {
            auto l = weak.lock();
            auto c = connection_of(hdl);
            if (l && l->live && c) {
                l->live = false;
                int code = c->get_remote_close_code();
                if (c->get_local_close_code() == websocketpp::close::status::message_too_big) {
                    code = websocketpp::close::status::message_too_big;
                }
                l->events.on_close(code, c->get_ec());
            }
        });
        con->set_message_handler([weak](websocketpp::connection_hdl, MessagePtr msg) {
            if (auto l = weak.lock(); l && l->live) {
                bool binary = msg->get_opcode() == websocketpp::frame::opcode::binary;
                l->events.on_message(binary, std::move(msg->get_raw_payload()));
            }
        });
    }

    static ConnectionPtr connection_of(const websocketpp::connection_hdl& hdl) {
        return std::static_pointer_cast<typename Endpoint::connection_type>(hdl.lock());
    }

    Endpoint endpoint_;
    std::shared_ptr<Link> link_;
};

template <>
void Transport<PlainConfig>::configure_tls(const TransportRequest&) {}

template <>
void Transport<TlsConfig>::configure_tls(const TransportRequest& request) {
    // SNI is set by websocketpp from the URL's host; the name check is ours.
    endpoint_.set_tls_init_handler(
        [tls = request.tls, host = host_of(request.url)](websocketpp::connection_hdl) {
            return make_tls_context(tls, host);
        });
}

}  // namespace

std::unique_ptr<WsTransport> make_ws_transport(asio::io_context& io, bool secure) {
    if (secure) {
        return std::make_unique<Transport<TlsConfig>>(io);
    }
    return std::make_unique<Transport<PlainConfig>>(io);
}

}  // namespace olympus::detail
