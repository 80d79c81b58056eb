// `olympus-voice drive-thru --config lane.json`: the unattended agent of a drive-thru lane. It
// validates the configuration (`--check-config` stops there), serves /metrics and POST /trigger,
// runs the lane agent, reads car arrivals from standard input when configured, reports to
// systemd (readiness, status, watchdog) and shuts down cleanly on SIGTERM or SIGINT. The main
// thread waits for the signal; a stdin reader thread, the HTTP thread and the agent's threads
// do the rest.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <poll.h>
#include <string>
#include <thread>
#include <unistd.h>

#include "olympus/lane/lane_agent.hpp"
#include "olympus/lane/lane_config.hpp"
#include "olympus/lane/metrics_registry.hpp"
#include "olympus/lane/metrics_server.hpp"
#include "olympus/lane/watchdog.hpp"
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
    std::printf("  sessions start on: %s%s%s\n", c.audio_processing.vad ? "voice " : "",
                c.triggers.stdin_lines ? "stdin " : "", c.triggers.http ? "POST /trigger" : "");
    if (c.recording.enabled) {
        std::printf("  recording into %s\n", c.recording.directory.c_str());
    }
}

// Blocks SIGTERM and SIGINT in every thread started from now on; the main thread takes them
// with sigtimedwait(), so no handler runs in the middle of the agent's work.
sigset_t block_shutdown_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return signals;
}

// Reads car arrivals from standard input, one per non-empty line, until end of input or stop.
class StdinTrigger {
public:
    explicit StdinTrigger(lane::LaneAgent& agent) : agent_(agent) {
        thread_ = std::thread([this] { run(); });
    }
    ~StdinTrigger() {
        stop_.store(true);
        thread_.join();
    }

private:
    void run() {
        auto logger = olympus::log::get("lane");
        std::string line;
        char buffer[256];
        while (!stop_.load()) {
            pollfd p{STDIN_FILENO, POLLIN, 0};
            if (poll(&p, 1, 200) <= 0) {
                continue;
            }
            const ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);
            if (n <= 0) {
                logger->info("standard input closed; stdin triggers end here");
                return;
            }
            for (ssize_t i = 0; i < n; ++i) {
                if (buffer[i] != '\n') {
                    line += buffer[i];
                    continue;
                }
                if (line.find_first_not_of(" \t\r") != std::string::npos) {
                    const auto result = agent_.trigger("stdin");
                    logger->info("stdin trigger result={}", lane::to_string(result));
                }
                line.clear();
            }
        }
    }

    lane::LaneAgent& agent_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

lane::MetricsServer::Reply answer_trigger(lane::LaneAgent& agent) {
    // 202 when a session starts; otherwise why not, with a status a loop detector can act on.
    const auto result = agent.trigger("http");
    switch (result) {
        case lane::TriggerResult::accepted:
            return {202, "accepted: a session starts\n"};
        case lane::TriggerResult::busy:
            return {409, "busy: a session is already running\n"};
        default:
            return {503, std::string(lane::to_string(result)) + ": no session can start now\n"};
    }
}

int serve_lane(const lane::LaneConfig& config) {
    // Signals first, so that every thread started below inherits the blocked mask.
    const sigset_t signals = block_shutdown_signals();
    std::signal(SIGXFSZ, SIG_IGN);  // a recording over a file size limit fails, not the lane
    auto logger = olympus::log::get("lane");

    // The agent (it registers the metrics), then the endpoint: a port in use stops the start.
    lane::MetricsRegistry registry;
    lane::Watchdog watchdog;
    lane::LaneAgentOptions options;
    options.config = config;
    options.on_state = [&watchdog](lane::LaneState state, const std::string& why) {
        (void)watchdog.notify_status(std::string(lane::to_string(state)) + ": " + why);
    };
    lane::LaneAgent agent(std::move(options), registry);
    lane::MetricsServer server(registry);
    if (config.triggers.http) {
        server.add_post("/trigger", [&agent] { return answer_trigger(agent); });
    }
    if (config.metrics.enabled) {
        if (auto ec = server.start(config.metrics.bind,
                                   static_cast<std::uint16_t>(config.metrics.port))) {
            std::fprintf(stderr, "olympus-voice: drive-thru: metrics endpoint %s:%d: %s\n",
                         config.metrics.bind.c_str(), config.metrics.port, ec.message().c_str());
            return kExitFailure;
        }
    }

    // Run, and tell systemd; the watchdog is fed only while audio and network make progress.
    agent.start();
    std::unique_ptr<StdinTrigger> stdin_trigger;
    if (config.triggers.stdin_lines) {
        stdin_trigger = std::make_unique<StdinTrigger>(agent);
    }
    watchdog.add_check("audio_pipeline", [&agent] { return agent.audio_progress(); });
    watchdog.add_check("network", [&agent] { return agent.network_progress(); });
    const auto period = lane::Watchdog::recommended_period();
    if (period.count() > 0) {
        watchdog.start(std::chrono::duration_cast<std::chrono::milliseconds>(period));
    }
    (void)watchdog.notify_ready("running: lane " + config.lane);
    logger->info("drive-thru lane running lane={} metrics_port={}", config.lane, server.port());

    // Until SIGTERM or SIGINT; then the session ends and its recording is finished.
    int received = 0;
    const timespec slice{0, 200'000'000};
    while (received <= 0) {
        received = sigtimedwait(&signals, nullptr, &slice);
    }
    logger->info("signal received signal={}; stopping", received == SIGTERM ? "SIGTERM" : "SIGINT");
    (void)watchdog.notify_stopping("stopping");
    stdin_trigger.reset();
    agent.stop();
    watchdog.stop();
    server.stop();
    return kExitOk;
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
    try {
        exit_code() = serve_lane(config);
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "olympus-voice: drive-thru: %s\n", e.what());
        exit_code() = kExitUsage;
    }
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
