// Tests of the metrics registry and its HTTP endpoint, scraped over loopback with libcurl the
// way Prometheus would.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <curl/curl.h>
#include <gtest/gtest.h>

#include "olympus/lane/lane_metrics.hpp"
#include "olympus/lane/metrics_registry.hpp"
#include "olympus/lane/metrics_server.hpp"

namespace olympus::lane {
namespace {

struct Scrape {
    long status = 0;
    std::string content_type;
    std::string body;
};

std::size_t append(char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

Scrape get(std::uint16_t port, const std::string& path) {
    Scrape result;
    CURL* curl = curl_easy_init();
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
        char* type = nullptr;
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
        result.content_type = type != nullptr ? type : "";
    }
    curl_easy_cleanup(curl);
    return result;
}

bool name_char(char c, bool first) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    return letter || (!first && c >= '0' && c <= '9');
}

// Reads a metric name at `at`; "" when there is none.
std::string read_name(const std::string& line, std::size_t& at) {
    const std::size_t start = at;
    while (at < line.size() && name_char(line[at], at == start)) {
        ++at;
    }
    return line.substr(start, at - start);
}

// Reads `{a="x",b="y\"z"}` at `at` (if present) and returns it verbatim; false if malformed.
bool read_labels(const std::string& line, std::size_t& at, std::string& out) {
    const std::size_t start = at;
    if (at >= line.size() || line[at] != '{') {
        return true;
    }
    ++at;
    while (true) {
        const std::string label = read_name(line, at);
        if (label.empty() || label.find(':') != std::string::npos ||
            line.compare(at, 2, "=\"") != 0) {
            return false;
        }
        at += 2;
        while (at < line.size() && line[at] != '"') {
            at += line[at] == '\\' ? 2 : 1;
        }
        if (at + 1 >= line.size()) {
            return false;
        }
        ++at;
        if (line[at] == '}') {
            ++at;
            out = line.substr(start, at - start);
            return true;
        }
        if (line[at++] != ',') {
            return false;
        }
    }
}

bool read_value(const std::string& text, double& value) {
    if (text == "NaN" || text == "+Inf" || text == "-Inf") {
        value = text == "NaN" ? std::nan("") : text == "+Inf" ? HUGE_VAL : -HUGE_VAL;
        return true;
    }
    char* end = nullptr;
    value = std::strtod(text.c_str(), &end);
    return !text.empty() && end == text.c_str() + text.size();
}

// A strict reading of the text format: every sample line belongs to a family announced by HELP
// and TYPE; returns "name{labels}" -> value, and fails the test on any malformed line.
std::map<std::string, double> parse_exposition(const std::string& text) {
    std::map<std::string, double> values;
    std::string announced;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        std::size_t at = 0;
        if (line.rfind("# HELP ", 0) == 0) {
            at = 7;
            announced = read_name(line, at);
            EXPECT_TRUE(!announced.empty() && at < line.size() && line[at] == ' ') << line;
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            at = 7;
            EXPECT_EQ(read_name(line, at), announced) << line;
            const std::string type = line.substr(at);
            EXPECT_TRUE(type == " counter" || type == " gauge") << line;
            continue;
        }
        const std::string name = read_name(line, at);
        std::string labels;
        double value = 0;
        const bool ok = !name.empty() && read_labels(line, at, labels) && at < line.size() &&
                        line[at] == ' ' && read_value(line.substr(at + 1), value);
        if (!ok) {
            ADD_FAILURE() << "not exposition format: '" << line << "'";
            continue;
        }
        EXPECT_EQ(name, announced) << "sample outside its family: " << line;
        values[name + labels] = value;
    }
    return values;
}

