// `olympus-voice drive-thru`: the unattended lane agent of a drive-thru post. For now only its
// start-up validation runs: `--check-config` loads the lane configuration, reports every problem
// by key path and exits. Main thread.
#include <cstdio>
#include <memory>
#include <string>

#include "olympus/lane/lane_config.hpp"
#include "olympus/log.hpp"

#include "commands.hpp"

namespace olympus::cli {
namespace {

struct DriveThruFlags {
    std::string config;
    bool check_only = false;
};

// Prints a short summary of what the lane will do; no secrets (the token itself is never read
// here, and the URL loses its query string).
void print_summary(const std::string& path, const lane::LaneConfig& c) {
    const auto on = [](bool value) { return value ? "on" : "off"; };
    std::printf("%s: configuration OK\n", path.c_str());
    std::printf("  lane %s at location %s, server %s\n", c.lane.c_str(), c.location.c_str(),
                olympus::log::redact_url(c.server.url).c_str());
    std::printf("  audio processing: aec %s (%s, delay %d ms%s), ns %s, agc %s, vad %s\n",
                on(c.audio_processing.aec), c.audio_processing.echo_suppression.c_str(),
                c.audio_processing.delay_ms, c.audio_processing.delay_agnostic ? ", searched" : "",
                on(c.audio_processing.ns), on(c.audio_processing.agc), on(c.audio_processing.vad));
    std::printf("  token from %s\n", c.token.file.empty()
                                         ? ("command " + c.token.command.front()).c_str()
                                         : ("file " + c.token.file).c_str());
    if (c.metrics.enabled) {
        std::printf("  metrics on http://%s:%d/metrics\n", c.metrics.bind.c_str(), c.metrics.port);
    }
    if (c.recording.enabled) {
        std::printf("  recording into %s\n", c.recording.directory.c_str());
    }
}

void run_drive_thru(const DriveThruFlags& flags) {
    // A broken configuration is a start-up error: every problem on stderr, usage exit code, so
    // that systemd's RestartPreventExitStatus=2 does not restart a lane that cannot work.
    lane::LaneConfig config;
    try {
        config = lane::load_lane_config(flags.config);
    } catch (const lane::LaneConfigError& e) {
        std::fprintf(stderr, "olympus-voice: %s\n", e.what());
        exit_code() = kExitUsage;
        return;
    }
    if (flags.check_only) {
        print_summary(flags.config, config);
        exit_code() = kExitOk;
        return;
    }

    // TODO: run the lane agent (warm voice connection, sessions on VAD or trigger, device
    // retry, metrics endpoint, watchdog, recording). Until it is wired up on top of
    // VoiceSession, `drive-thru` without --check-config exits with an error instead of serving
    // the lane.
    std::fprintf(stderr,
                 "olympus-voice: drive-thru: running the lane agent is not available yet; "
                 "use --check-config to validate %s\n",
                 flags.config.c_str());
    exit_code() = kExitFailure;
}

}  // namespace

void add_drive_thru_command(CLI::App& app) {
    auto flags = std::make_shared<DriveThruFlags>();
    auto* cmd = app.add_subcommand("drive-thru", "Run the unattended agent of a drive-thru lane");
    cmd->add_option("--config", flags->config, "Lane configuration (JSON), see samples/lane.json")
        ->required();
    cmd->add_flag("--check-config", flags->check_only,
                  "Validate the configuration, print a summary and exit (2 when invalid)");
    cmd->callback([flags] { run_drive_thru(*flags); });
}

}  // namespace olympus::cli
