// Loading and validating the lane configuration; see lane_config.hpp. One table of keys drives
// the type checks, the range checks, the unknown-key check and the generated reference, so the
// documentation cannot drift from what is enforced.
#include "olympus/lane/lane_config.hpp"

#include <arpa/inet.h>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace olympus::lane {
namespace {

using nlohmann::json;

enum class Kind { string, boolean, integer, string_list };

struct Key {
    LaneConfigKey doc;
    Kind kind;
    bool required = false;
    long long min = 0;  // integer keys only
    long long max = 0;
    // Extra rule on a value of the right type: "" when it holds, else what is wrong.
    std::function<std::string(const json&)> check;
    std::function<void(const json&, LaneConfig&)> store;
};

const char* kind_name(Kind kind) {
    switch (kind) {
        case Kind::string:
            return "string";
        case Kind::boolean:
            return "boolean";
        case Kind::integer:
            return "integer";
        case Kind::string_list:
            return "array of strings";
    }
    return "?";
}

std::string json_type(const json& value) {
    return value.is_number_integer() ? "integer" : value.type_name();
}

bool has_kind(const json& value, Kind kind) {
    switch (kind) {
        case Kind::string:
            return value.is_string();
        case Kind::boolean:
            return value.is_boolean();
        case Kind::integer:
            return value.is_number_integer();
        case Kind::string_list:
            if (!value.is_array()) {
                return false;
            }
            for (const json& item : value) {
                if (!item.is_string()) {
                    return false;
                }
            }
            return true;
    }
    return false;
}

std::string not_empty(const json& value) {
    return value.get<std::string>().empty() ? "must not be empty" : "";
}

std::string websocket_url(const json& value) {
    const std::string url = value.get<std::string>();
    const bool scheme = url.rfind("ws://", 0) == 0 || url.rfind("wss://", 0) == 0;
    return scheme && url.find("://") + 3 < url.size() ? "" : "must be a ws:// or wss:// URL";
}

std::string readable_file(const json& value) {
    const std::string path = value.get<std::string>();
    if (path.empty()) {
        return "";
    }
    std::ifstream file(path);
    return file ? "" : "cannot read file '" + path + "'";
}

std::string ip_address(const json& value) {
    const std::string text = value.get<std::string>();
    unsigned char buffer[16];
    const bool ok = text == "localhost" || inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
                    inet_pton(AF_INET6, text.c_str(), buffer) == 1;
    return ok ? "" : "must be an IPv4 or IPv6 address or localhost";
}

std::string one_of(const json& value, const std::set<std::string>& allowed) {
    if (allowed.count(value.get<std::string>()) != 0) {
        return "";
    }
    std::string list;
    for (const std::string& item : allowed) {
        list += (list.empty() ? "" : ", ") + item;
    }
    return "must be one of " + list;
}

std::string non_empty_argv(const json& value) {
    return value.empty() || value[0].get<std::string>().empty()
               ? "must name a program to run (non-empty array)"
               : "";
}

// Shorthands that fill in the table's documentation columns.
Key text(std::string path, bool required, std::string fallback, std::string rule,
         std::string description, std::function<std::string(const json&)> check,
         std::function<void(const json&, LaneConfig&)> store) {
    return Key{{std::move(path), "string", required ? "(required)" : std::move(fallback),
                std::move(rule), std::move(description)},
               Kind::string,
               required,
               0,
               0,
               std::move(check),
               std::move(store)};
}

Key flag(std::string path, bool fallback, std::string description,
         std::function<void(const json&, LaneConfig&)> store) {
    return Key{{std::move(path), "boolean", fallback ? "true" : "false", "true or false",
                std::move(description)},
               Kind::boolean,
               false,
               0,
               0,
               nullptr,
               std::move(store)};
}

Key number(std::string path, long long fallback, long long min, long long max,
           std::string description, std::function<void(const json&, LaneConfig&)> store) {
    return Key{{std::move(path), "integer", std::to_string(fallback),
                std::to_string(min) + " .. " + std::to_string(max), std::move(description)},
               Kind::integer,
               false,
               min,
               max,
               nullptr,
               std::move(store)};
}

template <typename Duration>
std::function<void(const json&, LaneConfig&)> set_duration(Duration LaneConfig::Timeouts::*field) {
    return
        [field](const json& v, LaneConfig& c) { c.timeouts.*field = Duration(v.get<long long>()); };
}

const std::vector<Key>& keys() {
    static const std::vector<Key> table = {
        text("server.url", true, "", "ws:// or wss:// URL", "Voice gateway to connect to.",
             websocket_url, [](const json& v, LaneConfig& c) { c.server.url = v; }),
        text("server.ca_file", false, "\"\"", "readable file or empty",
             "PEM certificates to verify the server; empty uses the system store.", readable_file,
             [](const json& v, LaneConfig& c) { c.server.ca_file = v; }),
        text("location", true, "", "non-empty", "Location id of the restaurant.", not_empty,
             [](const json& v, LaneConfig& c) { c.location = v; }),
        text("lane", true, "", "non-empty", "Lane id within the location.", not_empty,
             [](const json& v, LaneConfig& c) { c.lane = v; }),
        text("devices.input", false, "\"\" (default device)", "index, or part of a name",
             "Microphone, as listed by `olympus-voice devices`.", nullptr,
             [](const json& v, LaneConfig& c) { c.devices.input = v; }),
        text("devices.output", false, "\"\" (default device)", "index, or part of a name",
             "Speaker, as listed by `olympus-voice devices`.", nullptr,
             [](const json& v, LaneConfig& c) { c.devices.output = v; }),
        flag("audio_processing.aec", true, "Acoustic echo cancellation of the speaker's audio.",
             [](const json& v, LaneConfig& c) { c.audio_processing.aec = v; }),
        text(
            "audio_processing.echo_suppression", false, "\"moderate\"", "low, moderate, high",
            "Residual echo suppression; higher also cuts more of a customer talking over the "
            "agent.",
            [](const json& v) {
                return one_of(v, {"low", "moderate", "high"});
            },
            [](const json& v, LaneConfig& c) { c.audio_processing.echo_suppression = v; }),
        flag("audio_processing.ns", true, "Noise suppression (engines, fans).",
             [](const json& v, LaneConfig& c) { c.audio_processing.ns = v; }),
        flag("audio_processing.agc", true, "Automatic gain control for quiet talkers.",
             [](const json& v, LaneConfig& c) { c.audio_processing.agc = v; }),
        flag("audio_processing.vad", true, "Voice activity detection (starts a session).",
             [](const json& v, LaneConfig& c) { c.audio_processing.vad = v; }),
        number("audio_processing.delay_ms", 40, 0, 500,
               "Speaker-to-microphone delay in ms beyond the latencies the devices report (air, "
               "unreported buffers).",
               [](const json& v, LaneConfig& c) { c.audio_processing.delay_ms = v; }),
        flag("audio_processing.delay_agnostic", true,
             "Let the canceller search for the delay too (recovers a delay_ms off by ~60 ms).",
             [](const json& v, LaneConfig& c) { c.audio_processing.delay_agnostic = v; }),
        number("timeouts.silence_s", 8, 1, 600,
               "Seconds without customer speech that end a session.",
               set_duration(&LaneConfig::Timeouts::silence)),
        number("timeouts.session_max_s", 300, 10, 3600, "Longest session, in seconds.",
               set_duration(&LaneConfig::Timeouts::session_max)),
        number("timeouts.reconnect_initial_ms", 1000, 50, 60000,
               "First reconnect backoff ceiling (doubles per attempt).",
               set_duration(&LaneConfig::Timeouts::reconnect_initial)),
        number("timeouts.reconnect_max_ms", 30000, 100, 600000,
               "Cap of the reconnect backoff; not below reconnect_initial_ms.",
               set_duration(&LaneConfig::Timeouts::reconnect_max)),
        number("timeouts.device_retry_max_ms", 10000, 100, 600000,
               "Cap of the backoff between attempts to reopen a lost audio device.",
               set_duration(&LaneConfig::Timeouts::device_retry_max)),
        number("timeouts.device_stall_ms", 500, 50, 10000,
               "No audio callback for this long: the device counts as lost and is reopened.",
               set_duration(&LaneConfig::Timeouts::device_stall)),
        text("token.file", false, "-", "path; exactly one of token.file, token.command",
             "File holding the access token, read again before each connect.", not_empty,
             [](const json& v, LaneConfig& c) { c.token.file = v; }),
        Key{{"token.command", "array of strings", "-",
             "argv, no shell; exactly one of token.file, token.command",
             "Program that prints the access token, run before each connect."},
            Kind::string_list,
            false,
            0,
            0,
            non_empty_argv,
            [](const json& v, LaneConfig& c) {
                c.token.command = v.get<std::vector<std::string>>();
            }},
        flag("metrics.enabled", true, "Serve Prometheus metrics on /metrics.",
             [](const json& v, LaneConfig& c) { c.metrics.enabled = v; }),
        text("metrics.bind", false, "\"127.0.0.1\"", "IP literal or localhost",
             "Address of the metrics endpoint.", ip_address,
             [](const json& v, LaneConfig& c) { c.metrics.bind = v; }),
        number("metrics.port", 9464, 0, 65535, "Port of the metrics endpoint (0: any free port).",
               [](const json& v, LaneConfig& c) { c.metrics.port = v; }),
        flag("recording.enabled", false, "Record each session: stereo WAV and control JSONL.",
             [](const json& v, LaneConfig& c) { c.recording.enabled = v; }),
        text("recording.directory", false, "-", "path; required when recording.enabled",
             "Directory the recordings are written to.", not_empty,
             [](const json& v, LaneConfig& c) { c.recording.directory = v; }),
        flag("triggers.stdin", false, "A line on standard input starts a session.",
             [](const json& v, LaneConfig& c) { c.triggers.stdin_lines = v; }),
        flag("triggers.http", true,
             "POST /trigger on the metrics endpoint starts a session (a loop detector).",
             [](const json& v, LaneConfig& c) { c.triggers.http = v; }),
        number("triggers.voice_ms", 300, 100, 5000,
               "Speech at the post (audio_processing.vad) that starts a session, in ms.",
               [](const json& v, LaneConfig& c) {
                   c.triggers.voice = std::chrono::milliseconds(v.get<long long>());
               }),
        number("health.interval_s", 60, 1, 3600, "Period of the one-line health summary, in s.",
               [](const json& v, LaneConfig& c) {
                   c.health.interval = std::chrono::seconds(v.get<long long>());
               }),
    };
    return table;
}

// The sections: keys whose value must be an object holding only known keys.
const std::set<std::string>& sections() {
    static const std::set<std::string> names = {"server",    "devices",  "audio_processing",
                                                "timeouts",  "token",    "metrics",
                                                "recording", "triggers", "health"};
    return names;
}

std::string join(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
}

// Every key present in the file must be a known key or section.
void find_unknown(const json& object, const std::string& parent, std::vector<std::string>& out) {
    for (auto it = object.begin(); it != object.end(); ++it) {
        const std::string path = join(parent, it.key());
        if (sections().count(path) != 0) {
            if (!it->is_object()) {
                out.push_back(path + ": must be an object (got " + json_type(*it) + ")");
            } else {
                find_unknown(*it, path, out);
            }
            continue;
        }
        bool known = false;
        for (const Key& key : keys()) {
            known = known || key.doc.path == path;
        }
        if (!known) {
            out.push_back(path + ": unknown key");
        }
    }
}

// The value at a dotted path, or null when absent (or under a section of the wrong type).
const json* lookup(const json& root, const std::string& path) {
    const json* node = &root;
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = path.find('.', start);
        const std::string part = path.substr(start, dot - start);
        if (!node->is_object() || !node->contains(part)) {
            return nullptr;
        }
        node = &(*node)[part];
        if (dot == std::string::npos) {
            return node;
        }
        start = dot + 1;
    }
}

