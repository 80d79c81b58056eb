// `olympus-voice subscribe <channel>`: subscribes on the gateway and prints each event as one
// JSON line on stdout until Ctrl-C. The client reconnects by itself; a terminal error ends the
// command with a one-line reason. Without a URL it starts the embedded emulator.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "olympus/client.hpp"
#include "olympus/emulator/emulator.hpp"
#include "olympus/log.hpp"

#include "commands.hpp"
#include "emulator_defaults.hpp"

namespace olympus::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) {
    g_interrupted.store(true);
}

struct SubscribeFlags {
    std::string channel;
    std::vector<std::string> params;  // k=v
    std::string url;
    std::string token;
    std::string token_file;
    std::string auth = "first_message";
    std::string ca_file;
    bool insecure = false;
};

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : fallback;
}

nlohmann::json parse_params(const std::vector<std::string>& pairs) {
    auto params = nlohmann::json::object();
    for (const auto& pair : pairs) {
        auto eq = pair.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw CLI::ValidationError("--param", "'" + pair + "' is not key=value");
        }
        params[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
    return params;
}

AuthMode parse_auth(const std::string& text) {
    if (text == "header")
        return AuthMode::header;
    if (text == "query")
        return AuthMode::query;
    return AuthMode::first_message;
}

void run(const SubscribeFlags& flags) {
    // Endpoint and token: flags, then the environment, then the embedded emulator.
    std::unique_ptr<emulator::Emulator> embedded;
    ClientOptions options;
    options.connection.url = flags.url.empty() ? env_or("OLYMPUS_URL", "") : flags.url;
    auto token = flags.token.empty() ? env_or("OLYMPUS_TOKEN", "") : flags.token;
    if (options.connection.url.empty()) {
        embedded = std::make_unique<emulator::Emulator>();
        embedded->start();
        options.connection.url = embedded->gateway_url();
        token = embedded->mint_token();
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
    options.connection.auth_mode = parse_auth(flags.auth);
    options.connection.tls.ca_file = flags.ca_file;
    options.connection.tls.verify_peer = !flags.insecure;
    options.connection.tls.verify_hostname = !flags.insecure;

    // Subscribe and print; the io thread prints, the main thread waits for the end.
    Client client(options);
    std::mutex out;
    std::atomic<bool> failed{false};
    std::string failure;
    client.subscribe(
        flags.channel, parse_params(flags.params),
        [&out](const Event& event) {
            std::lock_guard lock(out);
            std::printf("%s\n", event.raw.dump().c_str());
            std::fflush(stdout);
        },
        [&](std::error_code ec, const nlohmann::json& reply) {
            if (ec) {
                std::lock_guard lock(out);
                failure = "subscribe failed: " + ec.message() + " " +
                          reply.value("message", std::string());
                failed.store(true);
            }
        });
    client.start();

    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    while (!g_interrupted.load() && !failed.load() && !client.terminal_reason()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }

    // Report how it ended.
    if (g_interrupted.load()) {
        exit_code() = kExitInterrupted;
    } else if (failed.load()) {
        std::fprintf(stderr, "olympus-voice: %s\n", failure.c_str());
        exit_code() = kExitFailure;
    } else {
        std::fprintf(stderr, "olympus-voice: stopped: %s\n",
                     client.terminal_reason().message().c_str());
        exit_code() = kExitFailure;
    }
}

}  // namespace

void add_subscribe_command(CLI::App& app) {
    auto flags = std::make_shared<SubscribeFlags>();
    auto* cmd = app.add_subcommand(
        "subscribe", "Subscribe to a gateway channel and print one JSON event per line");
    cmd->add_option("channel", flags->channel, "orders, kds, inventory, tables, analytics or voice")
        ->required();
    cmd->add_option("--param", flags->params, "a subscription parameter, key=value (repeatable)");
    cmd->add_option("--url", flags->url,
                    "gateway URL (default: $OLYMPUS_URL, else the embedded emulator)");
    cmd->add_option("--token", flags->token, "access token (default: $OLYMPUS_TOKEN)");
    cmd->add_option("--token-file", flags->token_file,
                    "read the token from this file, re-read when it changes");
    cmd->add_option("--auth", flags->auth, "how to present the token")
        ->check(CLI::IsMember({"first_message", "header", "query"}))
        ->capture_default_str();
    cmd->add_option("--ca-file", flags->ca_file, "PEM file of trusted CAs for wss://");
    cmd->add_flag("--insecure", flags->insecure, "skip TLS verification (debugging only)");
    cmd->callback([flags] { run_guarded([&] { run(*flags); }); });
}

}  // namespace olympus::cli
