// libFuzzer target: the emulator's JWT claims reader and RS256 verifier on arbitrary tokens.
// Single thread.
#include <string_view>

#include "olympus/emulator/jwt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto key = olympus::emulator::JwtKey::generate();
    std::string_view token(reinterpret_cast<const char*>(data), size);
    olympus::emulator::TokenClaims claims;
    (void)olympus::emulator::read_claims(token, claims);
    olympus::emulator::TokenClaims verified;
    (void)key.verify(token, verified);
    return 0;
}