// Type, range and rule of one key; stores the value when all hold.
void check_key(const Key& key, const json& root, LaneConfig& config,
               std::vector<std::string>& out) {
    const json* value = lookup(root, key.doc.path);
    if (value == nullptr) {
        if (key.required) {
            out.push_back(key.doc.path + ": required");
        }
        return;
    }
    if (!has_kind(*value, key.kind)) {
        out.push_back(key.doc.path + ": must be " +
                      (key.kind == Kind::integer || key.kind == Kind::string_list ? "an " : "a ") +
                      kind_name(key.kind) + " (got " + json_type(*value) + ")");
        return;
    }
    if (key.kind == Kind::integer) {
        const long long v = value->get<long long>();
        if (v < key.min || v > key.max) {
            out.push_back(key.doc.path + ": must be between " + std::to_string(key.min) + " and " +
                          std::to_string(key.max) + " (got " + std::to_string(v) + ")");
            return;
        }
    }
    if (key.check) {
        const std::string problem = key.check(*value);
        if (!problem.empty()) {
            out.push_back(key.doc.path + ": " + problem);
            return;
        }
    }
    key.store(*value, config);
}

// Rules that involve more than one key.
void check_together(const json& root, const LaneConfig& config, std::vector<std::string>& out) {
    const bool file = lookup(root, "token.file") != nullptr;
    const bool command = lookup(root, "token.command") != nullptr;
    if (file == command) {
        out.push_back(std::string("token: ") + (file
                                                    ? "set only one of token.file and token.command"
                                                    : "required: set token.file or token.command"));
    }
    if (config.recording.enabled && lookup(root, "recording.directory") == nullptr) {
        out.push_back("recording.directory: required when recording.enabled is true");
    }
    if (config.timeouts.reconnect_initial > config.timeouts.reconnect_max) {
        out.push_back("timeouts.reconnect_initial_ms: must not exceed timeouts.reconnect_max_ms");
    }
    if (config.triggers.http && !config.metrics.enabled) {
        out.push_back("triggers.http: needs metrics.enabled (POST /trigger is served there)");
    }
}

