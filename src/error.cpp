// The "olympus" error category; see error.hpp. Stateless, so safe from any thread.
#include "olympus/error.hpp"

#include <string>

namespace olympus {
namespace {

class Category : public std::error_category {
public:
    const char* name() const noexcept override { return "olympus"; }

    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::invalid_token:
                return "access token invalid or expired";
            case errc::unauthorized:
                return "not authorized for the resource";
            case errc::rate_limited:
                return "rate limited by the server";
            case errc::connection_limit:
                return "too many connections for this user";
            case errc::subscription_limit:
                return "at most 50 subscriptions per connection";
            case errc::invalid_message:
                return "the server found the message malformed";
            case errc::server_error:
                return "the server reported an error";
            case errc::timeout:
                return "timed out";
            case errc::closed:
                return "connection closed";
            case errc::too_large:
                return "message larger than the 64 KB limit";
            case errc::queue_full:
                return "request queue full";
            case errc::dead_link:
                return "no traffic from the server: link presumed dead";
            case errc::transport:
                return "transport failure";
            case errc::retries_exhausted:
                return "reconnect attempts exhausted";
            case errc::no_token:
                return "no access token available";
            case errc::closed_by_application:
                return "closed by the application";
            case errc::bad_audio_frame:
                return "malformed audio frame from the server (concealed)";
            case errc::unexpected_audio_format:
                return "audio frame in a format the session did not announce (concealed)";
            case errc::audio_fetch_failed:
                return "could not fetch the reply's audio_url";
            case errc::audio_fetch_tls:
                return "TLS failure fetching the reply's audio_url";
            case errc::audio_not_decodable:
                return "the reply's audio_url is not audio";
            case errc::session_refused:
                return "the server refused start_session";
            case errc::session_lost:
                return "the voice session was lost";
            case errc::audio_too_large:
                return "the reply's audio_url is too large";
        }
        return "unknown olympus error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& error_category() {
    static const Category instance;
    return instance;
}

std::error_code make_error_code(errc e) {
    return {static_cast<int>(e), error_category()};
}

errc errc_from_protocol(std::string_view code) {
    if (code == "invalid_token")
        return errc::invalid_token;
    if (code == "unauthorized")
        return errc::unauthorized;
    if (code == "rate_limited")
        return errc::rate_limited;
    if (code == "connection_limit")
        return errc::connection_limit;
    if (code == "subscription_limit")
        return errc::subscription_limit;
    if (code == "invalid_message")
        return errc::invalid_message;
    return errc::server_error;
}

}  // namespace olympus
