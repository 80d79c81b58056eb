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

}  // namespace olympus::cli

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