std::string describe(const std::string& source, const std::vector<std::string>& problems) {
    std::string text = source + ": invalid lane configuration";
    for (const std::string& problem : problems) {
        text += "\n  " + problem;
    }
    return text;
}

}  // namespace

LaneConfigError::LaneConfigError(std::string source, std::vector<std::string> problems)
    : std::runtime_error(describe(source, problems)),
      source_(std::move(source)),
      problems_(std::move(problems)) {}

LaneConfig parse_lane_config(std::string_view json_text, const std::string& source) {
    // Syntax first: nothing else can be checked in a file that does not parse.
    json root;
    try {
        root = json::parse(json_text.begin(), json_text.end());
    } catch (const json::parse_error& e) {
        throw LaneConfigError(source, {std::string("(syntax): ") + e.what()});
    }
    if (!root.is_object()) {
        throw LaneConfigError(source,
                              {"(top level): must be an object (got " + json_type(root) + ")"});
    }

    // Then every key, collecting all problems so that one run shows them all.
    std::vector<std::string> problems;
    find_unknown(root, "", problems);
    LaneConfig config;
    for (const Key& key : keys()) {
        check_key(key, root, config, problems);
    }
    check_together(root, config, problems);
    if (!problems.empty()) {
        throw LaneConfigError(source, std::move(problems));
    }
    return config;
}

