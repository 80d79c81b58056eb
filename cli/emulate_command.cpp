// `olympus-voice emulate`: runs the local Olympus emulator in the foreground until Ctrl-C, a
// SIGTERM or the end of --duration, then prints what it saw.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "olympus/emulator/emulator.hpp"
#include "olympus/log.hpp"

#include "commands.hpp"
#include "duration.hpp"
#include "emulator_defaults.hpp"

namespace olympus::cli {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
    g_stop = 1;
}

struct EmulateFlags {
    std::string host = "127.0.0.1";
    int port = 8765;
    bool tls = false;
    std::string cert_file, key_file, cert_out;
    std::string jwt_key_file = default_jwt_key_path();
    std::string ping_interval = "30s", pong_timeout = "10s", auth_timeout = "10s";
    std::string idle_timeout = "5m", duration;
    double event_rate = 1.0;
    std::size_t replay_events = 0;
    bool stats_json = false;
    std::size_t max_connections_per_user = 10;
    bool relay = false;
    std::string greeting = "1200ms";
};

std::chrono::milliseconds duration_flag(const std::string& name, const std::string& value) {
    auto parsed = parse_duration(value);
    if (!parsed || (parsed->count() == 0 && name != "--duration" && name != "--greeting")) {
        throw CLI::ValidationError(name, "'" + value + "' is not a duration (e.g. 250ms, 30s, 5m)");
    }
    return *parsed;
}

emulator::EmulatorOptions to_options(const EmulateFlags& flags) {
    emulator::EmulatorOptions options;
    options.host = flags.host;
    options.port = static_cast<std::uint16_t>(flags.port);
    options.tls = flags.tls;
    options.tls_cert_file = flags.cert_file;
    options.tls_key_file = flags.key_file;
    options.jwt_key_file = flags.jwt_key_file;
    options.ping_interval = duration_flag("--ping-interval", flags.ping_interval);
    options.pong_timeout = duration_flag("--pong-timeout", flags.pong_timeout);
    options.auth_timeout = duration_flag("--auth-timeout", flags.auth_timeout);
    options.idle_timeout = duration_flag("--idle-timeout", flags.idle_timeout);
    options.events_per_second = flags.event_rate;
    options.replay_recent_events = flags.replay_events;
    options.max_connections_per_user = flags.max_connections_per_user;
    options.decode_audio = !flags.relay;
    options.greeting_duration = duration_flag("--greeting", flags.greeting);
    if (flags.relay) {
        options.max_recorded_seconds = 0;  // nothing is decoded, so nothing is recorded
    }
    return options;
}

void run_emulator(const EmulateFlags& flags) {
    auto options = to_options(flags);
    std::optional<std::chrono::milliseconds> run_for;
    if (!flags.duration.empty()) {
        run_for = duration_flag("--duration", flags.duration);
    }
    ensure_parent_dir(options.jwt_key_file);
    emulator::Emulator emu(options);
    emu.start();

    // Where to connect, and with what: the token goes to stdout only, never to a log.
    std::printf("Olympus emulator listening on %s:%u\n", options.host.c_str(), emu.port());
    std::printf("  gateway      %s  (also %s/v1/ws)\n", emu.gateway_url().c_str(),
                emu.base_url().c_str());
    std::printf("  voice stream %s\n", emu.voice_url().c_str());
    if (options.tls) {
        std::string cert_out = flags.cert_out.empty()
                                   ? (std::filesystem::temp_directory_path() /
                                      ("olympus-emulator-" + std::to_string(emu.port()) + ".pem"))
                                         .string()
                                   : flags.cert_out;
        std::ofstream(cert_out) << emu.certificate_pem();
        std::printf("  certificate  %s  (trust it with --ca)\n", cert_out.c_str());
    }
    std::printf("  token        %s\n", emu.mint_token("user-dev").c_str());
    std::printf("Press Ctrl-C to stop.\n");
    std::fflush(stdout);

    // Serve until told to stop.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    auto deadline =
        std::chrono::steady_clock::now() + run_for.value_or(std::chrono::hours(24 * 365));
    while (!g_stop && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    emu.stop();

    auto stats = emu.stats().to_json();
    if (flags.stats_json) {
        std::printf("%s\n", stats.dump().c_str());
    } else {
        std::printf("emulator stopped: %s\n", stats.dump(2).c_str());
    }
}

}  // namespace

void add_emulate_command(CLI::App& app) {
    auto flags = std::make_shared<EmulateFlags>();
    auto* cmd = app.add_subcommand("emulate", "Run the local Olympus gateway and voice emulator");
    cmd->add_option("--host", flags->host, "Address to listen on")->capture_default_str();
    cmd->add_option("--port", flags->port, "Port to listen on (0 picks a free one)")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    cmd->add_flag("--tls", flags->tls, "Serve wss:// with a generated or given certificate");
    cmd->add_option("--cert", flags->cert_file, "PEM certificate to serve (with --tls)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--key", flags->key_file, "PEM private key of --cert")
        ->check(CLI::ExistingFile);
    cmd->add_option("--cert-out", flags->cert_out, "Where to write the certificate clients trust");
    cmd->add_option("--jwt-key", flags->jwt_key_file,
                    "PEM RSA key that signs tokens (created if absent)")
        ->capture_default_str();
    cmd->add_option("--ping-interval", flags->ping_interval, "Server ping period")
        ->capture_default_str();
    cmd->add_option("--pong-timeout", flags->pong_timeout, "Close 4000 without a pong by then")
        ->capture_default_str();
    cmd->add_option("--auth-timeout", flags->auth_timeout,
                    "Close 4001 when not authenticated by then")
        ->capture_default_str();
    cmd->add_option("--idle-timeout", flags->idle_timeout,
                    "Close 4002 after this long without input")
        ->capture_default_str();
    cmd->add_option("--event-rate", flags->event_rate, "Events per second per subscription")
        ->check(CLI::Range(0.0, 10000.0))
        ->capture_default_str();
    cmd->add_option("--replay-events", flags->replay_events,
                    "Re-send this many recent events on each new subscription");
    cmd->add_option("--duration", flags->duration,
                    "Stop after this long (e.g. 30s); default: run until Ctrl-C");
    cmd->add_flag("--stats-json", flags->stats_json, "Print the final stats as one JSON line");
    cmd->add_option("--max-connections-per-user", flags->max_connections_per_user,
                    "Open connections one user may hold (raise it for load tests)")
        ->capture_default_str();
    cmd->add_flag("--relay", flags->relay,
                  "Voice load mode: judge speech by Opus packet size and echo the packets back "
                  "without decoding or encoding");
    cmd->add_option("--greeting", flags->greeting, "Synthetic greeting length (0s: none)")
        ->capture_default_str();
    cmd->callback([flags] { run_guarded([&] { run_emulator(*flags); }); });
}

}  // namespace olympus::cli