// Counters, gauges and callback gauges render with HELP/TYPE, escaped labels and exact values.
TEST(MetricsRegistry, RendersTheTextFormat) {
    MetricsRegistry registry;
    registry.counter("olympus_frames_dropped_total", "Frames dropped", {{"direction", "capture"}})
        .inc(3);
    registry.gauge("olympus_connection_state", "1 when connected").set(1);
    registry.gauge_callback("olympus_echo_erle_db", "ERLE", {{"lane", "a\"b\\c\nd"}},
                            [] { return std::nan(""); });

    const std::string text = registry.render();
    EXPECT_NE(text.find("# TYPE olympus_frames_dropped_total counter\n"
                        "olympus_frames_dropped_total{direction=\"capture\"} 3\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("olympus_connection_state 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("olympus_echo_erle_db{lane=\"a\\\"b\\\\c\\nd\"} NaN\n"), std::string::npos)
        << text;
    EXPECT_EQ(parse_exposition(text).size(), 3u);
}

// Registering the same series twice hands back the same counter; misuse is refused at setup.
TEST(MetricsRegistry, SharesSeriesAndRefusesMisuse) {
    MetricsRegistry registry;
    Counter& a = registry.counter("x_total", "x", {{"k", "v"}});
    Counter& b = registry.counter("x_total", "x", {{"k", "v"}});
    EXPECT_EQ(&a, &b);
    EXPECT_NE(&a, &registry.counter("x_total", "x", {{"k", "w"}}));
    EXPECT_THROW(registry.gauge("x_total", "x"), std::invalid_argument);
    EXPECT_THROW(registry.counter("9bad", "x"), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok_total", "x", {{"bad-label", "v"}}), std::invalid_argument);
}

// Audio-path updates race with renders: no update is lost and every render parses.
TEST(MetricsRegistry, CountsExactlyWhileRendering) {
    MetricsRegistry registry;
    Counter& frames = registry.counter("olympus_frames_total", "frames");
    Gauge& level = registry.gauge("olympus_level", "level");
    std::atomic<bool> done{false};
    std::thread audio([&] {
        for (int i = 0; i < 200000; ++i) {
            frames.inc();
            level.add(1.0);
        }
        done = true;
    });
    int renders = 0;
    while (!done || renders == 0) {
        parse_exposition(registry.render());
        ++renders;
    }
    audio.join();
    EXPECT_EQ(frames.value(), 200000u);
    EXPECT_EQ(level.value(), 200000.0);
}

// Prometheus scrapes the endpoint: the text parses and a counter bumped between two scrapes
// shows the new value.
TEST(MetricsServer, ServesMetricsOverHttp) {
    MetricsRegistry registry;
    Counter& sessions = registry.counter("olympus_sessions_total", "Sessions started");
    registry.gauge("olympus_connection_state", "1 when connected").set(1);
    MetricsServer server(registry);
    ASSERT_FALSE(server.start("127.0.0.1", 0));
    ASSERT_NE(server.port(), 0);

    const Scrape first = get(server.port(), "/metrics");
    EXPECT_EQ(first.status, 200);
    EXPECT_EQ(first.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << first.content_type;
    EXPECT_EQ(parse_exposition(first.body)["olympus_sessions_total"], 0.0);

    sessions.inc(2);
    const Scrape second = get(server.port(), "/metrics");
    EXPECT_EQ(parse_exposition(second.body)["olympus_sessions_total"], 2.0);
    EXPECT_EQ(parse_exposition(second.body)["olympus_connection_state"], 1.0);

    EXPECT_EQ(get(server.port(), "/healthz").status, 200);
    EXPECT_EQ(get(server.port(), "/nope").status, 404);
    EXPECT_EQ(server.requests(), 4u);
}

// A second agent on the same port gets a clear "address in use", not a hang or a crash.
TEST(MetricsServer, ReportsPortInUse) {
    MetricsRegistry registry;
    MetricsServer first(registry);
    ASSERT_FALSE(first.start("127.0.0.1", 0));
    MetricsServer second(registry);
    const std::error_code ec = second.start("127.0.0.1", first.port());
    EXPECT_EQ(ec, std::errc::address_in_use) << ec.message();
    EXPECT_EQ(second.start("not-an-address", 0), std::errc::invalid_argument);

    // The first one still serves.
    EXPECT_EQ(get(first.port(), "/metrics").status, 200);
}

// An agent restarted right after being scraped binds its port again (the scrape's connection is
// still in TIME_WAIT).
TEST(MetricsServer, RebindsThePortAfterARestart) {
    MetricsRegistry registry;
    std::uint16_t port = 0;
    {
        MetricsServer first(registry);
        ASSERT_FALSE(first.start("127.0.0.1", 0));
        port = first.port();
        EXPECT_EQ(get(port, "/metrics").status, 200);
    }
    MetricsServer second(registry);
    const std::error_code ec = second.start("127.0.0.1", port);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(get(port, "/metrics").status, 200);
}

// Stopping closes the port: the next scrape is refused.
TEST(MetricsServer, StopsServing) {
    MetricsRegistry registry;
    MetricsServer server(registry);
    ASSERT_FALSE(server.start("127.0.0.1", 0));
    const std::uint16_t port = server.port();
    EXPECT_EQ(get(port, "/metrics").status, 200);
    server.stop();
    EXPECT_EQ(get(port, "/metrics").status, 0);
}

// The lane's metrics appear under their documented names with the lane label, the processor's
// figures flow into them, and the minute health line summarises them.
TEST(LaneMetrics, ExportsTheLaneFigures) {
    MetricsRegistry registry;
    LaneMetrics lane(registry, {{"lane", "lane-1"}});
    lane.connected.set(1);
    lane.sessions_started.inc(3);
    lane.time_to_first_audio.set(0.42);
    lane.playback_underruns.inc();
    lane.device_errors.inc(2);
    audio::VoiceProcessorStats stats;
    stats.erle_db = 31;
    stats.delay_median_ms = 4;
    stats.speech_probability = 0.75f;
    stats.voice = true;
    lane.publish(stats);

    auto values = parse_exposition(registry.render());
    EXPECT_EQ(values["olympus_lane_connected{lane=\"lane-1\"}"], 1.0);
    EXPECT_EQ(values["olympus_lane_sessions_started_total{lane=\"lane-1\"}"], 3.0);
    EXPECT_EQ(values["olympus_lane_time_to_first_audio_seconds{lane=\"lane-1\"}"], 0.42);
    EXPECT_EQ(values["olympus_lane_playback_underruns_total{lane=\"lane-1\"}"], 1.0);
    EXPECT_EQ(values["olympus_lane_device_errors_total{lane=\"lane-1\"}"], 2.0);
    EXPECT_EQ(values["olympus_lane_echo_erle_db{lane=\"lane-1\"}"], 31.0);
    EXPECT_EQ(values["olympus_lane_echo_delay_estimate_ms{lane=\"lane-1\"}"], 4.0);
    EXPECT_EQ(values["olympus_lane_voice_detected{lane=\"lane-1\"}"], 1.0);
    lane.set_state("in_session");
    values = parse_exposition(registry.render());
    EXPECT_EQ(values["olympus_lane_state{lane=\"lane-1\",state=\"in_session\"}"], 1.0);
    EXPECT_EQ(values["olympus_lane_state{lane=\"lane-1\",state=\"warming\"}"], 0.0);
    EXPECT_EQ(values.size(), 27u);

    const std::string health = lane.health_line();
    EXPECT_NE(health.find("state=in_session connected=1 sessions=3 active=0 ttfa_s=0.42"),
              std::string::npos)
        << health;
    EXPECT_NE(health.find("underruns=1 device_up=0 device_errors=2 erle_db=31"), std::string::npos)
        << health;
}

}  // namespace
}  // namespace olympus::lane
