// Security checks of the gateway client, the voice session and the emulator: TLS peers the
// client must refuse (expired, wrong name, self-signed without a CA, TLS 1.0/1.1 only) with a
// readable reason and without sending its token; tokens kept out of every log line at trace
// level; a hostile server that cannot make the gateway client or the voice session allocate
// without bound (oversize frames, floods of reply audio, audio_url bodies too large or decoding
// to hours); the emulator's resume refused to another user; and the emulator's JWT check
// audited on the wire. Loopback only. Test thread plus the io threads of the client, the emulator
// and the small servers below.
#include <arpa/inet.h>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "olympus/client.hpp"
#include "olympus/emulator/emulator.hpp"
#include "olympus/emulator/jwt.hpp"
#include "olympus/log.hpp"
#include "olympus/voice_session.hpp"

#include "support/test_env.hpp"
#include "support/ws_test_client.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OLYMPUS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define OLYMPUS_SANITIZED 1
#endif
#endif

namespace olympus::test {
namespace {

using namespace std::chrono_literals;
using emulator::Emulator;
using emulator::EmulatorOptions;

// ---- helpers: logs, options, certificates ----

// Every formatted log line of every logger, kept in memory. base_sink's mutex_ is held while
// sink_it_ runs; readers take it too.
class CapturedLog : public spdlog::sinks::base_sink<std::mutex> {
public:
    std::string text() {
        std::lock_guard lock(mutex_);
        return text_;
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        text_.append(formatted.data(), formatted.size());
    }
    void flush_() override {}

private:
    std::string text_;
};

// Installs a capturing sink at trace level for one test, and restores stderr after.
class LogCapture {
public:
    LogCapture() : sink_(std::make_shared<CapturedLog>()) {
        log::set_sink(sink_);
        log::set_level("trace");
    }
    ~LogCapture() {
        log::set_level("info");
        log::set_sink(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    }
    std::string text() { return sink_->text(); }
    bool contains(const std::string& needle) { return text().find(needle) != std::string::npos; }

private:
    std::shared_ptr<CapturedLog> sink_;
};

ClientOptions quick_options(const std::string& url, std::shared_ptr<TokenProvider> provider,
                            AuthMode mode = AuthMode::first_message) {
    ClientOptions options;
    options.connection.url = url;
    options.connection.auth_mode = mode;
    options.connection.token_provider = std::move(provider);
    options.connection.reconnect.base = 20ms;
    options.connection.reconnect.cap = 100ms;
    options.connection.reconnect.seed = 3;
    options.connection.connect_timeout = 2s;
    options.connection.auth_timeout = 2s;
    options.request_timeout = 2s;
    return options;
}

ClientOptions quick_options(const std::string& url, const std::string& token,
                            AuthMode mode = AuthMode::first_message) {
    return quick_options(url, std::make_shared<FixedTokenProvider>(token), mode);
}

struct KeyAndCert {
    std::string key_pem;
    std::string cert_pem;
};

std::string pem_of(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
}

std::string pem_of(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
}

// A self-signed P-256 certificate for `names` (subjectAltName text, e.g.
// "DNS:localhost,IP:127.0.0.1"), valid from `from` to `until` seconds relative to now.
KeyAndCert make_certificate(const std::string& names, long from, long until) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 4242);
    X509_gmtime_adj(X509_getm_notBefore(cert), from);
    X509_gmtime_adj(X509_getm_notAfter(cert), until);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("olympus test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, names.c_str());
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(cert, key, EVP_sha256());
    KeyAndCert out{pem_of(key), pem_of(cert)};
    X509_free(cert);
    EVP_PKEY_free(key);
    return out;
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
    auto path = dir + "/" + name;
    std::ofstream(path) << text;
    return path;
}

// An emulator serving wss with `material` as its certificate.
std::unique_ptr<Emulator> tls_emulator(const KeyAndCert& material, const std::string& dir) {
    EmulatorOptions options;
    options.tls = true;
    options.tls_cert_file = write_file(dir, "cert.pem", material.cert_pem);
    options.tls_key_file = write_file(dir, "key.pem", material.key_pem);
    auto emu = std::make_unique<Emulator>(options);
    emu->start();
    return emu;
}

// ---- TLS ----

// Connects to `url` trusting `ca_pem`; expects the client never to get through, the log to say
// `reason`, and the emulator (when given) never to see the token.
void expect_refused(const std::string& url, const std::string& ca_pem, const std::string& reason,
                    Emulator* emu) {
    LogCapture logs;
    auto token = emu != nullptr ? emu->mint_token() : std::string("a.b.c");
    auto options = quick_options(url, token);
    options.connection.tls.ca_pem = ca_pem;
    Client client(options);
    client.start();
    EXPECT_TRUE(eventually([&] { return logs.contains(reason); }, 5s))
        << "no log line says \"" << reason << "\"; log was:\n"
        << logs.text().substr(0, 2000);
    auto text = logs.text();
    auto at = text.find("link lost");
    if (at != std::string::npos) {
        std::printf("[ refused  ] %s\n", text.substr(at, text.find('\n', at) - at).c_str());
    }
    EXPECT_NE(client.state(), ConnectionState::connected);
    EXPECT_EQ(client.stats().connects, 0u);
    if (emu != nullptr) {
        EXPECT_EQ(emu->stats().received_of("auth"), 0u) << "the token went to a refused server";
    }
    client.close();
}

class TlsRefusal : public ::testing::Test {
protected:
    void SetUp() override { dir_ = make_temp_dir("olympus-tls"); }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string dir_;
};

// A certificate that expired yesterday is refused even though it is trusted.
TEST_F(TlsRefusal, ExpiredCertificate) {
    auto material = make_certificate("DNS:localhost,IP:127.0.0.1", -2 * 86400, -86400);
    auto emu = tls_emulator(material, dir_);
    expect_refused(emu->gateway_url(), material.cert_pem, "certificate has expired", emu.get());
}

// A trusted certificate for another host name is refused.
TEST_F(TlsRefusal, WrongHostname) {
    auto material = make_certificate("DNS:other.example", -60, 86400);
    auto emu = tls_emulator(material, dir_);
    expect_refused(emu->gateway_url(), material.cert_pem, "hostname mismatch", emu.get());
}

// The emulator's self-signed certificate, with no CA given: the system store does not trust it.
TEST_F(TlsRefusal, SelfSignedWithoutCa) {
    EmulatorOptions options;
    options.tls = true;
    Emulator emu(options);
    emu.start();
    expect_refused(emu.gateway_url(), "", "self-signed certificate", &emu);
}

// A listening TCP socket on 127.0.0.1 with an ephemeral port, for the small servers below.
int listen_on_loopback(std::uint16_t& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd, 8);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    return fd;
}

// A TLS server restricted to TLS 1.0 and 1.1 (security level 0 so that OpenSSL 3 allows it).
// It records whether any handshake completed.
class OldTlsServer {
public:
    explicit OldTlsServer(const KeyAndCert& material) {
        ctx_ = SSL_CTX_new(TLS_server_method());
        SSL_CTX_set_security_level(ctx_, 0);
        SSL_CTX_set_cipher_list(ctx_, "DEFAULT:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(ctx_, TLS1_1_VERSION);
        BIO* cbio = BIO_new_mem_buf(material.cert_pem.data(), -1);
        X509* cert = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr);
        BIO* kbio = BIO_new_mem_buf(material.key_pem.data(), -1);
        EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio, nullptr, nullptr, nullptr);
        SSL_CTX_use_certificate(ctx_, cert);
        SSL_CTX_use_PrivateKey(ctx_, key);
        X509_free(cert);
        EVP_PKEY_free(key);
        BIO_free(cbio);
        BIO_free(kbio);

