// The configuration of one drive-thru lane agent, read from a JSON file at start-up and validated
// in full before anything starts: unknown keys, wrong types and out-of-range values are errors
// that name their key path. Setup thread only; the result is plain data.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "olympus/audio/voice_processor.hpp"

namespace olympus::lane {

struct LaneConfig {
    struct Server {
        std::string url;      ///< ws:// or wss:// URL of the voice gateway
        std::string ca_file;  ///< PEM bundle to verify the server with; "" = system store
    };
    struct Devices {
        std::string input;   ///< "" = default, a number = index, else part of the device name
        std::string output;  ///< same rules as input
    };
    struct AudioProcessing {
        bool aec = true;
        std::string echo_suppression = "moderate";  ///< low, moderate or high
        bool ns = true;
        bool agc = true;
        bool vad = true;
        /// Speaker-to-microphone delay beyond the latencies the devices report (the air path,
        /// driver buffers they do not report), ms, 0..500; the canceller gets the sum.
        int delay_ms = 40;
        bool delay_agnostic = true;  ///< let the canceller search for the delay as well
    };
    struct Timeouts {
        std::chrono::seconds silence{8};        ///< no customer speech: the session ends
        std::chrono::seconds session_max{300};  ///< a session never lasts longer
        std::chrono::milliseconds reconnect_initial{1000};   ///< first reconnect backoff ceiling
        std::chrono::milliseconds reconnect_max{30'000};     ///< backoff cap, network side
        std::chrono::milliseconds device_retry_max{10'000};  ///< backoff cap, audio device reopen
        std::chrono::milliseconds device_stall{500};         ///< no device callback this long: lost
    };
    /// What starts a session besides voice at the post (audio_processing.vad).
    struct Triggers {
        bool stdin_lines = false;              ///< a line on standard input
        bool http = true;                      ///< POST /trigger on the metrics endpoint
        std::chrono::milliseconds voice{300};  ///< speech at the post that counts as a car
    };
    struct Health {
        std::chrono::seconds interval{60};  ///< period of the one-line health summary
    };
    /// Exactly one of file and command is set.
    struct TokenSource {
        std::string file;                  ///< read afresh before each connect
        std::vector<std::string> command;  ///< argv run before each connect; prints the token
    };
    struct Metrics {
        bool enabled = true;
        std::string bind = "127.0.0.1";  ///< IPv4 or IPv6 literal, or "localhost"
        int port = 9464;                 ///< 0 picks a free port (tests)
    };
    struct Recording {
        bool enabled = false;
        std::string directory;  ///< required when enabled
    };

    Server server;
    std::string location;  ///< location id at the platform
    std::string lane;      ///< lane id within the location
    Devices devices;
    AudioProcessing audio_processing;
    Timeouts timeouts;
    TokenSource token;
    Metrics metrics;
    Recording recording;
    Triggers triggers;
    Health health;
};

/// Every problem found in a configuration, each a line "<key path>: <what is wrong>".
class LaneConfigError : public std::runtime_error {
public:
    LaneConfigError(std::string source, std::vector<std::string> problems);

    /// The file name or "<string>".
    const std::string& source() const noexcept { return source_; }
    const std::vector<std::string>& problems() const noexcept { return problems_; }

private:
    std::string source_;
    std::vector<std::string> problems_;
};

/// Parses and validates JSON text. Throws LaneConfigError listing every problem found
/// (syntax errors stop at the first); `source` names the text in the message.
LaneConfig parse_lane_config(std::string_view json_text, const std::string& source = "<string>");

/// Reads `path` and parses it as above; a missing or unreadable file is a LaneConfigError too.
LaneConfig load_lane_config(const std::string& path);

/// The capture-path processor settings of a validated configuration, for microphone frames at
/// `sample_rate` and speaker frames at `far_end_rate` (0: the same).
audio::VoiceProcessorConfig voice_processor_config(const LaneConfig::AudioProcessing& settings,
                                                   int sample_rate, int far_end_rate = 0);

/// One row of the configuration reference, as enforced by the validator.
struct LaneConfigKey {
    std::string path;           ///< e.g. "audio_processing.delay_ms"
    std::string type;           ///< string, boolean, integer or array of strings
    std::string default_value;  ///< "(required)" when there is none
    std::string rule;           ///< legal values
    std::string description;
};

/// Every key the validator knows, in file order.
const std::vector<LaneConfigKey>& lane_config_reference();

/// The reference as a Markdown table (for the README).
std::string lane_config_reference_markdown();

}  // namespace olympus::lane
