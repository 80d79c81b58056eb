// The emulator's WebSocket server: one websocketpp endpoint (ws or wss) on one io thread, which
// routes each connection to a session by path. Public methods post to that thread.
#include "olympus/emulator/emulator.hpp"

#include <future>
#include <map>
#include <stdexcept>
#include <thread>

#include <websocketpp/config/asio.hpp>
#include <websocketpp/server.hpp>

#include "olympus/log.hpp"

#include "gateway_connection.hpp"
#include "server_context.hpp"
#include "tls_material.hpp"
#include "voice_connection.hpp"

namespace olympus::emulator {
namespace {

struct PlainConfig : websocketpp::config::asio {};
struct TlsConfig : websocketpp::config::asio_tls {
    // Many peers never answer the TLS close_notify; waiting the default 5 s for it would keep
    // a closed connection counted against its user's limit long after the peer left.
    struct transport_config : websocketpp::config::asio_tls::transport_config {
        static const long timeout_socket_shutdown = 300;
    };
    using transport_type = websocketpp::transport::asio::endpoint<transport_config>;
};

using SslContext = std::shared_ptr<asio::ssl::context>;

/// Splits "/v1?token=abc&x=y" into its path and the value of `token`, if present.
std::string path_of(const std::string& resource) {
    return resource.substr(0, resource.find('?'));
}

std::optional<std::string> query_value(const std::string& resource, const std::string& key) {
    auto query = resource.find('?');
    if (query == std::string::npos) {
        return std::nullopt;
    }
    std::size_t pos = query + 1;
    while (pos <= resource.size()) {
        auto end = resource.find('&', pos);
        if (end == std::string::npos) {
            end = resource.size();
        }
        auto pair = resource.substr(pos, end - pos);
        auto eq = pair.find('=');
        if (pair.substr(0, eq) == key) {
            return eq == std::string::npos ? std::string() : pair.substr(eq + 1);
        }
        pos = end + 1;
    }
    return std::nullopt;
}

bool is_gateway_path(const std::string& path) {
    return path == "/v1" || path == "/v1/ws";
}

bool is_voice_path(const std::string& path) {
    return path == "/stream";
}

/// The server for one websocketpp config; everything but the constructor runs on the io thread.
class ServerBase {
public:
    virtual ~ServerBase() = default;
    virtual void listen(const std::string& host, std::uint16_t port) = 0;
    virtual std::uint16_t port() const = 0;
    virtual void run() = 0;
    virtual void shutdown() = 0;
    virtual void for_each_session(const std::function<void(Session&)>& fn) = 0;
    virtual asio::io_context& io() = 0;
};

template <typename Config>
class Server : public ServerBase {
public:
    using Endpoint = websocketpp::server<Config>;
    using ConnectionPtr = typename Endpoint::connection_ptr;
    using MessagePtr = typename Endpoint::message_ptr;

    Server(const EmulatorOptions& options, const JwtKey& key, const TlsMaterial* tls,
           std::size_t& refuse_next)
        : options_(options), tls_(tls), refuse_next_(refuse_next) {
        endpoint_.clear_access_channels(websocketpp::log::alevel::all);
        endpoint_.clear_error_channels(websocketpp::log::elevel::all);
        endpoint_.init_asio();
        endpoint_.set_reuse_addr(true);
        endpoint_.set_max_message_size(options.max_message_bytes);
        context_ = std::make_unique<ServerContext>(options, key, endpoint_.get_io_service());
        install_handlers();
    }

    ServerContext& context() { return *context_; }
    asio::io_context& io() override { return endpoint_.get_io_service(); }

    void listen(const std::string& host, std::uint16_t port) override {
        std::error_code ec;
        auto address = asio::ip::make_address(host, ec);
        if (ec) {
            throw std::runtime_error("emulator: bad listen address '" + host + "'");
        }
        endpoint_.listen(asio::ip::tcp::endpoint(address, port), ec);
        if (ec) {
            throw std::system_error(
                ec, "emulator: cannot listen on " + host + ":" + std::to_string(port));
        }
        endpoint_.start_accept(ec);
        if (ec) {
            throw std::system_error(ec, "emulator: cannot accept");
        }
        port_ = endpoint_.get_local_endpoint(ec).port();
    }

    std::uint16_t port() const override { return port_; }
    void run() override { endpoint_.run(); }

