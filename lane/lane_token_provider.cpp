// The lane's checked token provider; see lane_token_provider.hpp. io thread, except problem().
#include "olympus/lane/lane_token_provider.hpp"

#include <fstream>
#include <sstream>

#include "olympus/log.hpp"

namespace olympus::lane {
namespace {

std::string trimmed(const std::string& text) {
    const char* space = " \t\r\n";
    const auto first = text.find_first_not_of(space);
    if (first == std::string::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(space) - first + 1);
}

bool base64url(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

}  // namespace

bool looks_like_jwt(const std::string& text) {
    int dots = 0;
    std::size_t segment = 0;
    for (char c : text) {
        if (c == '.') {
            if (segment == 0) {
                return false;
            }
            ++dots;
            segment = 0;
        } else if (base64url(c)) {
            ++segment;
        } else {
            return false;
        }
    }
    return dots == 2 && segment > 0;
}

LaneTokenProvider::LaneTokenProvider(LaneConfig::TokenSource source, Counter& errors)
    : source_(std::move(source)), errors_(errors) {
    if (!source_.command.empty()) {
        command_ = std::make_unique<CommandTokenProvider>(source_.command);
    }
}

std::string LaneTokenProvider::token(TokenRequest why) {
    // A fresh read every time: the file may have been rotated, removed or broken since.
    std::string problem;
    std::string token = fetch(problem);
    if (token.empty()) {
        return refuse(problem);
    }
    if (!looks_like_jwt(token)) {
        return refuse(std::string(command_ ? "the token command printed" : "the token file holds") +
                      " no JWT (" + std::to_string(token.size()) + " bytes of something else)");
    }

    // The same token again right after the server refused it would only be refused again.
    if (why == TokenRequest::rejected && token == last_) {
        return refuse("the server rejected the token and the source still holds the same one");
    }
    last_ = token;
    std::lock_guard lock(mutex_);
    problem_.clear();
    return token;
}

std::string LaneTokenProvider::fetch(std::string& problem) {
    if (command_) {
        std::string token = command_->token(TokenRequest::connect);
        problem = command_->error();
        return token;
    }
    std::ifstream in(source_.file, std::ios::binary);
    if (!in) {
        problem = "the token file is missing or unreadable";
        return {};
    }
    std::ostringstream text;
    text << in.rdbuf();
    std::string token = trimmed(text.str());
    if (token.empty()) {
        problem = "the token file is empty";
    }
    return token;
}

std::string LaneTokenProvider::refuse(std::string problem) {
    errors_.inc();
    log::get("lane")->error(
        "no usable access token source={} problem=\"{}\"; the lane retries "
        "after its backoff",
        command_ ? "command:" + source_.command.front() : "file:" + source_.file, problem);
    std::lock_guard lock(mutex_);
    problem_ = std::move(problem);
    return {};
}

std::string LaneTokenProvider::problem() const {
    std::lock_guard lock(mutex_);
    return problem_;
}

}  // namespace olympus::lane