        fd_ = listen_on_loopback(port_);
        thread_ = std::thread([this] { serve(); });
    }
    ~OldTlsServer() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
        SSL_CTX_free(ctx_);
    }
    std::uint16_t port() const { return port_; }
    int handshakes_ok() const { return ok_.load(); }
    int handshakes_failed() const { return failed_.load(); }
    SSL_CTX* context() { return ctx_; }

private:
    void serve() {
        while (true) {
            int peer = ::accept(fd_, nullptr, nullptr);
            if (peer < 0) {
                return;
            }
            SSL* ssl = SSL_new(ctx_);
            SSL_set_fd(ssl, peer);
            if (SSL_accept(ssl) == 1) {
                ++ok_;
                SSL_shutdown(ssl);
            } else {
                ++failed_;
            }
            SSL_free(ssl);
            ::close(peer);
        }
    }

    SSL_CTX* ctx_ = nullptr;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
    std::atomic<int> ok_{0}, failed_{0};
};

// A peer that speaks only TLS 1.0/1.1 is refused by the client, which requires TLS 1.2.
// Control: an OpenSSL client that allows TLS 1.0 does complete a handshake with it.
TEST_F(TlsRefusal, Tls10And11OnlyPeer) {
    auto material = make_certificate("DNS:localhost,IP:127.0.0.1", -60, 86400);
    OldTlsServer server(material);

    // The control handshake proves the server works with an old-protocol client.
    {
        SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(server.port());
        ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        SSL* ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        EXPECT_EQ(SSL_connect(ssl), 1) << "control: an old-protocol client should get through";
        EXPECT_LE(SSL_version(ssl), TLS1_1_VERSION);
        SSL_free(ssl);
        ::close(fd);
        SSL_CTX_free(ctx);
        ASSERT_TRUE(eventually([&] { return server.handshakes_ok() == 1; }));
    }

    // The client refuses, naming the protocol.
    auto url = "wss://localhost:" + std::to_string(server.port()) + "/v1";
    expect_refused(url, material.cert_pem, "protocol", nullptr);
    EXPECT_EQ(server.handshakes_ok(), 1) << "the client completed a TLS 1.0/1.1 handshake";
    EXPECT_GE(server.handshakes_failed(), 1);
}

// ---- tokens never reach a log line ----

// Hands out a new token on each request, so re-authentication and a rejection carry tokens
// the test knows.
class ListTokenProvider : public TokenProvider {
public:
    explicit ListTokenProvider(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}
    std::string token(TokenRequest) override {
        std::lock_guard lock(mutex_);
        if (next_ >= tokens_.size()) {
            return tokens_.back();
        }
        return tokens_[next_++];
    }

private:
    std::mutex mutex_;
    std::vector<std::string> tokens_;
    std::size_t next_ = 0;
};

