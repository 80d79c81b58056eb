// Tests of the emulator's RS256 token check, including the classic JWT attacks.
#include "olympus/emulator/jwt.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace olympus::emulator {
namespace {

using namespace std::chrono_literals;

std::string b64url(const std::string& in) {
    static const char* alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(alphabet[(acc >> bits) & 0x3f]);
        }
    }
    if (bits > 0) {
        out.push_back(alphabet[(acc << (6 - bits)) & 0x3f]);
    }
    return out;
}

const JwtKey& shared_key() {
    static JwtKey key = JwtKey::generate();
    return key;
}

// A freshly minted token verifies and carries the claims it was given.
TEST(JwtKey, VerifiesItsOwnTokenAndReturnsClaims) {
    auto token = shared_key().mint("user-42", "tenant-9", {"orders.read"}, 1h);
    TokenClaims claims;
    ASSERT_FALSE(shared_key().verify(token, claims));
    EXPECT_EQ(claims.user_id, "user-42");
    EXPECT_EQ(claims.tenant_id, "tenant-9");
    EXPECT_EQ(claims.permissions, std::vector<std::string>{"orders.read"});
    auto left = claims.expires_at - std::chrono::system_clock::now();
    EXPECT_GT(left, 59min);
    EXPECT_LE(left, 60min);
}

// A token past its exp is refused as expired, not as forged.
TEST(JwtKey, RejectsExpiredToken) {
    TokenClaims claims;
    claims.user_id = "user-1";
    claims.issued_at = std::chrono::system_clock::now() - 2h;
    claims.expires_at = std::chrono::system_clock::now() - 1h;
    auto token = shared_key().sign(claims);
    TokenClaims out;
    EXPECT_EQ(shared_key().verify(token, out), TokenError::expired);
}

// A token signed by some other key does not pass.
TEST(JwtKey, RejectsTokenSignedByAnotherKey) {
    auto other = JwtKey::generate();
    auto token = other.mint("user-1", "t", {}, 1h);
    TokenClaims out;
    EXPECT_EQ(shared_key().verify(token, out), TokenError::bad_signature);
}

// The "alg: none" attack: an unsigned token with a valid payload is refused.
TEST(JwtKey, RejectsAlgNone) {
    auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                   (std::chrono::system_clock::now() + 1h).time_since_epoch())
                   .count();
    auto token = b64url(R"({"alg":"none","typ":"JWT"})") + "." +
                 b64url(nlohmann::json{{"sub", "admin"}, {"exp", exp}}.dump()) + ".";
    TokenClaims out;
    EXPECT_EQ(shared_key().verify(token, out), TokenError::bad_algorithm);
    auto unsigned_hs = b64url(R"({"alg":"HS256"})") + "." +
                       b64url(nlohmann::json{{"sub", "admin"}, {"exp", exp}}.dump()) + ".c2ln";
    EXPECT_EQ(shared_key().verify(unsigned_hs, out), TokenError::bad_algorithm);
}

// Changing one claim after signing breaks the signature.
TEST(JwtKey, RejectsTamperedPayload) {
    auto token = shared_key().mint("user-1", "t", {"orders.read"}, 1h);
    auto first = token.find('.');
    auto second = token.find('.', first + 1);
    TokenClaims claims;
    ASSERT_FALSE(read_claims(token, claims));
    auto exp =
        std::chrono::duration_cast<std::chrono::seconds>(claims.expires_at.time_since_epoch())
            .count();
    auto forged = token.substr(0, first + 1) +
                  b64url(nlohmann::json{{"sub", "admin"}, {"exp", exp}}.dump()) +
                  token.substr(second);
    TokenClaims out;
    EXPECT_EQ(shared_key().verify(forged, out), TokenError::bad_signature);
}

// Garbage of every shape is refused as malformed, never crashes, and leaves claims untouched.
TEST(JwtKey, RejectsGarbage) {
    TokenClaims out;
    out.user_id = "untouched";
    for (const std::string& bad : std::vector<std::string>{
             "", ".", "..", "a.b", "a.b.c.d", "!!!.###.$$$", "e30.e30.e30",
             std::string(9000, 'a') + ".b.c", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"}) {
        auto ec = shared_key().verify(bad, out);
        EXPECT_TRUE(ec) << "accepted '" << bad.substr(0, 40) << "'";
        EXPECT_EQ(ec.category(), token_category());
    }
    EXPECT_EQ(out.user_id, "untouched");
}

// A token without sub or exp is refused even when correctly signed.
TEST(JwtKey, RejectsMissingClaims) {
    TokenClaims claims;
    EXPECT_EQ(read_claims(b64url("{}") + "." + b64url(R"({"sub":"x"})") + ".s", claims),
              TokenError::missing_claim);
    EXPECT_EQ(read_claims(b64url("{}") + "." + b64url(R"({"sub":1,"exp":5})") + ".s", claims),
              TokenError::missing_claim);
}

// A key written to disk is read back and verifies tokens signed before.
TEST(JwtKey, LoadOrCreatePersistsTheKey) {
    auto path = ::testing::TempDir() + "/jwt-key-test.pem";
    std::remove(path.c_str());
    auto first = JwtKey::load_or_create(path);
    auto token = first.mint("user-1", "t", {}, 1h);
    auto second = JwtKey::load_or_create(path);
    TokenClaims out;
    EXPECT_FALSE(second.verify(token, out));
    std::remove(path.c_str());
    EXPECT_THROW(JwtKey::load_pem_file(path), std::runtime_error);
}

// An exp or iat beyond what the clock can hold (found by jwt_fuzz: the seconds overflowed the
// nanosecond clock, undefined behaviour) is refused as a bad claim, and never wraps around.
TEST(ReadClaims, RefusesTimesBeyondTheClock) {
    auto header = b64url(R"({"alg":"RS256","typ":"JWT"})");
    for (const char* exp : {"1796330631631", "18446744073709551615", "-5"}) {
        auto payload = b64url(std::string(R"({"sub":"u","exp":)") + exp + "}");
        TokenClaims claims;
        EXPECT_EQ(read_claims(header + "." + payload + ".c2ln", claims),
                  make_error_code(TokenError::missing_claim))
            << "exp " << exp;
    }
    auto fine = b64url(R"({"sub":"u","exp":4102444800,"iat":99999999999999})");
    TokenClaims claims;
    ASSERT_FALSE(read_claims(header + "." + fine + ".c2ln", claims));
    EXPECT_EQ(claims.issued_at, std::chrono::system_clock::time_point{});
}

}  // namespace
}  // namespace olympus::emulator
