// Blocking test client over websocketpp; see ws_test_client.hpp.
#include "support/ws_test_client.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_client.hpp>

namespace olympus::test {
namespace {

struct PlainConfig : websocketpp::config::asio_client {
    static const size_t max_message_size = 64 * 1024 * 1024;
};
struct TlsConfig : websocketpp::config::asio_tls_client {
    static const size_t max_message_size = 64 * 1024 * 1024;
};
using PlainClient = websocketpp::client<PlainConfig>;
using TlsClient = websocketpp::client<TlsConfig>;
using SslContext = std::shared_ptr<asio::ssl::context>;

// State shared between the io thread and the test thread.
struct Shared {
    std::mutex mutex;
    std::condition_variable changed;
    std::deque<Frame> inbox;
    bool opened = false;
    bool failed = false;
    bool closed = false;
    int close_code = 0;
    int http_status = 0;
    std::string error;
};

std::string host_of(const std::string& url) {
    auto start = url.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    auto end = url.find_first_of(":/?", start);
    return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

nlohmann::json Frame::json() const {
    return nlohmann::json::parse(payload, nullptr, false);
}

class WsTestClient::Impl {
public:
    explicit Impl(TestClientOptions options) : options_(std::move(options)) {}

    ~Impl() {
        if (plain_) {
            plain_->stop_perpetual();
            plain_->stop();
        }
        if (tls_) {
            tls_->stop_perpetual();
            tls_->stop();
        }
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    template <typename Client>
    void setup(Client& client) {
        client.clear_access_channels(websocketpp::log::alevel::all);
        client.clear_error_channels(websocketpp::log::elevel::all);
        client.init_asio();
        client.start_perpetual();
        client.set_max_message_size(options_.max_message_bytes);
        client.set_open_handler([this](websocketpp::connection_hdl) {
            std::lock_guard lock(shared_.mutex);
            shared_.opened = true;
            shared_.changed.notify_all();
        });
        client.set_fail_handler([this, &client](websocketpp::connection_hdl hdl) {
            auto con = client.get_con_from_hdl(hdl);
            std::lock_guard lock(shared_.mutex);
            shared_.failed = true;
            shared_.error = con->get_ec().message();
            shared_.http_status = static_cast<int>(con->get_response_code());
            shared_.changed.notify_all();
        });
        client.set_close_handler([this, &client](websocketpp::connection_hdl hdl) {
            auto con = client.get_con_from_hdl(hdl);
            std::lock_guard lock(shared_.mutex);
            shared_.closed = true;
            shared_.close_code = con->get_remote_close_code();
            shared_.changed.notify_all();
        });
        client.set_message_handler([this](websocketpp::connection_hdl, auto msg) {
            Frame frame{msg->get_opcode() == websocketpp::frame::opcode::binary,
                        msg->get_payload()};
            std::lock_guard lock(shared_.mutex);
            shared_.inbox.push_back(std::move(frame));
            shared_.changed.notify_all();
        });
        thread_ = std::thread([&client] { client.run(); });
    }

    template <typename Client>
    bool open(Client& client, const std::string& url) {
        websocketpp::lib::error_code ec;
        auto con = client.get_connection(url, ec);
        if (ec) {
            std::lock_guard lock(shared_.mutex);
            shared_.failed = true;
            shared_.error = ec.message();
            return false;
        }
        for (const auto& [name, value] : options_.headers) {
            con->append_header(name, value);
        }
        hdl_ = con->get_handle();
        client.connect(con);
        return true;
    }

    bool connect(const std::string& url, std::chrono::milliseconds timeout) {
        bool secure = url.rfind("wss://", 0) == 0;
        if (secure) {
            tls_ = std::make_unique<TlsClient>();
            auto host = host_of(url);
            tls_->set_tls_init_handler(
                [this, host](websocketpp::connection_hdl) { return make_tls_context(host); });
            setup(*tls_);
            if (!open(*tls_, url)) {
                return false;
            }
        } else {
            plain_ = std::make_unique<PlainClient>();
            setup(*plain_);
            if (!open(*plain_, url)) {
                return false;
            }
        }
        std::unique_lock lock(shared_.mutex);
        shared_.changed.wait_for(lock, timeout,
                                 [this] { return shared_.opened || shared_.failed; });
        if (!shared_.opened && !shared_.failed) {
            shared_.error = "timed out";
        }
        return shared_.opened;
    }

    SslContext make_tls_context(const std::string& host) {
        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1);
        if (options_.ca_pem.empty()) {
            ctx->set_default_verify_paths();
        } else {
            ctx->add_certificate_authority(
                asio::buffer(options_.ca_pem.data(), options_.ca_pem.size()));
        }
        ctx->set_verify_mode(asio::ssl::verify_peer);
        if (options_.verify_hostname) {
            ctx->set_verify_callback(asio::ssl::host_name_verification(host));
        }
        return ctx;
    }

    template <typename Fn>
    void with_connection(Fn&& fn) {
        websocketpp::lib::error_code ec;
        if (plain_) {
            auto con = plain_->get_con_from_hdl(hdl_, ec);
            if (!ec) {
                fn(*plain_, con);
            }
        } else if (tls_) {
            auto con = tls_->get_con_from_hdl(hdl_, ec);
            if (!ec) {
                fn(*tls_, con);
            }
        }
    }

    void send(const std::string& payload, websocketpp::frame::opcode::value op) {
        with_connection([&](auto& client, auto&) {
            websocketpp::lib::error_code ec;
            client.send(hdl_, payload, op, ec);
        });
    }

    void close(int code, const std::string& reason) {
        with_connection([&](auto& client, auto&) {
            websocketpp::lib::error_code ec;
            client.close(hdl_, static_cast<websocketpp::close::status::value>(code), reason, ec);
        });
    }

    TestClientOptions options_;
    Shared shared_;
    std::unique_ptr<PlainClient> plain_;
    std::unique_ptr<TlsClient> tls_;
    websocketpp::connection_hdl hdl_;
    std::thread thread_;
};

WsTestClient::WsTestClient(TestClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

WsTestClient::~WsTestClient() = default;

bool WsTestClient::connect(const std::string& url, std::chrono::milliseconds timeout) {
    return impl_->connect(url, timeout);
}

void WsTestClient::send_text(const std::string& text) {
    impl_->send(text, websocketpp::frame::opcode::text);
}

void WsTestClient::send_binary(const std::string& bytes) {
    impl_->send(bytes, websocketpp::frame::opcode::binary);
}

void WsTestClient::close(int code, const std::string& reason) {
    impl_->close(code, reason);
}

std::optional<Frame> WsTestClient::next(std::chrono::milliseconds timeout) {
    auto& shared = impl_->shared_;
    std::unique_lock lock(shared.mutex);
    if (!shared.changed.wait_for(lock, timeout, [&] { return !shared.inbox.empty(); })) {
        return std::nullopt;
    }
    Frame frame = std::move(shared.inbox.front());
    shared.inbox.pop_front();
    return frame;
}

std::optional<nlohmann::json> WsTestClient::next_of_type(const std::string& type,
                                                         std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        auto frame = next(left);
        if (!frame) {
            return std::nullopt;
        }
        auto message = frame->json();
        if (!frame->binary && message.is_object() && message.value("type", "") == type) {
            return message;
        }
        skipped_.push_back(std::move(*frame));
    }
}

std::optional<int> WsTestClient::wait_closed(std::chrono::milliseconds timeout) {
    auto& shared = impl_->shared_;
    std::unique_lock lock(shared.mutex);
    if (!shared.changed.wait_for(lock, timeout, [&] { return shared.closed || shared.failed; })) {
        return std::nullopt;
    }
    return shared.close_code;
}

bool WsTestClient::is_open() const {
    std::lock_guard lock(impl_->shared_.mutex);
    return impl_->shared_.opened && !impl_->shared_.closed;
}

std::string WsTestClient::error() const {
    std::lock_guard lock(impl_->shared_.mutex);
    return impl_->shared_.error;
}

int WsTestClient::http_status() const {
    std::lock_guard lock(impl_->shared_.mutex);
    return impl_->shared_.http_status;
}

}  // namespace olympus::test