// Every part of a token that must not be logged: the whole, its payload and its signature.
std::vector<std::string> secrets_of(const std::string& token) {
    auto first = token.find('.');
    auto last = token.rfind('.');
    return {token, token.substr(first + 1, last - first - 1), token.substr(last + 1)};
}

// At trace level, auth in all three modes, re-authentication and a rejected token put no part
// of any token into the logs of the client or the emulator.
TEST(TokenSecrecy, NoTokenInLogsAtTraceLevel) {
    LogCapture logs;
    Emulator emu;
    emu.start();
    std::vector<std::string> all_tokens;

    for (auto mode : {AuthMode::first_message, AuthMode::header, AuthMode::query}) {
        // Short-lived tokens force a re-authentication within about a second.
        auto first = emu.mint_token("user-log", 3s);
        auto second = emu.mint_token("user-log", 1h);
        all_tokens.push_back(first);
        all_tokens.push_back(second);
        auto provider =
            std::make_shared<ListTokenProvider>(std::vector<std::string>{first, second});
        auto options = quick_options(emu.gateway_url(), provider, mode);
        options.connection.reauth_margin = 60s;
        Client client(options);
        client.subscribe("orders", nullptr, [](const Event&) {});
        client.start();
        ASSERT_TRUE(eventually([&] { return client.state() == ConnectionState::connected; }));
        if (mode == AuthMode::first_message) {
            EXPECT_TRUE(eventually([&] { return logs.contains("re-authenticated"); }, 5s))
                << "no re-authentication happened";
        }
    }

    // A token the emulator rejects (signed by another key), in each mode.
    auto foreign = emulator::JwtKey::generate().mint("user-log", "tenant-x", {}, 1h);
    all_tokens.push_back(foreign);
    for (auto mode : {AuthMode::first_message, AuthMode::header, AuthMode::query}) {
        Client client(quick_options(emu.gateway_url(), foreign, mode));
        client.start();
        EXPECT_TRUE(eventually([&] {
            return client.state() == ConnectionState::disconnected &&
                   client.terminal_reason() == errc::invalid_token;
        })) << "mode "
            << static_cast<int>(mode);
    }

    auto text = logs.text();
    ASSERT_FALSE(text.empty()) << "nothing was captured: the test would prove nothing";
    EXPECT_NE(text.find("re-authenticated"), std::string::npos) << "re-auth path not exercised";
    EXPECT_NE(text.find("token rejected"), std::string::npos) << "rejection path not exercised";
    for (const auto& token : all_tokens) {
        for (const auto& secret : secrets_of(token)) {
            EXPECT_EQ(text.find(secret), std::string::npos)
                << "a token part of " << secret.size() << " chars reached the log";
        }
    }
    EXPECT_EQ(text.find("token="), text.find("token=<")) << "an unredacted ?token= was logged";
}

// ---- a hostile server cannot make the client allocate without bound ----

long rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        if (key == "VmRSS:") {
            long value = 0;
            status >> value;
            return value;
        }
        status.ignore(1 << 12, '\n');
    }
    return 0;
}

std::string base64(const unsigned char* data, std::size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    auto len =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
    out.resize(static_cast<std::size_t>(len));
    return out;
}

std::string base64url(const std::string& data) {
    auto text = base64(reinterpret_cast<const unsigned char*>(data.data()), data.size());
    for (auto& c : text) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    while (!text.empty() && text.back() == '=') {
        text.pop_back();
    }
    return text;
}

// An unmasked server frame header for `length` payload bytes.
std::string frame_header(int opcode, std::uint64_t length) {
    std::string h;
    h += static_cast<char>(0x80 | opcode);
    if (length < 126) {
        h += static_cast<char>(length);
    } else if (length <= 0xffff) {
        h += static_cast<char>(126);
        h += static_cast<char>(length >> 8);
        h += static_cast<char>(length & 0xff);
    } else {
        h += static_cast<char>(127);
        for (int i = 7; i >= 0; --i) {
            h += static_cast<char>((length >> (8 * i)) & 0xff);
        }
    }
    return h;
}

// A WebSocket server written by hand, so it can break the rules: it accepts one client, sends
// `opening` (auth_success for the gateway, session_started for the voice stream) without
// waiting for the client's first frame, then runs `attack` on the raw socket.
class HostileServer {
public:
    using Attack = std::function<void(int fd)>;

