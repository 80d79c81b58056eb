// A small blocking WebSocket client for tests: it connects over ws or wss, and lets a test wait
// for frames and for the close with a deadline. Its io thread is private; every method may be
// called from the test thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace olympus::test {

using namespace std::chrono_literals;

/// One frame as received.
struct Frame {
    bool binary = false;
    std::string payload;
    nlohmann::json json() const;  ///< parsed payload; json() of "discarded" when not JSON
};

struct TestClientOptions {
    std::map<std::string, std::string> headers;  ///< extra upgrade request headers
    std::string ca_pem;           ///< trust this certificate for wss (empty: system store)
    bool verify_hostname = true;  ///< check the certificate's name against the URL's host
    std::size_t max_message_bytes = 16 * 1024 * 1024;  ///< larger than the server's, on purpose
};

class WsTestClient {
public:
    explicit WsTestClient(TestClientOptions options = {});
    ~WsTestClient();
    WsTestClient(const WsTestClient&) = delete;
    WsTestClient& operator=(const WsTestClient&) = delete;

    /// Opens `url`; true once the WebSocket handshake succeeded, false on failure or timeout.
    /// On failure, error() says why and http_status() holds the server's HTTP answer, if any.
    bool connect(const std::string& url, std::chrono::milliseconds timeout = 5s);

    void send_text(const std::string& text);
    void send_json(const nlohmann::json& message) { send_text(message.dump()); }
    void send_binary(const std::string& bytes);
    /// Starts the closing handshake with `code`.
    void close(int code = 1000, const std::string& reason = "");

    /// The next frame, or nullopt when none arrives within `timeout`.
    std::optional<Frame> next(std::chrono::milliseconds timeout = 5s);
    /// The next JSON frame whose "type" is `type`; frames of other types are skipped and kept
    /// in skipped(). nullopt on timeout.
    std::optional<nlohmann::json> next_of_type(const std::string& type,
                                               std::chrono::milliseconds timeout = 5s);
    /// Waits until the connection closes; returns the close code the peer sent (1006 when the
    /// TCP connection ended without a close frame), or nullopt on timeout.
    std::optional<int> wait_closed(std::chrono::milliseconds timeout = 5s);

    bool is_open() const;
    std::string error() const;
    int http_status() const;
    const std::vector<Frame>& skipped() const { return skipped_; }

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
    std::vector<Frame> skipped_;
};

}  // namespace olympus::test
