// Defaults shared by the subcommands that start or talk to the local emulator.
#pragma once

#include <string>

namespace olympus::cli {

/// Where the emulator keeps its token signing key, so that tokens minted by `olympus-voice token`
/// are accepted by a later `olympus-voice emulate`:
/// $XDG_CONFIG_HOME/olympus-voice/emulator-jwt.pem, or ~/.config/... when XDG_CONFIG_HOME is unset.
std::string default_jwt_key_path();

/// Creates the directory that will hold `file`, if missing (mode 0700).
void ensure_parent_dir(const std::string& file);

}  // namespace olympus::cli