    explicit HostileServer(Attack attack,
                           nlohmann::json opening = {{"type", "auth_success"}, {"user_id", "u"}})
        : attack_(std::move(attack)), opening_(opening.dump()) {
        fd_ = listen_on_loopback(port_);
        thread_ = std::thread([this] { serve(); });
    }
    ~HostileServer() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    std::string url(const std::string& path = "/v1") const {
        return "ws://127.0.0.1:" + std::to_string(port_) + path;
    }
    bool attack_done() const { return done_.load(); }
    bool stopping() const { return stop_.load(); }

private:
    void serve() {
        int peer = ::accept(fd_, nullptr, nullptr);
        if (peer < 0) {
            return;
        }
        timeval tv{2, 0};
        ::setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(peer, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (handshake(peer)) {
            auto frame = frame_header(1, opening_.size()) + opening_;
            ::send(peer, frame.data(), frame.size(), MSG_NOSIGNAL);
            attack_(peer);
        }
        done_ = true;
        ::close(peer);
    }

    // Reads the upgrade request and answers 101 with the key's accept hash.
    static bool handshake(int peer) {
        std::string request;
        char buffer[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
            auto n = ::recv(peer, buffer, sizeof buffer, 0);
            if (n <= 0) {
                return false;
            }
            request.append(buffer, static_cast<std::size_t>(n));
        }
        auto at = request.find("Sec-WebSocket-Key: ");
        if (at == std::string::npos) {
            return false;
        }
        auto key = request.substr(at + 19, request.find("\r\n", at) - at - 19);
        auto material = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char digest[SHA_DIGEST_LENGTH];
        SHA1(reinterpret_cast<const unsigned char*>(material.data()), material.size(), digest);
        auto response =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
            base64(digest, sizeof digest) + "\r\n\r\n";
        return ::send(peer, response.data(), response.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(response.size());
    }

    Attack attack_;
    std::string opening_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
    std::atomic<bool> stop_{false}, done_{false};
};

// Sends `bytes` fully; false when the peer went away.
bool send_all(int fd, const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

ClientOptions hostile_options(const std::string& url) {
    auto options = quick_options(url, "t.o.k");
    options.connection.reconnect.max_attempts = 1;  // one link is the whole experiment
    return options;
}

// A frame that announces 1 TiB: the client closes the link as soon as it reads the header,
// having taken in at most a few megabytes, instead of buffering what follows.
TEST(BoundedAllocation, HugeAnnouncedFrameClosesLink) {
    std::atomic<std::uint64_t> pushed{0};
    HostileServer server([&](int fd) {
        if (!send_all(fd, frame_header(2, 1ull << 40))) {
            return;
        }
        std::string zeros(64 * 1024, '\0');
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < deadline && send_all(fd, zeros)) {
            pushed += zeros.size();
        }
    });
    auto rss_before = rss_kib();
    Client client(hostile_options(server.url()));
    client.start();
    ASSERT_TRUE(eventually([&] { return server.attack_done(); }, 10s));
    EXPECT_EQ(client.stats().connects, 1u) << "the client never opened the link to the server";
    EXPECT_GE(client.stats().dropped_frames, 1u) << "the oversize frame was not refused";
    EXPECT_LT(pushed.load(), 64ull << 20) << "the client kept reading an endless frame";
    EXPECT_NE(client.state(), ConnectionState::connected);
#ifndef OLYMPUS_SANITIZED
    EXPECT_LT(rss_kib() - rss_before, 32 * 1024) << "RSS grew by more than 32 MiB";
#else
    (void)rss_before;
#endif
}

// 2 s of back-to-back 200 KB binary frames (above the 64 KB limit, below the hard limit), sent
// once `go` is set. The link then stays open until `release`: closing with the client's pongs
// unread would reset it and discard frames still in flight.
struct OversizeFlood {
    std::atomic<std::uint64_t> frames{0};
    std::atomic<bool> go{false}, sent{false}, release{false};

    HostileServer::Attack attack() {
        return [this](int fd) {
            std::string frame = frame_header(2, 200'000) + std::string(200'000, 'x');
            if (!eventually([&] { return go.load(); })) {
                return;
            }
            auto deadline = std::chrono::steady_clock::now() + 2s;
            while (std::chrono::steady_clock::now() < deadline && send_all(fd, frame)) {
                ++frames;
            }
            sent = true;
            eventually([&] { return release.load(); }, 30s);
        };
    }
    // True once every frame sent was counted by `dropped`.
    bool all_dropped(std::uint64_t dropped) const {
        return sent.load() && frames.load() > 0 && dropped == frames.load();
    }
};

// The flood at the gateway client: each frame dropped and counted, the link stays up, and
// memory stays flat.
TEST(BoundedAllocation, EndlessOversizeFramesAreDroppedAndCounted) {
    OversizeFlood flood;
    HostileServer server(flood.attack());
    Client client(hostile_options(server.url()));
    client.start();
    ASSERT_TRUE(eventually([&] { return client.state() == ConnectionState::connected; }));
    auto rss_before = rss_kib();
    flood.go = true;
    ASSERT_TRUE(eventually([&] { return flood.all_dropped(client.stats().dropped_frames); }, 15s))
        << "sent " << flood.frames.load() << " dropped " << client.stats().dropped_frames;
    EXPECT_GT(flood.frames.load(), 20u);
    EXPECT_EQ(client.state(), ConnectionState::connected);
    flood.release = true;
#ifndef OLYMPUS_SANITIZED
    EXPECT_LT(rss_kib() - rss_before, 16 * 1024) << "RSS grew by more than 16 MiB";
#else
    (void)rss_before;
#endif
}

// Endless small binary frames on the gateway (which carries no binary) are counted as bad
// frames, every one, without growth.
TEST(BoundedAllocation, EndlessBinaryOnGatewayIsCounted) {
    std::atomic<std::uint64_t> frames{0};
    std::atomic<bool> connected{false}, release{false};
    HostileServer server([&](int fd) {
        std::string frame = frame_header(2, 960) + std::string(960, 'a');
        if (!eventually([&] { return connected.load(); })) {
            return;
        }
        auto deadline = std::chrono::steady_clock::now() + 1s;
        while (std::chrono::steady_clock::now() < deadline && send_all(fd, frame)) {
            ++frames;
        }
        eventually([&] { return release.load(); }, 30s);
    });
    Client client(hostile_options(server.url()));
    client.start();
    ASSERT_TRUE(eventually([&] { return client.state() == ConnectionState::connected; }));
    auto rss_before = rss_kib();
    connected = true;
    ASSERT_TRUE(eventually(
        [&] { return frames.load() > 0 && client.stats().bad_frames == frames.load(); }, 15s))
        << "sent " << frames.load() << " bad " << client.stats().bad_frames;
    EXPECT_EQ(client.state(), ConnectionState::connected);
    release = true;
#ifndef OLYMPUS_SANITIZED
    EXPECT_LT(rss_kib() - rss_before, 16 * 1024);
#else
    (void)rss_before;
#endif
}

// ---- the same for the voice session ----

// What a hand-written voice server opens with: the session, 48 kHz Opus replies.
nlohmann::json hostile_session_started() {
    return {{"type", "session_started"},
            {"id", "start-1"},
            {"session_id", "voice-sess-hostile"},
            {"audio",
             {{"encoding", "opus"}, {"sample_rate", 48000}, {"channels", 1}, {"frame_ms", 20}}},
            {"resumed", false}};
}

VoiceSessionOptions hostile_voice_options(const std::string& url) {
    VoiceSessionOptions options;
    options.connection.url = url;
    options.connection.token_provider = std::make_shared<FixedTokenProvider>("t.o.k");
    options.connection.reconnect.max_attempts = 1;  // one link is the whole experiment
    options.start_timeout = 3s;
    return options;
}

// Collects the session's error events, from the io thread.
class VoiceErrors {
public:
    VoiceSession::EventHandler handler() {
        return [this](const VoiceEvent& e) {
            if (e.kind == VoiceEvent::Kind::error) {
                std::lock_guard lock(mutex_);
                errors_.emplace_back(e.error, e.text);
            }
        };
    }
    std::optional<std::string> first(errc code) {
        std::lock_guard lock(mutex_);
        for (const auto& [ec, text] : errors_) {
            if (ec == code) {
                return text;
            }
        }
        return std::nullopt;
    }

private:
    std::mutex mutex_;
    std::vector<std::pair<std::error_code, std::string>> errors_;
};

// The same flood on the voice stream: each frame dropped and counted by the transport before it
// reaches the jitter buffer, the session stays active, memory stays flat.
TEST(BoundedAllocation, VoiceOversizeFramesAreDroppedAndCounted) {
    OversizeFlood flood;
    HostileServer server(flood.attack(), hostile_session_started());
    VoiceSession session(hostile_voice_options(server.url("/stream")), nullptr, nullptr, nullptr);
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::active, 5s));
    auto rss_before = rss_kib();
    flood.go = true;
    ASSERT_TRUE(eventually(
        [&] { return flood.all_dropped(session.connection().stats().dropped_frames); }, 15s))
        << "sent " << flood.frames.load() << " dropped "
        << session.connection().stats().dropped_frames;
    EXPECT_GT(flood.frames.load(), 20u);
    EXPECT_EQ(session.state(), VoiceState::active);
    EXPECT_EQ(session.stats().reply_frames_received, 0u) << "an oversize frame reached the session";
    flood.release = true;
#ifndef OLYMPUS_SANITIZED
    EXPECT_LT(rss_kib() - rss_before, 16 * 1024) << "RSS grew by more than 16 MiB";
#else
    (void)rss_before;
#endif
}

