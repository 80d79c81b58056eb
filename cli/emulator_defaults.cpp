// Defaults shared by the subcommands; see emulator_defaults.hpp.
#include "emulator_defaults.hpp"

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace olympus::cli {

std::string default_jwt_key_path() {
    std::filesystem::path base;
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
        base = xdg;
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        base = std::filesystem::path(home) / ".config";
    } else {
        base = std::filesystem::temp_directory_path();
    }
    return (base / "olympus-voice" / "emulator-jwt.pem").string();
}

void ensure_parent_dir(const std::string& file) {
    auto dir = std::filesystem::path(file).parent_path();
    if (dir.empty()) {
        return;
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (!ec) {
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::replace, ec);
    }
}

}  // namespace olympus::cli