LaneConfig load_lane_config(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        throw LaneConfigError(path, {"(file): cannot open for reading"});
    }
    std::ostringstream text;
    text << file.rdbuf();
    return parse_lane_config(text.str(), path);
}

audio::VoiceProcessorConfig voice_processor_config(const LaneConfig::AudioProcessing& settings,
                                                   int sample_rate, int far_end_rate) {
    audio::VoiceProcessorConfig config;
    config.sample_rate = sample_rate;
    config.far_end_rate = far_end_rate;
    config.echo_cancellation = settings.aec;
    config.echo_suppression = settings.echo_suppression == "low" ? audio::EchoSuppression::low
                              : settings.echo_suppression == "high"
                                  ? audio::EchoSuppression::high
                                  : audio::EchoSuppression::moderate;
    config.noise_suppression = settings.ns;
    config.gain_control = settings.agc;
    config.voice_detection = settings.vad;
    config.delay_ms = settings.delay_ms;
    config.delay_agnostic = settings.delay_agnostic;
    return config;
}

const std::vector<LaneConfigKey>& lane_config_reference() {
    static const std::vector<LaneConfigKey> rows = [] {
        std::vector<LaneConfigKey> out;
        for (const Key& key : keys()) {
            out.push_back(key.doc);
        }
        return out;
    }();
    return rows;
}

std::string lane_config_reference_markdown() {
    std::string table = "| key | type | default | legal values | meaning |\n";
    table += "|---|---|---|---|---|\n";
    for (const LaneConfigKey& row : lane_config_reference()) {
        table += "| `" + row.path + "` | " + row.type + " | " + row.default_value + " | " +
                 row.rule + " | " + row.description + " |\n";
    }
    return table;
}

}  // namespace olympus::lane