// A voice frame that announces 1 TiB: the link is closed at the header, not buffered.
TEST(BoundedAllocation, VoiceHugeAnnouncedFrameClosesLink) {
    std::atomic<std::uint64_t> pushed{0};
    std::atomic<bool> active{false};
    HostileServer server(
        [&](int fd) {
            if (!eventually([&] { return active.load(); }) ||
                !send_all(fd, frame_header(2, 1ull << 40))) {
                return;
            }
            std::string zeros(64 * 1024, '\0');
            auto deadline = std::chrono::steady_clock::now() + 5s;
            while (std::chrono::steady_clock::now() < deadline && send_all(fd, zeros)) {
                pushed += zeros.size();
            }
        },
        hostile_session_started());
    auto rss_before = rss_kib();
    VoiceSession session(hostile_voice_options(server.url("/stream")), nullptr, nullptr, nullptr);
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::active, 5s));
    active = true;
    ASSERT_TRUE(eventually([&] { return server.attack_done(); }, 10s));
    EXPECT_GE(session.connection().stats().dropped_frames, 1u) << "the frame was not refused";
    EXPECT_LT(pushed.load(), 64ull << 20) << "the session kept reading an endless frame";
    EXPECT_TRUE(eventually([&] { return session.stats().link_drops == 1; }));