    void shutdown() override {
        // Stop accepting, say goodbye to every peer, and give the close frames a moment.
        std::error_code ec;
        endpoint_.stop_listening(ec);
        for (auto& [hdl, session] : sessions_) {
            session->drop(DropMode::going_away);
        }
        auto timer = std::make_shared<asio::steady_timer>(io(), std::chrono::milliseconds(200));
        timer->async_wait([this, timer](const std::error_code&) { endpoint_.stop(); });
    }

    void for_each_session(const std::function<void(Session&)>& fn) override {
        // Copy first: a session may end itself inside fn.
        std::vector<std::shared_ptr<Session>> all;
        for (auto& [hdl, session] : sessions_) {
            all.push_back(session);
        }
        for (auto& session : all) {
            fn(*session);
        }
    }

private:
    /// The Transport of one websocketpp connection.
    class WsTransport : public Transport {
    public:
        WsTransport(Endpoint& endpoint, websocketpp::connection_hdl hdl)
            : endpoint_(endpoint), hdl_(std::move(hdl)) {}

        void send_text(const std::string& text) override {
            std::error_code ec;
            endpoint_.send(hdl_, text, websocketpp::frame::opcode::text, ec);
        }
        void send_binary(const std::string& bytes) override {
            std::error_code ec;
            endpoint_.send(hdl_, bytes, websocketpp::frame::opcode::binary, ec);
        }
        void close(int code, const std::string& reason) override {
            std::error_code ec;
            endpoint_.close(hdl_, static_cast<websocketpp::close::status::value>(code), reason, ec);
        }
        void abort() override {
            std::error_code ec;
            auto con = endpoint_.get_con_from_hdl(hdl_, ec);
            if (ec) {
                return;
            }
            // A zero linger turns close() into a TCP reset: the peer sees the link die.
            auto& socket = con->get_raw_socket().lowest_layer();
            socket.set_option(asio::socket_base::linger(true, 0), ec);
            socket.close(ec);
        }
        std::size_t buffered_bytes() const override {
            std::error_code ec;
            auto con = endpoint_.get_con_from_hdl(hdl_, ec);
            return ec ? 0 : con->get_buffered_amount();
        }

    private:
        Endpoint& endpoint_;
        websocketpp::connection_hdl hdl_;
    };

    void install_handlers() {
        using websocketpp::connection_hdl;
        endpoint_.set_validate_handler([this](connection_hdl hdl) { return validate(hdl); });
        endpoint_.set_open_handler([this](connection_hdl hdl) { on_open(hdl); });
        endpoint_.set_close_handler([this](connection_hdl hdl) { on_end(hdl); });
        endpoint_.set_fail_handler([this](connection_hdl hdl) { on_end(hdl); });
        endpoint_.set_message_handler(
            [this](connection_hdl hdl, MessagePtr msg) { on_message(hdl, msg); });
        endpoint_.set_http_handler([this](connection_hdl hdl) { on_http(hdl); });
        if constexpr (std::is_same_v<Config, TlsConfig>) {
            endpoint_.set_tls_init_handler([this](connection_hdl) { return make_tls_context(); });
        }
    }

    SslContext make_tls_context() {
        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
        const auto& cert = tls_->certificate_pem;
        const auto& key = tls_->private_key_pem;
        ctx->use_certificate_chain(asio::buffer(cert.data(), cert.size()));
        ctx->use_private_key(asio::buffer(key.data(), key.size()), asio::ssl::context::pem);
        return ctx;
    }

    bool validate(websocketpp::connection_hdl hdl) {
        auto con = endpoint_.get_con_from_hdl(hdl);

        // Fault control first: a refused upgrade looks like an overloaded gateway.
        if (refuse_next_ > 0) {
            --refuse_next_;
            context_->stats.refused();
            con->set_status(websocketpp::http::status_code::service_unavailable);
            return false;
        }
        auto path = path_of(con->get_resource());
        if (!is_gateway_path(path) && !is_voice_path(path)) {
            con->set_status(websocketpp::http::status_code::not_found);
            return false;
        }
        return true;
    }

