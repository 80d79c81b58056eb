// Shared set-up of the voice commands; see voice_endpoint.hpp.
#include "voice_endpoint.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>

namespace olympus::cli {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : fallback;
}

void on_signal(int) {
    interrupted().store(true);
}

}  // namespace

void VoiceEndpointFlags::add_to(CLI::App& cmd) {
    cmd.add_option("--url", url,
                   "voice stream URL (default: $OLYMPUS_URL, else the embedded emulator)");
    cmd.add_option("--token", token, "access token (default: $OLYMPUS_TOKEN)");
    cmd.add_option("--token-file", token_file, "read the token from this file");
    cmd.add_option("--ca-file", ca_file, "PEM file of trusted CAs for wss:// and https://");
    cmd.add_flag("--insecure", insecure, "skip TLS verification (debugging only)");
    cmd.add_option("--location", location, "location_id of the session")->capture_default_str();
    cmd.add_option("--lane", lane, "drive-thru lane")->capture_default_str();
    cmd.add_option("--rate", rate, "uplink sample rate, Hz")
        ->check(CLI::IsMember({8000, 12000, 16000, 24000, 48000}))
        ->capture_default_str();
    cmd.add_option("--encoding", encoding, "uplink encoding")
        ->check(CLI::IsMember({"opus", "pcm_s16le"}))
        ->capture_default_str();
}

VoiceEndpoint resolve_voice_endpoint(const VoiceEndpointFlags& flags) {
    // Endpoint and token: flags, then the environment, then the embedded emulator.
    VoiceEndpoint endpoint;
    auto& options = endpoint.options;
    options.connection.url = flags.url.empty() ? env_or("OLYMPUS_URL", "") : flags.url;
    auto token = flags.token.empty() ? env_or("OLYMPUS_TOKEN", "") : flags.token;
    if (options.connection.url.empty()) {
        emulator::EmulatorOptions emulator_options;
        emulator_options.ping_interval = std::chrono::seconds(5);
        endpoint.embedded = std::make_unique<emulator::Emulator>(emulator_options);
        endpoint.embedded->start();
        options.connection.url = endpoint.embedded->voice_url();
        token = endpoint.embedded->mint_token();
        std::fprintf(stderr, "olympus-voice: no URL given; using the embedded emulator at %s\n",
                     options.connection.url.c_str());
    }
    if (!flags.token_file.empty()) {
        options.connection.token_provider = std::make_shared<FileTokenProvider>(flags.token_file);
    } else if (!token.empty()) {
        options.connection.token_provider = std::make_shared<FixedTokenProvider>(token);
    } else {
        throw std::invalid_argument("no token: use --token, --token-file or OLYMPUS_TOKEN");
    }

    // TLS, session parameters and a bounded reconnect policy for a command-line job.
    options.connection.tls.ca_file = flags.ca_file;
    options.connection.tls.verify_peer = !flags.insecure;
    options.connection.tls.verify_hostname = !flags.insecure;
    options.connection.reconnect.base = std::chrono::milliseconds(250);
    options.connection.reconnect.cap = std::chrono::seconds(5);
    options.connection.reconnect.max_attempts = 8;
    options.location_id = flags.location;
    options.lane = flags.lane;
    options.audio.sample_rate = flags.rate;
    options.audio.encoding =
        flags.encoding == "opus" ? AudioFormat::Encoding::opus : AudioFormat::Encoding::pcm_s16le;
    options.validate();
    return endpoint;
}

std::atomic<bool>& interrupted() {
    static std::atomic<bool> flag{false};
    return flag;
}

void install_interrupt_handler() {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
}

std::string format_ms(double ms) {
    char text[32];
    std::snprintf(text, sizeof text, ms < 10 ? "%.2f ms" : "%.0f ms", ms);
    return text;
}

}  // namespace olympus::cli