#ifndef OLYMPUS_SANITIZED
    EXPECT_LT(rss_kib() - rss_before, 32 * 1024) << "RSS grew by more than 32 MiB";
#else
    (void)rss_before;
#endif
}

// The emulator floods reply audio for 2 s, hundreds of times faster than real time: the jitter
// buffer holds what it can, every other frame is dropped and counted, each frame is accounted
// for exactly once, memory stays flat, and the session plays on when the flood stops.
TEST(BoundedAllocation, ReplyAudioFloodIsDroppedAndCounted) {
    EmulatorOptions options;
    options.greeting_duration = 3s;
    Emulator emu(options);
    emu.start();
    emu.set_voice_fault(emulator::VoiceFault::flood_reply_frames);
    VoiceSessionOptions voice;
    voice.connection.url = emu.voice_url();
    voice.connection.token_provider = std::make_shared<FixedTokenProvider>(emu.mint_token());
    VoiceSession session(voice, nullptr, nullptr, nullptr);
    session.start();
    ASSERT_TRUE(session.wait_for(VoiceState::active, 5s));
    ASSERT_TRUE(eventually([&] { return session.stats().reply_frames_received > 1000; }));
    auto rss_before = rss_kib();
    eventually([] { return false; }, 2s);
    auto rss_flooded = rss_kib();

    // The flood stops; the greeting ends at its own pace and every frame sent is in.
    emu.set_voice_fault(emulator::VoiceFault::none);
    ASSERT_TRUE(session.wait_replies_done(500ms, 20s));
    auto sent = emu.voice_sessions().front().reply_frames_sent;
    ASSERT_TRUE(eventually([&] { return session.stats().reply_frames_received == sent; }, 10s))
        << "sent " << sent << " received " << session.stats().reply_frames_received;
    auto stats = session.stats();
    std::printf("[ flood    ] reply frames sent=%llu dropped=%llu played=%llu concealed=%llu\n",
                static_cast<unsigned long long>(sent),
                static_cast<unsigned long long>(stats.reply_frames_dropped),
                static_cast<unsigned long long>(stats.frames_played),
                static_cast<unsigned long long>(stats.concealed_frames));
    EXPECT_GT(sent, 20'000u) << "the flood was not a flood";
    EXPECT_GT(stats.reply_frames_dropped, sent / 2);
    EXPECT_EQ(stats.reply_frames_received, stats.reply_frames_dropped +
                                               (stats.frames_played - stats.concealed_frames) +
                                               stats.bad_frames)
        << "a reply frame was neither played nor counted as dropped";
    EXPECT_EQ(session.state(), VoiceState::active);
#ifndef OLYMPUS_SANITIZED
    EXPECT_LT(rss_flooded - rss_before, 8 * 1024) << "RSS grew by more than 8 MiB under the flood";
#else
    (void)rss_before;
    (void)rss_flooded;
#endif
}

// Numbers no clock or integer can hold, from the server (a reply's duration_ms) and in the
// token (its exp): read as absent, not converted (found by running voice_inbound_fuzz on such a
// frame; under UBSan the conversion aborted).
TEST(HostileInput, OutOfRangeNumbersAreReadAsAbsent) {
    std::atomic<bool> release{false};
    HostileServer server(
        [&](int fd) {
            auto done = nlohmann::json{
                {"type", "response_audio_done"},
                {"response_id", "r1"},
                {"duration_ms",
                 1e300}}.dump();
            send_all(fd, frame_header(1, done.size()) + done);
            eventually([&] { return release.load(); }, 30s);
        },
        hostile_session_started());
    std::mutex mutex;
    std::vector<VoiceEvent> done;
    auto options = hostile_voice_options(server.url("/stream"));
    auto claims = base64url(R"({"sub":"u","exp":1e300})");
    options.connection.token_provider =
        std::make_shared<FixedTokenProvider>(base64url(R"({"alg":"RS256"})") + "." + claims + ".c");
    VoiceSession session(options, nullptr, nullptr, [&](const VoiceEvent& e) {
        if (e.kind == VoiceEvent::Kind::response_audio_done) {
            std::lock_guard lock(mutex);
            done.push_back(e);
        }
    });
    session.start();
    ASSERT_TRUE(eventually([&] {
        std::lock_guard lock(mutex);
        return !done.empty();
    }));
    EXPECT_EQ(done.front().played_ms, 0);
    EXPECT_EQ(session.state(), VoiceState::active);
    release = true;
}

// An HTTP server written by hand for audio_url tests: answers every request with 200 and the
// body `respond` writes on the raw socket, then closes. One connection at a time.
class AudioUrlServer {
public:
    using Respond = std::function<void(int fd)>;

    explicit AudioUrlServer(Respond respond) : respond_(std::move(respond)) {
        fd_ = listen_on_loopback(port_);
        thread_ = std::thread([this] { serve(); });
    }
    ~AudioUrlServer() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/reply.wav"; }

private:
    void serve() {
        while (true) {
            int peer = ::accept(fd_, nullptr, nullptr);
            if (peer < 0) {
                return;
            }
            timeval tv{5, 0};
            ::setsockopt(peer, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            std::string request;
            char buffer[4096];
            while (request.find("\r\n\r\n") == std::string::npos) {
                auto n = ::recv(peer, buffer, sizeof buffer, 0);
                if (n <= 0) {
                    break;
                }
                request.append(buffer, static_cast<std::size_t>(n));
            }
            respond_(peer);
            ::close(peer);
        }
    }

    Respond respond_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

// A WAV header for 8-bit mono at 8 kHz announcing `data_bytes` of samples.
std::string wav_u8_header(std::uint32_t data_bytes) {
    auto le32 = [](std::uint32_t v) {
        return std::string{static_cast<char>(v), static_cast<char>(v >> 8),
                           static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
    };
    std::string h = "RIFF" + le32(36 + data_bytes) + "WAVEfmt " + le32(16);
    h += std::string("\x01\x00\x01\x00", 4) + le32(8000) + le32(8000);
    h += std::string("\x01\x00\x08\x00", 4) + "data" + le32(data_bytes);
    return h;
}

// A voice server whose one reply is an audio_url; the session fetches it after the grace.
void expect_audio_url_refused(const std::string& url, std::size_t rss_limit_kib,
                              const std::function<std::uint64_t()>& pushed) {
    std::atomic<bool> release{false};
    HostileServer server(
        [&](int fd) {
            auto reply = nlohmann::json{
                {"type", "final_response"},
                {"response_id", "r1"},
                {"text", "Here is your order."},
                {"audio_url",
                 url}}.dump();
            send_all(fd, frame_header(1, reply.size()) + reply);
            eventually([&] { return release.load(); }, 30s);
        },
        hostile_session_started());
    VoiceErrors errors;
    auto rss_before = rss_kib();
    VoiceSession session(hostile_voice_options(server.url("/stream")), nullptr, nullptr,
                         errors.handler());
    session.start();
    ASSERT_TRUE(eventually([&] { return errors.first(errc::audio_too_large).has_value(); }, 20s))
        << "no audio_too_large error";
    std::printf("[ refused  ] %s (server pushed %llu bytes)\n",
                errors.first(errc::audio_too_large)->c_str(),
                static_cast<unsigned long long>(pushed()));
    EXPECT_EQ(session.stats().audio_urls_played, 0u);
    EXPECT_EQ(session.state(), VoiceState::active) << "the session must carry on";
    EXPECT_TRUE(session.wait_replies_done(200ms, 5s)) << "the refused reply is still pending";
    release = true;
#ifndef OLYMPUS_SANITIZED
    EXPECT_LT(rss_kib() - rss_before, static_cast<long>(rss_limit_kib));
#else
    (void)rss_before;
    (void)rss_limit_kib;
#endif
}

// An audio_url whose body never ends: the download stops at the bound with audio_too_large.
TEST(BoundedAllocation, EndlessAudioUrlBodyStopsAtTheBound) {
    std::atomic<std::uint64_t> pushed{0};
    AudioUrlServer http([&](int fd) {
        std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nConnection: close\r\n\r\n";
        if (!send_all(fd, head + wav_u8_header(0xffffff00u))) {
            return;
        }
        std::string silence(64 * 1024, '\x80');
        auto deadline = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < deadline && send_all(fd, silence)) {
            pushed += silence.size();
        }
    });
    expect_audio_url_refused(http.url(), 48 * 1024, [&] { return pushed.load(); });
    EXPECT_LT(pushed.load(), 24ull << 20) << "the client read far past the bound";
}

// An audio_url that announces a body of 4 GB: refused before the body is read.
TEST(BoundedAllocation, AnnouncedHugeAudioUrlBodyIsRefusedAtOnce) {
    std::atomic<std::uint64_t> pushed{0};
    AudioUrlServer http([&](int fd) {
        std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: 4294967296\r\n\r\n";
        if (!send_all(fd, head + wav_u8_header(0xffffff00u))) {
            return;
        }
        std::string silence(64 * 1024, '\x80');
        auto deadline = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < deadline && send_all(fd, silence)) {
            pushed += silence.size();
        }
    });
    expect_audio_url_refused(http.url(), 16 * 1024, [&] { return pushed.load(); });
    EXPECT_LT(pushed.load(), 8ull << 20) << "the body was read although its length was refused";
}

// A 12 MB audio_url (inside the body bound) that decodes to 25 minutes of audio: decoding stops
// at the bound on reply length with audio_too_large, instead of expanding it to 1.2 GB of PCM.
TEST(BoundedAllocation, AudioUrlThatDecodesToHoursStopsAtTheBound) {
    constexpr std::uint32_t kSamples = 12'000'000;
    AudioUrlServer http([&](int fd) {
        std::string head = "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: " +
                           std::to_string(44 + kSamples) + "\r\n\r\n";
        send_all(fd, head + wav_u8_header(kSamples) + std::string(kSamples, '\x80'));
    });
    expect_audio_url_refused(http.url(), 96 * 1024, [] { return std::uint64_t{44 + kSamples}; });
}

// ---- the emulator's voice sessions belong to their user ----

nlohmann::json start_session(const std::string& token, const std::string& resume = "") {
    nlohmann::json start = {{"type", "start_session"},
                            {"id", "start-1"},
                            {"location_id", "loc-1"},
                            {"channel", "drive_thru"},
                            {"access_token", token}};
    if (!resume.empty()) {
        start["resume_session_id"] = resume;
    }
    return start;
}

// Another user's token cannot resume a voice session, nor take it over from its live link: it
// gets a new session of its own, and the owner's session carries on, on the owner's link.
TEST(VoiceSessionAudit, AnotherUserCannotResumeASession) {
    Emulator emu;
    emu.start();
    WsTestClient alice, mallory;
    ASSERT_TRUE(alice.connect(emu.voice_url()));
    alice.send_json(start_session(emu.mint_token("user-alice")));
    auto started = alice.next_of_type("session_started");
    ASSERT_TRUE(started);
    auto id = (*started)["session_id"].get<std::string>();

    ASSERT_TRUE(mallory.connect(emu.voice_url()));
    mallory.send_json(start_session(emu.mint_token("user-mallory"), id));
    auto other = mallory.next_of_type("session_started");
    ASSERT_TRUE(other);
    EXPECT_NE((*other)["session_id"], id);
    EXPECT_EQ((*other)["resumed"], false);

    // Alice's link still carries her session.
    alice.send_binary(std::string(40, '\x01'));
    EXPECT_TRUE(eventually([&] { return emu.voice_session(id)->frames_received == 1; }));
    EXPECT_TRUE(alice.is_open());
    EXPECT_EQ(emu.voice_session(id)->resumes, 0);
}

// ---- the emulator's JWT check, on the wire ----

std::string claims_json(std::chrono::seconds from_now) {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    return nlohmann::json{{"sub", "user-mallory"},
                          {"tenant_id", "tenant-x"},
                          {"permissions", {"orders.read"}},
                          {"iat", now - 60},
                          {"exp", now + from_now.count()}}
        .dump();
}

// Tokens the emulator must refuse, by name.
std::vector<std::pair<std::string, std::string>> forged_tokens(const Emulator& emu) {
    std::vector<std::pair<std::string, std::string>> out;
    auto payload = base64url(claims_json(1h));

    // alg none, with and without a trailing signature part.
    auto none = base64url(R"({"alg":"none","typ":"JWT"})");
    out.emplace_back("alg_none", none + "." + payload + ".");
    out.emplace_back("alg_none_no_dot", none + "." + payload);

    // HS256 keyed with the server's public key (algorithm confusion).
    auto hs = base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + payload;
    auto pub = emu.key().public_pem();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), pub.data(), static_cast<int>(pub.size()),
         reinterpret_cast<const unsigned char*>(hs.data()), hs.size(), mac, &mac_len);
    out.emplace_back("hs256_with_public_key",
                     hs + "." + base64url(std::string(reinterpret_cast<char*>(mac), mac_len)));

    // Signed by another key.
    out.emplace_back("wrong_key",
                     emulator::JwtKey::generate().mint("user-mallory", "tenant-x", {}, 1h));

    // Expired a minute ago, signed by the right key.
    emulator::TokenClaims expired;
    expired.user_id = "user-mallory";
    expired.issued_at = std::chrono::system_clock::now() - 2h;
    expired.expires_at = std::chrono::system_clock::now() - 1min;
    out.emplace_back("expired", emu.key().sign(expired));

    // A valid token whose payload was swapped for another user's.
    auto genuine = emu.mint_token("user-alice");
    auto first = genuine.find('.');
    auto last = genuine.rfind('.');
    out.emplace_back("tampered_payload",
                     genuine.substr(0, first + 1) + payload + genuine.substr(last));
    return out;
}

