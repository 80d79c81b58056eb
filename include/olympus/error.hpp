// Error codes of the Olympus client library: the codes the realtime protocol documents, plus the
// failures the client detects itself. Plain values; usable from any thread.
#pragma once

#include <string_view>
#include <system_error>

namespace olympus {

/// Every run-time failure the client reports. The first group mirrors the protocol's error
/// codes (section 2.9); the rest are detected locally.
enum class errc {
    // Codes a server sends.
    invalid_token = 1,   ///< the token is invalid or expired, and no fresh token was available
    unauthorized,        ///< not authorized for the resource; the connection stays
    rate_limited,        ///< too many requests
    connection_limit,    ///< the user has too many connections open
    subscription_limit,  ///< more than 50 subscriptions on one connection
    invalid_message,     ///< the server found a request malformed
    server_error,        ///< any other failure code the server sent

    // Failures the client detects itself.
    timeout = 100,          ///< no answer in time (request, connect, authentication)
    closed,                 ///< the connection closed, or the client was closed, before an answer
    too_large,              ///< a frame would exceed the 64 KB message limit
    queue_full,             ///< the request waited in the offline queue and the queue overflowed
    dead_link,              ///< nothing arrived for longer than the heartbeat allows
    transport,              ///< TCP, TLS or WebSocket handshake failure
    retries_exhausted,      ///< the reconnect policy gave up
    no_token,               ///< the token provider had no token to give
    closed_by_application,  ///< the application called close(); not an error as such

    // Voice stream failures (protocol section 3).
    bad_audio_frame = 200,    ///< a downlink audio frame that does not decode; concealed
    unexpected_audio_format,  ///< a downlink frame in another format than session_started said
    audio_fetch_failed,       ///< an audio_url answered with an HTTP error or not at all
    audio_fetch_tls,          ///< an audio_url's TLS handshake or certificate check failed
    audio_not_decodable,      ///< an audio_url served bytes that are not audio
    session_refused,          ///< the server answered start_session with an error
    session_lost,             ///< the server ended the session, or it could not be resumed
    audio_too_large,          ///< an audio_url body, or the audio it decodes to, over the bound
};

/// The category of errc; its name is "olympus".
const std::error_category& error_category();

std::error_code make_error_code(errc e);

/// Maps a protocol error code string ("invalid_token", ...) to errc; unknown strings give
/// errc::server_error.
errc errc_from_protocol(std::string_view code);

}  // namespace olympus

template <>
struct std::is_error_code_enum<olympus::errc> : std::true_type {};
