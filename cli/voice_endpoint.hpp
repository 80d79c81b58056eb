// Flags and set-up shared by the voice commands (replay, talk): where the voice stream is, which
// token to present, which CAs to trust, and the embedded emulator when no URL is given. Main
// thread only.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "olympus/emulator/emulator.hpp"
#include "olympus/voice_session.hpp"

namespace olympus::cli {

struct VoiceEndpointFlags {
    std::string url;
    std::string token;
    std::string token_file;
    std::string ca_file;
    bool insecure = false;
    std::string location = "loc-demo";
    int lane = 1;
    int rate = 48000;
    std::string encoding = "opus";

    /// Registers --url, --token, --token-file, --ca-file, --insecure, --location, --lane,
    /// --rate and --encoding on `cmd`.
    void add_to(CLI::App& cmd);
};

/// The resolved endpoint: session options ready to use, and the embedded emulator if one runs.
struct VoiceEndpoint {
    VoiceSessionOptions options;
    std::unique_ptr<emulator::Emulator> embedded;
};

/// Flags, then $OLYMPUS_URL and $OLYMPUS_TOKEN, then an embedded emulator (announced on
/// stderr). Throws std::invalid_argument on a bad combination.
VoiceEndpoint resolve_voice_endpoint(const VoiceEndpointFlags& flags);

/// Ctrl-C and SIGTERM set this; install_interrupt_handler() wires it.
std::atomic<bool>& interrupted();
void install_interrupt_handler();

/// "12.3 ms" style figures for the stats lines.
std::string format_ms(double ms);

}  // namespace olympus::cli
