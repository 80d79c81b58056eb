// The subcommands of olympus-voice. Each add_*_command registers one subcommand on the app and
// binds its flags; its callback runs on the main thread and sets the process exit code.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace olympus::cli {

/// Exit codes shared by every subcommand.
enum ExitCode : int {
    kExitOk = 0,
    kExitFailure = 1,  ///< the job failed at run time (terminal error, lost session)
    kExitUsage = 2,    ///< bad flags, configuration or input file
    kExitInterrupted = 130,
};

/// Where a subcommand stores its exit code; main() returns it.
int& exit_code();

/// Runs a subcommand's body so that no error escapes as a crash: std::invalid_argument (bad
/// flags, options or configuration) becomes a one-line message and kExitUsage, any other
/// std::exception a message and kExitFailure. CLI11's own errors go on to main(), which prints
/// them with the usage exit code.
void run_guarded(const std::function<void()>& body);

void add_emulate_command(CLI::App& app);
void add_token_command(CLI::App& app);
void add_subscribe_command(CLI::App& app);
void add_devices_command(CLI::App& app);
void add_replay_command(CLI::App& app);
void add_talk_command(CLI::App& app);
void add_drive_thru_command(CLI::App& app);
void add_load_command(CLI::App& app);

}  // namespace olympus::cli
