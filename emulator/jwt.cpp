// RS256 token signing and checking with OpenSSL; see jwt.hpp. Used by the emulator's io thread
// and by the CLI's token command.
#include "olympus/emulator/jwt.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

namespace olympus::emulator {
namespace {

constexpr std::size_t kMaxTokenBytes = 8 * 1024;
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
        }
    }
    if (bits > 0) {
        out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
    }
    return out;
}

bool base64url_decode(std::string_view in, std::string& out) {
    out.clear();
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        const char* pos = std::char_traits<char>::find(kAlphabet, 64, c);
        if (pos == nullptr) {
            return false;
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(pos - kAlphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return in.size() % 4 != 1;
}

struct Parts {
    std::string_view header, payload, signature;
};

bool split(std::string_view token, Parts& parts) {
    auto first = token.find('.');
    if (first == std::string_view::npos) {
        return false;
    }
    auto second = token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
        return false;
    }
    parts.header = token.substr(0, first);
    parts.payload = token.substr(first + 1, second - first - 1);
    parts.signature = token.substr(second + 1);
    return true;
}

std::chrono::system_clock::time_point from_unix(std::int64_t seconds) {
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

// Reads a NumericDate claim. The clock counts nanoseconds in 64 bits (up to the year 2262), so
// a time outside 1970..2223 would overflow it: such a claim is refused, not wrapped.
bool read_unix(const nlohmann::json& value, std::chrono::system_clock::time_point& out) {
    constexpr std::int64_t kMaxUnixSeconds = 8'000'000'000;
    if (!value.is_number_integer()) {
        return false;
    }
    if (value.is_number_unsigned()) {
        if (value.get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxUnixSeconds)) {
            return false;
        }
    } else if (value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > kMaxUnixSeconds) {
        return false;
    }
    out = from_unix(value.get<std::int64_t>());
    return true;
}

std::int64_t to_unix(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::error_code parse_payload(std::string_view encoded, TokenClaims& claims) {
    std::string text;
    if (!base64url_decode(encoded, text)) {
        return TokenError::malformed;
    }
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object()) {
        return TokenError::malformed;
    }
    auto sub = json.find("sub");
    auto exp = json.find("exp");
    if (sub == json.end() || !sub->is_string() || exp == json.end() || !exp->is_number_integer()) {
        return TokenError::missing_claim;
    }
    claims = TokenClaims{};
    claims.user_id = sub->get<std::string>();
    if (!read_unix(*exp, claims.expires_at)) {
        return TokenError::missing_claim;
    }
    if (auto it = json.find("iat"); it != json.end() && !read_unix(*it, claims.issued_at)) {
        claims.issued_at = {};
    }
    if (auto it = json.find("tenant_id"); it != json.end() && it->is_string()) {
        claims.tenant_id = it->get<std::string>();
    }
    if (auto it = json.find("permissions"); it != json.end() && it->is_array()) {
        claims.permissions.clear();
        for (const auto& p : *it) {
            if (p.is_string()) {
                claims.permissions.push_back(p.get<std::string>());
            }
        }
    }
    return {};
}

class TokenCategory : public std::error_category {
public:
    const char* name() const noexcept override { return "olympus.token"; }
    std::string message(int value) const override {
        switch (static_cast<TokenError>(value)) {
            case TokenError::malformed:
                return "token is malformed";
            case TokenError::bad_algorithm:
                return "token algorithm is not RS256";
            case TokenError::bad_signature:
                return "token signature is invalid";
            case TokenError::expired:
                return "token has expired";
            case TokenError::missing_claim:
                return "token lacks the sub or exp claim";
        }
        return "unknown token error";
    }
};

struct PkeyDeleter {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct BioDeleter {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

std::string bio_to_string(BIO* bio) {
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

const std::error_category& token_category() {
    static TokenCategory category;
    return category;
}

std::error_code make_error_code(TokenError e) {
    return {static_cast<int>(e), token_category()};
}

std::vector<std::string> default_permissions() {
    std::vector<std::string> all;
    for (const char* channel : {"orders", "kds", "inventory", "tables", "analytics", "voice"}) {
        all.push_back(std::string(channel) + ".read");
        all.push_back(std::string(channel) + ".write");
    }
    return all;
}

std::error_code read_claims(std::string_view token, TokenClaims& claims) {
    Parts parts;
    if (token.size() > kMaxTokenBytes || !split(token, parts)) {
        return TokenError::malformed;
    }
    return parse_payload(parts.payload, claims);
}

struct JwtKey::Impl {
    PkeyPtr key;
};

JwtKey::JwtKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JwtKey::JwtKey(JwtKey&&) noexcept = default;
JwtKey& JwtKey::operator=(JwtKey&&) noexcept = default;
JwtKey::~JwtKey() = default;

JwtKey JwtKey::generate() {
    PkeyPtr key(EVP_RSA_gen(2048));
    if (!key) {
        throw std::runtime_error("could not generate an RSA key for signing tokens");
    }
    auto impl = std::make_unique<Impl>();
    impl->key = std::move(key);
    return JwtKey(std::move(impl));
}

JwtKey JwtKey::load_pem_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read token signing key '" + path + "'");
    }
    std::stringstream text;
    text << in.rdbuf();
    auto pem = text.str();
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
        throw std::runtime_error("'" + path + "' does not hold an RSA private key in PEM form");
    }
    auto impl = std::make_unique<Impl>();
    impl->key = std::move(key);
    return JwtKey(std::move(impl));
}

JwtKey JwtKey::load_or_create(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0) {
        return load_pem_file(path);
    }
    auto key = generate();
    auto old_mask = ::umask(077);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << key.private_pem();
    out.close();
    ::umask(old_mask);
    if (!out) {
        throw std::runtime_error("cannot write token signing key '" + path + "'");
    }
    return key;
}

