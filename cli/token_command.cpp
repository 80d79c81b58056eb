// `olympus-voice token`: mints a development token signed with the emulator's key.
#include <cstdio>

#include "olympus/emulator/jwt.hpp"

#include "commands.hpp"
#include "duration.hpp"
#include "emulator_defaults.hpp"

namespace olympus::cli {
namespace {

struct TokenFlags {
    std::string user = "user-dev";
    std::string tenant = "tenant-dev";
    std::vector<std::string> permissions;
    std::string lifetime = "8h";
    std::string jwt_key_file = default_jwt_key_path();
};

void mint(const TokenFlags& flags) {
    auto lifetime = parse_duration(flags.lifetime);
    if (!lifetime || lifetime->count() < 1000) {
        throw CLI::ValidationError("--lifetime",
                                   "'" + flags.lifetime + "' is not a duration of at least 1s");
    }
    ensure_parent_dir(flags.jwt_key_file);
    auto key = emulator::JwtKey::load_or_create(flags.jwt_key_file);
    auto permissions =
        flags.permissions.empty() ? emulator::default_permissions() : flags.permissions;
    auto token = key.mint(flags.user, flags.tenant, permissions,
                          std::chrono::duration_cast<std::chrono::seconds>(*lifetime));
    std::printf("%s\n", token.c_str());
}

}  // namespace

void add_token_command(CLI::App& app) {
    auto flags = std::make_shared<TokenFlags>();
    auto* cmd = app.add_subcommand("token", "Mint a development token the emulator accepts");
    cmd->add_option("--user", flags->user, "User id (the token's sub)")->capture_default_str();
    cmd->add_option("--tenant", flags->tenant, "Tenant id")->capture_default_str();
    cmd->add_option("--permission", flags->permissions,
                    "A permission such as orders.read; repeat for more (default: all channels)");
    cmd->add_option("--lifetime", flags->lifetime, "How long the token is valid (e.g. 30m, 8h)")
        ->capture_default_str();
    cmd->add_option("--jwt-key", flags->jwt_key_file,
                    "PEM RSA key to sign with (created if absent)")
        ->capture_default_str();
    cmd->callback([flags] { run_guarded([&] { mint(*flags); }); });
}

}  // namespace olympus::cli