    void on_open(websocketpp::connection_hdl hdl) {
        auto con = endpoint_.get_con_from_hdl(hdl);
        std::error_code ec;
        con->get_raw_socket().lowest_layer().set_option(asio::ip::tcp::no_delay(true), ec);

        // A token may come with the upgrade: as ?token= or as a bearer Authorization header.
        std::optional<std::string> token = query_value(con->get_resource(), "token");
        const auto& header = con->get_request_header("Authorization");
        if (!token && header.rfind("Bearer ", 0) == 0) {
            token = header.substr(7);
        }
        context_->stats.opened();
        auto transport = std::make_unique<WsTransport>(endpoint_, hdl);
        if (is_voice_path(path_of(con->get_resource()))) {
            auto session =
                std::make_shared<VoiceConnection>(*context_, std::move(transport), http_base_url());
            sessions_.emplace(hdl, session);
            session->start();
            return;
        }
        auto session =
            std::make_shared<GatewayConnection>(*context_, std::move(transport), std::move(token));
        sessions_.emplace(hdl, session);
        session->start();
    }

    std::string http_base_url() const {
        return (tls_ != nullptr ? "https://localhost:" : "http://127.0.0.1:") +
               std::to_string(port_);
    }

    void on_message(websocketpp::connection_hdl hdl, MessagePtr msg) {
        auto it = sessions_.find(hdl);
        if (it == sessions_.end()) {
            return;
        }
        if (msg->get_opcode() == websocketpp::frame::opcode::text) {
            it->second->on_text(msg->get_payload());
        } else {
            it->second->on_binary(msg->get_payload());
        }
    }

    void on_end(websocketpp::connection_hdl hdl) {
        auto con = endpoint_.get_con_from_hdl(hdl);

        // websocketpp itself closes on protocol violations: 1009 for a frame over the limit,
        // 1007 for a text frame that is not UTF-8, 1002 for a broken frame.
        switch (con->get_local_close_code()) {
            case websocketpp::close::status::message_too_big:
                context_->stats.oversize();
                context_->stats.closed_with(1009);
                break;
            case websocketpp::close::status::invalid_payload:
            case websocketpp::close::status::protocol_error:
                context_->stats.closed_with(con->get_local_close_code());
                break;
            default:
                break;
        }
        auto it = sessions_.find(hdl);
        if (it == sessions_.end()) {
            return;
        }
        it->second->on_closed();
        sessions_.erase(it);
        context_->stats.ended();
    }

    void on_http(websocketpp::connection_hdl hdl) {
        auto con = endpoint_.get_con_from_hdl(hdl);
        auto path = path_of(con->get_resource());
        if (path == "/emulator/stats") {
            con->set_status(websocketpp::http::status_code::ok);
            con->append_header("Content-Type", "application/json");
            con->set_body(context_->stats.snapshot().to_json().dump());
            return;
        }
        // Reply audio offered as an audio_url.
        const std::string prefix = "/audio/";
        if (path.rfind(prefix, 0) == 0) {
            auto it = context_->audio_files.find(path.substr(prefix.size()));
            if (it != context_->audio_files.end()) {
                const bool mp3 =
                    it->first.size() > 4 && it->first.compare(it->first.size() - 4, 4, ".mp3") == 0;
                context_->stats.sent("<audio_file>");
                con->set_status(websocketpp::http::status_code::ok);
                con->append_header("Content-Type", mp3 ? "audio/mpeg" : "audio/wav");
                con->set_body(it->second);
                return;
            }
        }
        con->set_status(websocketpp::http::status_code::not_found);
        con->set_body("not found\n");
    }

    const EmulatorOptions& options_;
    const TlsMaterial* tls_;
    std::size_t& refuse_next_;
    Endpoint endpoint_;
    std::unique_ptr<ServerContext> context_;
    std::uint16_t port_ = 0;
    std::map<websocketpp::connection_hdl, std::shared_ptr<Session>,
             std::owner_less<websocketpp::connection_hdl>>
        sessions_;
};

}  // namespace

class Emulator::Impl {
public:
    explicit Impl(EmulatorOptions options)
        : options_(std::move(options)),
          key_(options_.jwt_key_file.empty() ? JwtKey::generate()
                                             : JwtKey::load_or_create(options_.jwt_key_file)) {
        if (options_.tls) {
            tls_ = options_.tls_cert_file.empty()
                       ? TlsMaterial::generate_self_signed()
                       : TlsMaterial::load(options_.tls_cert_file, options_.tls_key_file);
            auto server = std::make_unique<Server<TlsConfig>>(options_, key_, &tls_, refuse_next_);
            context_ = &server->context();
            server_ = std::move(server);
        } else {
            auto server =
                std::make_unique<Server<PlainConfig>>(options_, key_, nullptr, refuse_next_);
            context_ = &server->context();
            server_ = std::move(server);
        }
    }

    ~Impl() { stop(); }

