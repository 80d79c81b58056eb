// The WebSocket transport under Connection: one websocketpp endpoint (ws or wss) on the
// connection's io_context, carrying at most one link at a time. io thread only. This is the only
// translation unit that includes websocketpp, because it is slow to compile.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/io_context.hpp>

#include "olympus/connection.hpp"

namespace olympus::detail {

/// What the transport reports about the current link. Events of a link that was replaced or
/// aborted are never delivered.
struct TransportEvents {
    std::function<void()> on_open;
    /// The handshake failed; `http_status` is the server's HTTP answer, 0 when there was none.
    std::function<void(std::error_code ec, int http_status)> on_fail;
    /// The open link ended. `remote_code` is the peer's close code, 1006 without a close frame,
    /// 1009 when the WebSocket layer refused a frame over the hard limit.
    std::function<void(int remote_code, std::error_code ec)> on_close;
    std::function<void(bool binary, std::string payload)> on_message;
};

struct TransportRequest {
    std::string url;  ///< may carry ?token=; never logged as is
    std::vector<std::pair<std::string, std::string>> headers;
    TlsOptions tls;
    std::size_t max_frame_bytes = 0;  ///< websocketpp's max_message_size
    std::chrono::milliseconds connect_timeout{10'000};
};

class WsTransport {
public:
    virtual ~WsTransport() = default;
    /// Starts a new link, abandoning any previous one. Errors in the URL come back at once.
    virtual std::error_code connect(const TransportRequest& request, TransportEvents events) = 0;
    virtual std::error_code send(bool binary, const std::string& payload) = 0;
    /// Starts the closing handshake; on_close follows.
    virtual void close(int code, const std::string& reason) = 0;
    /// Drops the current link at once; no more events from it.
    virtual void abort() = 0;
};

/// A transport for `secure` (wss) or plain (ws) URLs on `io`: websocketpp, unless a factory
/// was installed.
std::unique_ptr<WsTransport> make_ws_transport(asio::io_context& io, bool secure);

/// Makes every Connection created from now on use `factory` instead of websocketpp, so that a
/// fuzzer or a test can feed inbound frames without a socket. Call it before any Connection
/// exists (it is not synchronised with running ones); an empty function restores websocketpp.
using TransportFactory =
    std::function<std::unique_ptr<WsTransport>(asio::io_context& io, bool secure)>;
void set_transport_factory(TransportFactory factory);

}  // namespace olympus::detail
