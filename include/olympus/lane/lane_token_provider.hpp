// The lane's access token, from the configured file or command, checked before it is used. A
// missing or unreadable file, one that holds no JWT, a failing command, or a token the server
// has just rejected each get one clear log line and an empty answer: the connection then stops
// and the lane agent tries again after its backoff, so a bad token never turns into a tight
// loop. The token itself never reaches a log line. Called on the network (io) thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "olympus/lane/lane_config.hpp"
#include "olympus/lane/metrics_registry.hpp"
#include "olympus/token_provider.hpp"

namespace olympus::lane {

/// True when `text` has the shape of a JWT: three dot-separated base64url segments.
bool looks_like_jwt(const std::string& text);

class LaneTokenProvider final : public TokenProvider {
public:
    /// `errors` (olympus_lane_token_errors_total) counts every empty answer; it must outlive
    /// the provider.
    LaneTokenProvider(LaneConfig::TokenSource source, Counter& errors);

    /// io thread. Reads the file afresh (or runs the command) each time.
    std::string token(TokenRequest why) override;

    /// Why the last call gave no token; "" after a good one. Any thread.
    std::string problem() const;

private:
    std::string fetch(std::string& problem);
    std::string refuse(std::string problem);

    const LaneConfig::TokenSource source_;
    Counter& errors_;
    std::unique_ptr<CommandTokenProvider> command_;
    std::string last_;  // io thread: the token handed out last

    mutable std::mutex mutex_;  // guards problem_
    std::string problem_;
};

}  // namespace olympus::lane