    void start() {
        if (thread_.joinable()) {
            return;
        }
        server_->listen(options_.host, options_.port);
        thread_ = std::thread([this] { server_->run(); });
        log::get("emulator")->info("listening url={} tls={}", base_url(), options_.tls);
    }

    void stop() {
        if (!thread_.joinable()) {
            return;
        }
        asio::post(server_->io(), [this] { server_->shutdown(); });
        thread_.join();
    }

    /// Runs `fn` on the io thread (before start(): right here, since nothing else runs).
    void on_io(std::function<void()> fn) {
        if (!thread_.joinable()) {
            fn();
            return;
        }
        asio::post(server_->io(), std::move(fn));
    }

    std::string base_url() const {
        return (options_.tls ? "wss://localhost:" : "ws://127.0.0.1:") +
               std::to_string(server_->port());
    }

    EmulatorOptions options_;
    JwtKey key_;
    TlsMaterial tls_;
    std::size_t refuse_next_ = 0;
    std::unique_ptr<ServerBase> server_;
    ServerContext* context_ = nullptr;
    std::thread thread_;
};

Emulator::Emulator(EmulatorOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Emulator::~Emulator() = default;

void Emulator::start() {
    impl_->start();
}
void Emulator::stop() {
    impl_->stop();
}
std::uint16_t Emulator::port() const {
    return impl_->server_->port();
}
std::string Emulator::base_url() const {
    return impl_->base_url();
}
std::string Emulator::certificate_pem() const {
    return impl_->tls_.certificate_pem;
}
const JwtKey& Emulator::key() const {
    return impl_->key_;
}
const EmulatorOptions& Emulator::options() const {
    return impl_->options_;
}
Stats Emulator::stats() const {
    return impl_->context_->stats.snapshot();
}
void Emulator::reset_stats() {
    impl_->context_->stats.reset();
}

std::string Emulator::mint_token(const std::string& user_id, std::chrono::seconds lifetime) const {
    return impl_->key_.mint(user_id, "tenant-dev", default_permissions(), lifetime);
}

void Emulator::drop_all_connections(DropMode mode) {
    impl_->on_io([this, mode] {
        impl_->server_->for_each_session([mode](Session& session) { session.drop(mode); });
    });
}

void Emulator::refuse_next_connections(std::size_t n) {
    impl_->on_io([this, n] { impl_->refuse_next_ = n; });
}

void Emulator::set_pings_enabled(bool enabled) {
    impl_->on_io([this, enabled] {
        impl_->context_->pings_enabled = enabled;
        impl_->server_->for_each_session([](Session& session) { session.faults_changed(); });
    });
}

void Emulator::set_silent(bool silent) {
    impl_->on_io([this, silent] { impl_->context_->silent = silent; });
}

void Emulator::set_frame_delay(std::chrono::milliseconds delay) {
    impl_->on_io([this, delay] { impl_->context_->frame_delay = delay; });
}

void Emulator::set_reply_mode(ReplyMode mode) {
    impl_->on_io([this, mode] { impl_->context_->reply_mode = mode; });
}

void Emulator::set_voice_fault(VoiceFault fault) {
    impl_->on_io([this, fault] { impl_->context_->voice_fault = fault; });
}

std::optional<VoiceSessionRecord> Emulator::voice_session(const std::string& session_id) const {
    auto find = [this, &session_id]() -> std::optional<VoiceSessionRecord> {
        const auto& sessions = impl_->context_->voice_sessions;
        auto it = sessions.find(session_id);
        return it == sessions.end() ? std::nullopt : std::optional(it->second->record);
    };
    if (!impl_->thread_.joinable()) {
        return find();
    }
    std::promise<std::optional<VoiceSessionRecord>> result;
    auto future = result.get_future();
    asio::post(impl_->server_->io(), [&] { result.set_value(find()); });
    return future.get();
}

std::vector<VoiceSessionRecord> Emulator::voice_sessions() const {
    auto collect = [this] {
        std::vector<VoiceSessionRecord> out;
        for (const auto& id : impl_->context_->voice_order) {
            out.push_back(impl_->context_->voice_sessions.at(id)->record);
        }
        return out;
    };
    if (!impl_->thread_.joinable()) {
        return collect();
    }
    std::promise<std::vector<VoiceSessionRecord>> result;
    auto future = result.get_future();
    asio::post(impl_->server_->io(), [&] { result.set_value(collect()); });
    return future.get();
}

}  // namespace olympus::emulator
