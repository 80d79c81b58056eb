// Where the client gets its access token (a JWT): a fixed string, a file that is re-read when it
// changes, or an application callback. The connection calls a provider on its io thread only.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace olympus {

/// Why the connection asks for a token.
enum class TokenRequest {
    connect,   ///< a new connection (first or reconnect) is about to authenticate
    refresh,   ///< the current token expires soon; re-authenticate the open connection
    rejected,  ///< the server refused the last token; return a different one or ""
};

/// Supplies access tokens. Called on the connection's io thread: keep it quick, and do not call
/// back into the client from it. An empty string means "no token": the client stops with
/// errc::no_token (or errc::invalid_token after a rejection). Exceptions are caught and treated
/// as an empty string.
class TokenProvider {
public:
    virtual ~TokenProvider() = default;
    virtual std::string token(TokenRequest why) = 0;
};

/// Always the same token. After a rejection it still returns it, so the client stops instead
/// of looping.
class FixedTokenProvider final : public TokenProvider {
public:
    explicit FixedTokenProvider(std::string token);
    std::string token(TokenRequest why) override;

private:
    std::string token_;
};

/// Reads the token from a file (surrounding whitespace trimmed) and re-reads it whenever the
/// file's modification time or size changes, so a sidecar can rotate it.
class FileTokenProvider final : public TokenProvider {
public:
    /// Throws std::invalid_argument when the file cannot be read or is empty.
    explicit FileTokenProvider(std::filesystem::path path);
    std::string token(TokenRequest why) override;

private:
    void reload();

    std::filesystem::path path_;
    std::filesystem::file_time_type mtime_{};
    std::uintmax_t size_ = 0;
    std::string token_;
};

/// Runs a program (argv, no shell) for each token and takes what it prints on standard output,
/// surrounding whitespace trimmed. A program that fails, prints nothing or runs past `timeout`
/// (it is killed) yields "" and error() says why. Blocks the calling io thread while it runs.
class CommandTokenProvider final : public TokenProvider {
public:
    /// Throws std::invalid_argument when `argv` is empty.
    explicit CommandTokenProvider(std::vector<std::string> argv,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(5));
    std::string token(TokenRequest why) override;
    /// Why the last call returned "" (never the output itself).
    const std::string& error() const { return error_; }

private:
    std::vector<std::string> argv_;
    std::chrono::milliseconds timeout_;
    std::string error_;
};

/// Calls an application function for each token.
class CallbackTokenProvider final : public TokenProvider {
public:
    using Function = std::function<std::string(TokenRequest)>;
    /// Throws std::invalid_argument when `function` is empty.
    explicit CallbackTokenProvider(Function function);
    std::string token(TokenRequest why) override;

private:
    Function function_;
};

}  // namespace olympus
