// Entry point of olympus-voice: parses the command line and runs one subcommand.
#include <cstdio>
#include <exception>

#include "olympus/log.hpp"

#include "commands.hpp"

namespace olympus::cli {

int& exit_code() {
    static int code = kExitOk;
    return code;
}

void run_guarded(const std::function<void()>& body) {
    try {
        body();
    } catch (const CLI::Error&) {
        throw;
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "olympus-voice: %s\n", e.what());
        exit_code() = kExitUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "olympus-voice: %s\n", e.what());
        exit_code() = kExitFailure;
    }
}

}  // namespace olympus::cli

namespace {

bool has_command(const CLI::App& app, const std::string& name) {
    for (const auto* sub : app.get_subcommands({})) {
        if (sub->check_name(name)) {
            return true;
        }
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    namespace cli = olympus::cli;
    CLI::App app{"olympus-voice: voice sessions and realtime events for Olympus Cloud"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "olympus-voice 0.1.0");

    std::string level = "info";
    app.add_option("--log-level", level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
        ->capture_default_str();
    app.parse_complete_callback([&level] { olympus::log::set_level(level); });

    cli::add_emulate_command(app);
    cli::add_token_command(app);
    cli::add_subscribe_command(app);
    cli::add_devices_command(app);
    cli::add_replay_command(app);
    cli::add_talk_command(app);
    cli::add_drive_thru_command(app);
    cli::add_load_command(app);

    // A mistyped command deserves its own name in the error, not "a subcommand is required".
    if (argc > 1 && argv[1][0] != '-' && !has_command(app, argv[1])) {
        std::fprintf(stderr, "olympus-voice: unknown command '%s' (see --help)\n", argv[1]);
        return cli::kExitUsage;
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : cli::kExitUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "olympus-voice: %s\n", e.what());
        return cli::kExitUsage;
    }
    return cli::exit_code();
}