// Each forged token, presented each of the three ways to a live emulator, is refused: the
// client ends with invalid_token and the emulator never sent auth_success or a subscription.
TEST(JwtAudit, EmulatorRefusesForgedTokensOnTheWire) {
    Emulator emu;
    emu.start();

    // Control: a genuine token gets through, so a refusal below means the token was the cause.
    {
        Client client(quick_options(emu.gateway_url(), emu.mint_token()));
        client.start();
        ASSERT_TRUE(eventually([&] { return client.state() == ConnectionState::connected; }));
    }
    emu.reset_stats();

    std::size_t attempts = 0;
    for (const auto& [name, token] : forged_tokens(emu)) {
        for (auto mode : {AuthMode::first_message, AuthMode::header, AuthMode::query}) {
            Client client(quick_options(emu.gateway_url(), token, mode));
            client.subscribe("orders", nullptr, [](const Event&) {});
            client.start();
            EXPECT_TRUE(eventually([&] {
                return client.state() == ConnectionState::disconnected &&
                       client.terminal_reason() == errc::invalid_token;
            })) << name
                << " in mode " << static_cast<int>(mode) << " was not refused";
            ++attempts;
        }
    }
    auto stats = emu.stats();
    EXPECT_EQ(stats.sent_of("auth_success"), 0u) << "the emulator accepted a forged token";
    EXPECT_EQ(stats.sent_of("response"), 0u) << "the emulator answered a request unauthenticated";
    EXPECT_EQ(stats.sent_of("event"), 0u);
    EXPECT_EQ(stats.error_count("invalid_token"), attempts);
}

}  // namespace
}  // namespace olympus::test