std::string JwtKey::sign(const TokenClaims& claims) const {
    nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}};
    nlohmann::json payload = {{"sub", claims.user_id},
                              {"tenant_id", claims.tenant_id},
                              {"permissions", claims.permissions},
                              {"iat", to_unix(claims.issued_at)},
                              {"exp", to_unix(claims.expires_at)}};
    std::string input = base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());

    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    std::size_t size = 0;
    if (!ctx ||
        EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &size,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
        throw std::runtime_error("token signing failed");
    }
    std::string signature(size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
        throw std::runtime_error("token signing failed");
    }
    signature.resize(size);
    return input + "." + base64url_encode(signature);
}

std::string JwtKey::mint(const std::string& user_id, const std::string& tenant_id,
                         std::vector<std::string> permissions,
                         std::chrono::seconds lifetime) const {
    TokenClaims claims;
    claims.user_id = user_id;
    claims.tenant_id = tenant_id;
    claims.permissions = std::move(permissions);
    claims.issued_at = std::chrono::system_clock::now();
    claims.expires_at = claims.issued_at + lifetime;
    return sign(claims);
}

std::error_code JwtKey::verify(std::string_view token, TokenClaims& claims,
                               std::chrono::system_clock::time_point now) const {
    // Structure first: three base64url parts, a JSON header that names RS256.
    Parts parts;
    if (token.size() > kMaxTokenBytes || !split(token, parts)) {
        return TokenError::malformed;
    }
    std::string header_text;
    if (!base64url_decode(parts.header, header_text)) {
        return TokenError::malformed;
    }
    auto header = nlohmann::json::parse(header_text, nullptr, false);
    if (!header.is_object()) {
        return TokenError::malformed;
    }
    auto alg = header.find("alg");
    if (alg == header.end() || !alg->is_string() || alg->get<std::string>() != "RS256") {
        return TokenError::bad_algorithm;
    }

    // The signature covers "header.payload" exactly as presented.
    std::string signature;
    if (!base64url_decode(parts.signature, signature) || signature.empty()) {
        return TokenError::bad_signature;
    }
    std::string_view input = token.substr(0, parts.header.size() + 1 + parts.payload.size());
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx ||
        EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                         input.size()) != 1) {
        return TokenError::bad_signature;
    }

    // Only a genuine token's claims are worth reading; expiry is checked last.
    TokenClaims parsed;
    if (auto ec = parse_payload(parts.payload, parsed)) {
        return ec;
    }
    if (parsed.expires_at <= now) {
        return TokenError::expired;
    }
    claims = std::move(parsed);
    return {};
}

std::string JwtKey::private_pem() const {
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(bio.get(), impl_->key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    return bio_to_string(bio.get());
}

std::string JwtKey::public_pem() const {
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PUBKEY(bio.get(), impl_->key.get());
    return bio_to_string(bio.get());
}

}  // namespace olympus::emulator
