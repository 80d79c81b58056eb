// `olympus-voice devices`: lists the audio devices PortAudio sees, with their channels, rates
// and lowest latencies, and optionally opens one to report the latency it grants. Main thread.
#include <cstdio>
#include <memory>
#include <string>

#include "olympus/audio/capture_stream.hpp"
#include "olympus/audio/device.hpp"
#include "olympus/audio/playback_stream.hpp"

#include "commands.hpp"

namespace olympus::cli {
namespace {

struct DevicesFlags {
    std::string device;  // selector to resolve and open; empty = list only
    bool open = false;
};

std::string rates_text(const std::vector<int>& rates) {
    std::string text;
    for (int rate : rates) {
        text += (text.empty() ? "" : ",") + std::to_string(rate);
    }
    return text.empty() ? "-" : text;
}

void print_devices() {
    std::printf("%5s  %-32s %-28s %4s %4s %7s  %-30s %s\n", "index", "name", "host api", "in",
                "out", "rate", "mono rates", "low latency in/out ms");
    for (const auto& d : audio::list_devices()) {
        const char* mark = d.default_input && d.default_output ? "*"
                           : d.default_input                   ? "<"
                           : d.default_output                  ? ">"
                                                               : " ";
        std::printf("%4d%s  %-32.32s %-28.28s %4d %4d %7.0f  %-30s %.1f/%.1f\n", d.index, mark,
                    d.name.c_str(), d.host_api.c_str(), d.max_input_channels, d.max_output_channels,
                    d.default_sample_rate, rates_text(d.supported_rates).c_str(),
                    d.low_input_latency_ms, d.low_output_latency_ms);
    }
    std::printf("(* default input and output, < default input, > default output)\n");
}

// "opened at <rate> Hz, granted latency <ms> ms", or why the stream could not be opened.
template <typename Stream>
std::string describe_open(const audio::Result<std::unique_ptr<Stream>>& stream) {
    if (!stream) {
        return "cannot open: " + stream.error().what();
    }
    const auto stats = stream.value()->stats();
    char text[96];
    std::snprintf(text, sizeof(text), "opened at %d Hz, granted latency %.1f ms", stats.device_rate,
                  stats.latency_ms);
    return text;
}

// Resolves the selector in both directions; with --open also opens each stream (without
// starting it) to show the latency the device grants. Returns false when nothing matched.
bool show_selection(const DevicesFlags& flags) {
    bool any = false;
    for (auto direction : {audio::Direction::capture, audio::Direction::playback}) {
        const char* name = direction == audio::Direction::capture ? "capture" : "playback";
        auto device = audio::find_device(flags.device, direction);
        if (!device) {
            std::printf("%-8s: %s\n", name, device.error().what().c_str());
            continue;
        }
        any = true;
        std::printf("%-8s: %d \"%s\"", name, device.value().index, device.value().name.c_str());
        if (flags.open) {
            audio::DeviceStreamConfig config;
            config.device = std::to_string(device.value().index);
            const std::string opened = direction == audio::Direction::capture
                                           ? describe_open(audio::CaptureStream::open(config))
                                           : describe_open(audio::PlaybackStream::open(config));
            std::printf(", %s", opened.c_str());
        }
        std::printf("\n");
    }
    return any;
}

void run_devices(const DevicesFlags& flags) {
    // PortAudio stays up for the whole listing.
    auto library = audio::PortAudioLibrary::acquire();
    if (!library) {
        std::fprintf(stderr, "olympus-voice devices: %s\n", library.error().what().c_str());
        exit_code() = kExitFailure;
        return;
    }
    print_devices();
    if (!flags.device.empty() || flags.open) {
        std::printf("\n");
        if (!show_selection(flags)) {
            exit_code() = kExitUsage;
        }
    }
}

}  // namespace

void add_devices_command(CLI::App& app) {
    auto flags = std::make_shared<DevicesFlags>();
    auto* cmd = app.add_subcommand(
        "devices", "List audio devices with their channels, sample rates and latencies");
    cmd->add_option("--device", flags->device,
                    "Show which device an index or name substring selects, per direction");
    cmd->add_flag("--open", flags->open,
                  "Open the selected (or default) devices and report the latency granted");
    cmd->callback([flags] { run_devices(*flags); });
}

}  // namespace olympus::cli
