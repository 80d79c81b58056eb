// RS256 JSON Web Tokens for the emulator: it signs development tokens and checks the ones that
// clients present. Thread-safe after construction (OpenSSL keys are only read).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace olympus::emulator {

/// What a token says about its holder.
struct TokenClaims {
    std::string user_id = "user-dev";                    ///< `sub`
    std::string tenant_id = "tenant-dev";                ///< `tenant_id`
    std::vector<std::string> permissions;                ///< `permissions`, e.g. "orders.read"
    std::chrono::system_clock::time_point issued_at{};   ///< `iat`
    std::chrono::system_clock::time_point expires_at{};  ///< `exp`
};

/// The permissions a development token carries unless told otherwise: read on every channel.
std::vector<std::string> default_permissions();

/// Why a token was refused.
enum class TokenError {
    malformed = 1,  ///< not three base64url parts, or a part that is not JSON
    bad_algorithm,  ///< header `alg` is not RS256 (includes "none")
    bad_signature,  ///< signed by another key, or altered
    expired,        ///< `exp` is in the past
    missing_claim,  ///< `sub` or `exp` absent or of the wrong type
};
const std::error_category& token_category();
std::error_code make_error_code(TokenError e);

/// Reads the claims of a token *without* checking its signature. Bounded: tokens over 8 KiB
/// are refused as malformed.
std::error_code read_claims(std::string_view token, TokenClaims& claims);

/// An RSA key pair that signs and verifies RS256 tokens.
class JwtKey {
public:
    /// A fresh 2048-bit key pair.
    static JwtKey generate();
    /// Loads a PEM private key; throws std::runtime_error naming the file when unreadable.
    static JwtKey load_pem_file(const std::string& path);
    /// Loads the key at `path`, or generates one and writes it there (mode 0600) when absent.
    static JwtKey load_or_create(const std::string& path);

    JwtKey(JwtKey&&) noexcept;
    JwtKey& operator=(JwtKey&&) noexcept;
    ~JwtKey();

    /// A signed token carrying `claims`.
    std::string sign(const TokenClaims& claims) const;
    /// Convenience: a token for `user_id` valid from now for `lifetime`.
    std::string mint(const std::string& user_id, const std::string& tenant_id,
                     std::vector<std::string> permissions, std::chrono::seconds lifetime) const;
    /// Checks signature, algorithm and expiry at `now`; fills `claims` on success.
    std::error_code verify(
        std::string_view token, TokenClaims& claims,
        std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;

    std::string private_pem() const;
    std::string public_pem() const;

private:
    struct Impl;
    explicit JwtKey(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace olympus::emulator

template <>
struct std::is_error_code_enum<olympus::emulator::TokenError> : std::true_type {};
