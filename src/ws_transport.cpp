// websocketpp behind WsTransport; see ws_transport.hpp. Runs on the connection's io thread.
#include "ws_transport.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
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

// Certificate verification failures, named as OpenSSL names them ("certificate has expired",
// "hostname mismatch", "self-signed certificate"), so that a refused server is reported with
// its reason rather than websocketpp's generic "TLS handshake failed".
class X509Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "x509"; }
    std::string message(int code) const override {
        return std::string("certificate verification failed: ") +
               X509_verify_cert_error_string(code);
    }
};

const std::error_category& x509_category() {
    static const X509Category category;
    return category;
}

// A TLS alert that ended the handshake ("protocol version", "handshake failure"): how a peer
// that only speaks TLS 1.0/1.1, or offers no acceptable cipher, is refused.
class TlsAlertCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "tls-alert"; }
    std::string message(int code) const override {
        return std::string("TLS handshake refused, alert: ") + SSL_alert_desc_string_long(code);
    }
};

const std::error_category& tls_alert_category() {
    static const TlsAlertCategory category;
    return category;
}

// Why one link's TLS handshake failed, filled in by OpenSSL callbacks on the io thread.
struct TlsFailure {
    int x509_error = 0;  // X509_V_OK until verification fails
    int alert = 0;       // the first fatal alert sent or received; 0 for none
};

// Where a context keeps its TlsFailure; asio already uses the context's app data slot.
int failure_slot() {
    static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return slot;
}

// Records the first fatal alert of a handshake into the context's TlsFailure.
void record_alert(const SSL* ssl, int where, int value) {
    if ((where & SSL_CB_ALERT) == 0 || (value >> 8) != SSL3_AL_FATAL) {
        return;
    }
    auto* failure =
        static_cast<TlsFailure*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), failure_slot()));
    if (failure != nullptr && failure->alert == 0) {
        failure->alert = value & 0xff;
    }
}

// The TLS context of one link: peer verification against the system store, a CA file or a
// pinned PEM, and the host name check that websocketpp leaves to us. The first verification
// error and the first fatal alert land in `failure`.
std::shared_ptr<asio::ssl::context> make_tls_context(const TlsOptions& tls, const std::string& host,
                                                     const std::shared_ptr<TlsFailure>& failure) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    // The link owns `failure` and outlives the context.
    SSL_CTX_set_ex_data(ctx->native_handle(), failure_slot(), failure.get());
    SSL_CTX_set_info_callback(ctx->native_handle(), record_alert);
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

    // OpenSSL checks the name (or IP address) during chain verification, so a mismatch comes
    // back as X509_V_ERR_HOSTNAME_MISMATCH like any other verification error.
    if (tls.verify_hostname) {
        auto* param = SSL_CTX_get0_param(ctx->native_handle());
        asio::error_code not_ip;
        asio::ip::make_address(host, not_ip);
        if (not_ip) {
            X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
        } else {
            X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
        }
    }
    ctx->set_verify_callback([failure](bool preverified, asio::ssl::verify_context& vc) {
        if (!preverified && failure->x509_error == 0) {
            failure->x509_error = X509_STORE_CTX_get_error(vc.native_handle());
        }
        return preverified;
    });
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
        std::shared_ptr<TlsFailure> tls_failure = std::make_shared<TlsFailure>();
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
        auto link = std::make_shared<Link>();
        configure_tls(request, link->tls_failure);
        std::error_code ec;
        ConnectionPtr con = endpoint_.get_connection(request.url, ec);
        if (ec) {
            return ec;
        }
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

    void configure_tls(const TransportRequest& request, const std::shared_ptr<TlsFailure>& failure);

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
                l->events.on_fail(failure_of(*l, *c), static_cast<int>(c->get_response_code()));
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

    // The most telling reason a handshake failed: the certificate check, a TLS alert, then
    // the TLS or socket error underneath, then websocketpp's own.
    static std::error_code failure_of(const Link& link, typename Endpoint::connection_type& con) {
        if (link.tls_failure->x509_error != 0) {
            return {link.tls_failure->x509_error, x509_category()};
        }
        if (link.tls_failure->alert != 0) {
            return {link.tls_failure->alert, tls_alert_category()};
        }
        if (auto tec = con.get_transport_ec()) {
            return tec;
        }
        return con.get_ec();
    }

    static ConnectionPtr connection_of(const websocketpp::connection_hdl& hdl) {
        return std::static_pointer_cast<typename Endpoint::connection_type>(hdl.lock());
    }

    Endpoint endpoint_;
    std::shared_ptr<Link> link_;
};

template <>
void Transport<PlainConfig>::configure_tls(const TransportRequest&,
                                           const std::shared_ptr<TlsFailure>&) {}

template <>
void Transport<TlsConfig>::configure_tls(const TransportRequest& request,
                                         const std::shared_ptr<TlsFailure>& failure) {
    // SNI is set by websocketpp from the URL's host; the name check is ours.
    endpoint_.set_tls_init_handler(
        [tls = request.tls, host = host_of(request.url), failure](websocketpp::connection_hdl) {
            return make_tls_context(tls, host, failure);
        });
}

TransportFactory& installed_factory() {
    static TransportFactory factory;
    return factory;
}

}  // namespace

void set_transport_factory(TransportFactory factory) {
    installed_factory() = std::move(factory);
}

std::unique_ptr<WsTransport> make_ws_transport(asio::io_context& io, bool secure) {
    if (const auto& factory = installed_factory()) {
        return factory(io, secure);
    }
    if (secure) {
        return std::make_unique<Transport<TlsConfig>>(io);
    }
    return std::make_unique<Transport<PlainConfig>>(io);
}

}  // namespace olympus::detail
