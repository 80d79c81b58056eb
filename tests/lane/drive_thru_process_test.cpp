// `olympus-voice drive-thru` run as a real process against the emulator, on a JACK dummy server
// of the test's own (so that it can be killed and restarted), with the customer's speech fed
// into the lane's capture port by a small JACK client (lane_jack_voice). Three cars through a
// device loss and a network drop, SIGTERM in the middle of a session with the recording
// finalised and replayed, a full disk while recording, a metrics port already in use, and a
// missing token file. What a lane operator sees is checked on /metrics.
#include <arpa/inet.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <signal.h>
#include <sstream>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sndfile.h>

#include "olympus/emulator/emulator.hpp"

#include "audio/jack_server.hpp"
#include "audio/speech.hpp"
#include "support/test_env.hpp"
#include "voice/voice_test_support.hpp"

namespace olympus::lane {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
namespace at = olympus::audio::test;

std::chrono::milliseconds scaled(std::chrono::milliseconds deadline) {
    const char* text = std::getenv("OLYMPUS_TEST_TIME_SCALE");
    const double scale = text != nullptr ? std::max(1.0, std::atof(text)) : 1.0;
    return std::chrono::milliseconds(
        static_cast<long>(static_cast<double>(deadline.count()) * scale));
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// In a forked child: closes everything but standard input and output. The emulator's sockets
// must not live on in a child, or dropping a connection would not reach the client.
void close_inherited() {
    close_range(3, ~0U, 0);
}

// A child process with its standard input on a pipe and its output in files.
class Child {
public:
    Child(const std::vector<std::string>& argv, const std::string& dir, const std::string& name,
          long file_size_limit = 0)
        : out_(dir + "/" + name + ".out"), err_(dir + "/" + name + ".err") {
        int in[2];
        EXPECT_EQ(pipe(in), 0);
        pid_ = fork();
        if (pid_ == 0) {
            dup2(in[0], 0);
            dup2(open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
            dup2(open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
            close_inherited();
            if (file_size_limit > 0) {
                rlimit limit{static_cast<rlim_t>(file_size_limit),
                             static_cast<rlim_t>(file_size_limit)};
                setrlimit(RLIMIT_FSIZE, &limit);
            }
            std::vector<char*> args;
            for (const auto& a : argv) {
                args.push_back(const_cast<char*>(a.c_str()));
            }
            args.push_back(nullptr);
            execv(args[0], args.data());
            _exit(127);
        }
        close(in[0]);
        stdin_ = in[1];
    }
    ~Child() {
        if (stdin_ >= 0) {
            close(stdin_);
        }
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }

    void say(const std::string& line) {
        const std::string text = line + "\n";
        EXPECT_EQ(write(stdin_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    }
    void signal(int sig) { kill(pid_, sig); }

    /// The exit code (128 + signal when killed), or -1 when it did not exit within `timeout`.
    int wait(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            std::this_thread::sleep_for(10ms);
        }
        return -1;
    }

    std::string out() const { return read_file(out_); }
    std::string err() const { return read_file(err_); }

private:
    std::string out_, err_;
    pid_t pid_ = -1;
    int stdin_ = -1;
    bool exited_ = false;
};

// A JACK dummy server of this test's own, which the test may kill and start again.
class PrivateJack {
public:
    PrivateJack() : name_("olympus-lane-" + std::to_string(getpid())) {
        setenv("JACK_DEFAULT_SERVER", name_.c_str(), 1);
        setenv("JACK_NO_AUDIO_RESERVATION", "1", 1);
    }
    ~PrivateJack() { stop(); }

    /// Starts the server; false (with its log in problem()) when it does not come up.
    bool start() {
        const std::string log = "/tmp/" + name_ + ".log";
        pid_ = fork();
        if (pid_ == 0) {
            const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(out, 1);
            dup2(out, 2);
            close_inherited();
            // A generous client timeout: on a loaded machine a client that misses one cycle
            // must not be thrown out of the graph (that is a device loss of its own).
            execlp("jackd", "jackd", "--no-realtime", "-t", "5000", "-d", "dummy", "-r", "48000",
                   "-p", "480", static_cast<char*>(nullptr));
            _exit(127);
        }
        // A loaded machine may take a while; two waits of 10 s each.
        const bool up =
            at::jack_command("jack_wait -w -t 10") || at::jack_command("jack_wait -w -t 10");
        problem_ = up ? "" : "jackd did not start: " + read_file(log);
        std::remove(log.c_str());
        return up;
    }

    /// Why start() failed (jackd's own words, e.g. "Too many servers already active": JACK
    /// allows 8 servers per machine).
    const std::string& problem() const { return problem_; }

    void stop() {
        if (pid_ > 0) {
            kill(pid_, SIGCONT);
            kill(pid_, SIGTERM);
            waitpid(pid_, nullptr, 0);
            pid_ = 0;
        }
    }

    /// The server stops running its cycles (the clients' callbacks stall) until resume().
    void pause() { kill(pid_, SIGSTOP); }
    void resume() { kill(pid_, SIGCONT); }

private:
    std::string name_;
    pid_t pid_ = 0;
    std::string problem_;
};

// The customer at the post: lane_jack_voice playing the orders into the lane's capture port.
class Customer {
public:
    Customer(const std::vector<std::string>& files, const std::string& dir) {
        std::vector<std::string> argv{LANE_JACK_VOICE, "lane_customer"};
        argv.insert(argv.end(), files.begin(), files.end());
        child_ = std::make_unique<Child>(argv, dir, "customer");
        ready_ = olympus::test::eventually(
            [&] { return child_->out().find("ready") != std::string::npos; }, scaled(10s));
        EXPECT_TRUE(ready_) << child_->err();
    }
    ~Customer() { child_->say("quit"); }

    // Connects to the lane's capture port (the PortAudio client's in_0).
    bool connect() {
        std::string port;
        const bool found = olympus::test::eventually(
            [&] {
                port = at::find_jack_port("PortAudio:in_0");
                return !port.empty();
            },
            scaled(10s));
        return found && at::jack_command("jack_connect lane_customer:out " + port);
    }

    void say(int file) { child_->say("play " + std::to_string(file)); }

private:
    std::unique_ptr<Child> child_;
    bool ready_ = false;
};

std::size_t curl_append(char* data, std::size_t size, std::size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
}

// An HTTP request to the lane's endpoint; the status, and the body in `body`.
long http(const std::string& method, int port, const std::string& path, std::string& body) {
    CURL* curl = curl_easy_init();
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curl_append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(curl);
    return status;
}

// The lane's metrics without their lane label: "olympus_lane_sessions_started_total" -> 3, and
// "olympus_lane_state{state=\"waiting\"}" -> 1.
std::map<std::string, double> scrape(int port) {
    std::string body;
    std::map<std::string, double> values;
    if (http("GET", port, "/metrics", body) != 200) {
        return values;
    }
    std::istringstream lines(body);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        const auto space = line.rfind(' ');
        std::string name = line.substr(0, space);
        const auto label = name.find("lane=\"");
        if (label != std::string::npos) {
            const auto end = name.find('"', label + 6);
            name.erase(label, end - label + 1 + (name[end + 1] == ',' ? 1 : 0));
            if (name.size() >= 2 && name.substr(name.size() - 2) == "{}") {
                name.erase(name.size() - 2);
            }
        }
        values[name] = std::strtod(line.c_str() + space + 1, nullptr);
    }
    return values;
}

// What the lane tells systemd, received the way systemd does: datagrams on NOTIFY_SOCKET.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
        EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    }
    ~NotifySocket() {
        close(fd_);
        unlink(path_.c_str());
    }

    /// Every message received so far, in order.
    const std::vector<std::string>& messages() {
        char buffer[4096];
        ssize_t n = 0;
        while ((n = recv(fd_, buffer, sizeof buffer, 0)) > 0) {
            messages_.emplace_back(buffer, static_cast<std::size_t>(n));
        }
        return messages_;
    }
    std::size_t count(const std::string& text) {
        std::size_t found = 0;
        for (const auto& m : messages()) {
            found += m.find(text) != std::string::npos ? 1 : 0;
        }
        return found;
    }

private:
    std::string path_;
    int fd_ = -1;
    std::vector<std::string> messages_;
};

class DriveThru : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = olympus::test::make_temp_dir("olympus-drive-thru");
        emulator::EmulatorOptions options;
        options.ping_interval = 1h;
        options.greeting_duration = 600ms;
        options.utterance_silence = 900ms;
        emu_ = std::make_unique<emulator::Emulator>(options);
        emu_->start();
        std::ofstream(dir_ + "/token") << emu_->mint_token();
    }
    void TearDown() override {
        // A failure is easier to read with the lane's own account of it.
        if (HasFailure() || std::getenv("OLYMPUS_LANE_TEST_LOG") != nullptr) {
            std::string log = read_file(dir_ + "/lane.err");
            std::string kept;
            std::istringstream lines(log);
            for (std::string line; std::getline(lines, line);) {
                if (line.rfind("ALSA lib", 0) != 0 && line.find(" health ") == std::string::npos) {
                    kept += line + "\n";
                }
            }
            std::printf("---- lane log (tail) ----\n%s\n",
                        kept.substr(kept.size() > 12000 ? kept.size() - 12000 : 0).c_str());
        }
        emu_.reset();
        std::filesystem::remove_all(dir_);
    }

    // The orders at the JACK server's rate, for lane_jack_voice.
    std::vector<std::string> orders() {
        std::vector<std::string> files;
        for (const char* name : {"chicken-sandwich", "two-coffees", "kids-meal"}) {
            const std::string out = dir_ + "/" + name + ".wav";
            const std::string command = "sox -q '" + std::string(OLYMPUS_SAMPLE_ORDERS) + "/" +
                                        name + ".wav' -r 48000 '" + out + "'";
            EXPECT_EQ(std::system(command.c_str()), 0);
            files.push_back(out);
        }
        return files;
    }

    Json config(const std::function<void(Json&)>& edit = {}) {
        Json c = {{"server", {{"url", emu_->voice_url()}}},
                  {"location", "store-9"},
                  {"lane", "lane-1"},
                  {"devices", {{"input", "system"}, {"output", "system"}}},
                  {"token", {{"file", dir_ + "/token"}}},
                  {"metrics", {{"port", 0}}},
                  {"timeouts",
                   {{"silence_s", 2},
                    {"reconnect_initial_ms", 100},
                    {"reconnect_max_ms", 500},
                    {"device_retry_max_ms", 500},
                    // A loaded 2-core machine can hold the dummy server's cycles up for a while.
                    {"device_stall_ms", 1500}}},
                  {"triggers", {{"stdin", true}}},
                  {"health", {{"interval_s", 1}}}};
        if (edit) {
            edit(c);
        }
        return c;
    }

    std::unique_ptr<Child> start_lane(const Json& c, long file_size_limit = 0) {
        std::ofstream(dir_ + "/lane.json") << c.dump(2);
        return std::make_unique<Child>(std::vector<std::string>{OLYMPUS_VOICE_CLI, "drive-thru",
                                                                "--config", dir_ + "/lane.json"},
                                       dir_, "lane", file_size_limit);
    }

    // The metrics port the lane logged, once it listens.
    int metrics_port(const Child& lane) {
        int port = 0;
        olympus::test::eventually(
            [&] {
                const std::string err = lane.err();
                const std::string marker = "metrics endpoint listening address=127.0.0.1 port=";
                const auto at = err.find(marker);
                if (at != std::string::npos) {
                    port = std::atoi(err.c_str() + at + marker.size());
                }
                return port > 0;
            },
            scaled(10s));
        return port;
    }

    bool metric_reaches(int port, const std::string& name, double value,
                        std::chrono::milliseconds timeout) {
        return olympus::test::eventually([&] { return scrape(port)[name] >= value; }, timeout);
    }

    bool in_state(int port, const std::string& state, std::chrono::milliseconds timeout) {
        return metric_reaches(port, "olympus_lane_state{state=\"" + state + "\"}", 1, timeout);
    }

    std::string dir_;
    std::unique_ptr<emulator::Emulator> emu_;
};

TEST_F(DriveThru, ServesThreeCarsThroughADeviceLossAndANetworkDrop) {
    // Car 1 speaks at the post; the JACK server then dies and comes back (the lane reopens the
    // device); car 2 comes by POST /trigger and the network drops during its order; car 3 by a
    // line on stdin. /metrics shows the sessions, the device errors and the reconnect.
    PrivateJack jack;
    ASSERT_TRUE(jack.start()) << jack.problem();
    const auto files = orders();
    auto lane = start_lane(config());
    const int port = metrics_port(*lane);
    ASSERT_GT(port, 0) << lane->err();
    ASSERT_TRUE(in_state(port, "waiting", scaled(15s))) << lane->err();

    // Car 1: noticed by the driver's voice.
    {
        Customer customer(files, dir_);
        ASSERT_TRUE(customer.connect());
        customer.say(0);
        ASSERT_TRUE(metric_reaches(port, "olympus_lane_sessions_started_total", 1, scaled(10s)))
            << "the voice at the post was not noticed";
        ASSERT_TRUE(metric_reaches(port, "olympus_lane_sessions_ended_total", 1, scaled(30s)));
    }

    // The sound server dies: the device is lost (counted) and reopened once it is back.
    jack.stop();
    ASSERT_TRUE(metric_reaches(port, "olympus_lane_device_errors_total", 1, scaled(10s)));
    ASSERT_TRUE(in_state(port, "device_lost", scaled(10s)));
    EXPECT_EQ(scrape(port)["olympus_lane_device_up"], 0.0);
    std::string body;
    EXPECT_EQ(http("POST", port, "/trigger", body), 503) << body;
    ASSERT_TRUE(jack.start()) << jack.problem();
    ASSERT_TRUE(in_state(port, "waiting", scaled(15s))) << "the device was not reopened";
    EXPECT_EQ(scrape(port)["olympus_lane_device_up"], 1.0);

    // Car 2: the loop detector; the network drops during the order, the session resumes.
    {
        Customer customer(files, dir_);
        ASSERT_TRUE(customer.connect());
        body.clear();
        ASSERT_EQ(http("POST", port, "/trigger", body), 202) << body;
        ASSERT_TRUE(in_state(port, "in_session", scaled(5s)));
        body.clear();
        EXPECT_EQ(http("POST", port, "/trigger", body), 409) << body;
        ASSERT_TRUE(olympus::test::eventually([&] { return emu_->voice_sessions().size() == 2; },
                                              scaled(5s)));
        customer.say(1);
        ASSERT_TRUE(olympus::test::eventually(
            [&] { return emu_->voice_sessions()[1].frames_received >= 60; }, scaled(5s)));
        emu_->drop_all_connections(emulator::DropMode::abort);
        ASSERT_TRUE(metric_reaches(port, "olympus_lane_reconnects_total", 1, scaled(5s)));
        ASSERT_TRUE(metric_reaches(port, "olympus_lane_sessions_ended_total", 2, scaled(30s)));
    }

    // Car 3: a line on stdin.
    {
        Customer customer(files, dir_);
        ASSERT_TRUE(customer.connect());
        ASSERT_TRUE(in_state(port, "waiting", scaled(10s)));
        lane->say("car at the post");
        ASSERT_TRUE(in_state(port, "in_session", scaled(5s)));
        customer.say(2);
        ASSERT_TRUE(metric_reaches(port, "olympus_lane_sessions_ended_total", 3, scaled(30s)));
    }

    // What the operator sees, and what the server heard.
    auto m = scrape(port);
    EXPECT_EQ(m["olympus_lane_sessions_started_total"], 3.0);
    EXPECT_EQ(m["olympus_lane_sessions_ended_total"], 3.0);
    EXPECT_GE(m["olympus_lane_device_errors_total"], 1.0);
    EXPECT_GE(m["olympus_lane_reconnects_total"], 1.0);
    EXPECT_EQ(m["olympus_lane_connected"], 1.0);
    EXPECT_EQ(m["olympus_lane_voice_stream_warm"], 1.0);
    EXPECT_GT(m["olympus_lane_capture_frames_total"], 1000.0);
    auto sessions = emu_->voice_sessions();
    ASSERT_EQ(sessions.size(), 3u);
    EXPECT_EQ(sessions[1].resumes, 1);
    for (const auto& record : sessions) {
        EXPECT_GE(record.utterances, 1u) << record.session_id << " heard no order";
    }
    EXPECT_NE(lane->err().find("health state="), std::string::npos) << "no health line";

    lane->signal(SIGTERM);
    EXPECT_EQ(lane->wait(scaled(10s)), 0) << lane->err();
}

// Reads a WAV file's channels; empty when it does not open.
std::vector<std::vector<float>> read_channels(const std::string& path, int& rate) {
    SF_INFO info{};
    SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
    if (file == nullptr) {
        return {};
    }
    std::vector<float> frames(static_cast<std::size_t>(info.frames * info.channels));
    sf_readf_float(file, frames.data(), info.frames);
    sf_close(file);
    rate = info.samplerate;
    std::vector<std::vector<float>> channels(static_cast<std::size_t>(info.channels));
    for (std::size_t i = 0; i < frames.size(); ++i) {
        channels[i % channels.size()].push_back(frames[i]);
    }
    return channels;
}

std::string only_file(const std::string& dir, const std::string& extension) {
    std::string found;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() == extension) {
            found = entry.path().string();
        }
    }
    return found;
}

TEST_F(DriveThru, SigtermEndsTheSessionAndItsRecordingReplaysTheCustomer) {
    // SIGTERM in the middle of an order: the session is ended the protocol's way, the process
    // exits 0 and the stereo recording is a valid WAV. Replaying it sends the customer's
    // channel, not a mix with the agent.
    PrivateJack jack;
    ASSERT_TRUE(jack.start()) << jack.problem();
    const auto files = orders();
    const std::string recordings = dir_ + "/recordings";
    std::filesystem::create_directory(recordings);
    auto lane = start_lane(config([&](Json& c) {
        c["recording"] = {{"enabled", true}, {"directory", recordings}};
    }));
    const int port = metrics_port(*lane);
    ASSERT_TRUE(in_state(port, "waiting", scaled(15s))) << lane->err();
    Customer customer(files, dir_);
    ASSERT_TRUE(customer.connect());
    customer.say(1);
    ASSERT_TRUE(in_state(port, "in_session", scaled(10s)));

    // The agent answers the order; SIGTERM comes while the session is still on.
    ASSERT_TRUE(olympus::test::eventually(
        [&] { return !emu_->voice_sessions().empty() && emu_->voice_sessions()[0].replies >= 1; },
        scaled(20s)));
    lane->signal(SIGTERM);
    ASSERT_EQ(lane->wait(scaled(10s)), 0) << lane->err();
    EXPECT_EQ(emu_->voice_sessions()[0].end_reason, "cancelled");

    // The recording: a finished stereo WAV and a JSONL ending with the session's end.
    const std::string wav = only_file(recordings, ".wav");
    int rate = 0;
    const auto channels = read_channels(wav, rate);
    ASSERT_EQ(channels.size(), 2u) << wav;
    EXPECT_EQ(rate, 16000);
    EXPECT_GT(channels[0].size(), 3u * 16000u);
    const std::string jsonl = read_file(only_file(recordings, ".jsonl"));
    EXPECT_NE(jsonl.find("\"end_session\""), std::string::npos);
    EXPECT_NE(jsonl.find("\"reason\":\"cancelled\""), std::string::npos);

    // Replayed, the server hears the customer's channel.
    Child replay({OLYMPUS_VOICE_CLI, "replay", wav, "--url", emu_->voice_url(), "--token",
                  emu_->mint_token(), "--rate", "16000", "--speed", "fast"},
                 dir_, "replay");
    ASSERT_EQ(replay.wait(scaled(30s)), 0) << replay.err();
    EXPECT_NE(replay.err().find("streaming channel 1 of 2"), std::string::npos) << replay.err();
    auto sessions = emu_->voice_sessions();
    ASSERT_EQ(sessions.size(), 2u);
    const auto& heard = sessions[1].received_audio;
    const double with_customer = olympus::test::best_correlation(channels[0], heard, 4000);
    const double with_agent = olympus::test::best_correlation(channels[1], heard, 4000);
    std::printf("replay: with the customer channel %.2f, with the agent channel %.2f\n",
                with_customer, with_agent);
    EXPECT_GT(with_customer, 0.9);
    EXPECT_LT(with_agent, 0.5);
}

TEST_F(DriveThru, AFullDiskStopsTheRecordingAndTheLaneServesOn) {
    // Recording files may not grow past 192 KB, 3 s of stereo (as on a full disk): the
    // recording stops with a clear log line and a count, the session goes on to the agent's
    // reply, and the next car is served too.
    PrivateJack jack;
    ASSERT_TRUE(jack.start()) << jack.problem();
    const auto files = orders();
    const std::string recordings = dir_ + "/recordings";
    std::filesystem::create_directory(recordings);
    auto lane = start_lane(config([&](Json& c) {
                               c["recording"] = {{"enabled", true}, {"directory", recordings}};
                           }),
                           192 * 1024);
    const int port = metrics_port(*lane);
    ASSERT_TRUE(in_state(port, "waiting", scaled(15s))) << lane->err();
    Customer customer(files, dir_);
    ASSERT_TRUE(customer.connect());

    // Car 1 orders; the recording fills up during the order.
    lane->say("car");
    ASSERT_TRUE(in_state(port, "in_session", scaled(5s)));
    customer.say(0);
    ASSERT_TRUE(metric_reaches(port, "olympus_lane_recording_errors_total", 1, scaled(15s)));
    ASSERT_TRUE(metric_reaches(port, "olympus_lane_sessions_ended_total", 1, scaled(40s)));
    ASSERT_FALSE(emu_->voice_sessions().empty());
    EXPECT_GE(emu_->voice_sessions()[0].replies, 1u) << "the session did not go on";

    // Car 2 is served as well.
    ASSERT_TRUE(in_state(port, "waiting", scaled(10s)));
    lane->say("car");
    ASSERT_TRUE(in_state(port, "in_session", scaled(5s)));
    ASSERT_TRUE(metric_reaches(port, "olympus_lane_sessions_ended_total", 2, scaled(20s)));
    EXPECT_NE(lane->err().find("recording stopped file="), std::string::npos) << lane->err();
    int rate = 0;
    for (const auto& entry : std::filesystem::directory_iterator(recordings)) {
        if (entry.path().extension() == ".wav") {
            EXPECT_EQ(read_channels(entry.path().string(), rate).size(), 2u)
                << entry.path() << " is not a readable WAV";
        }
    }
    lane->signal(SIGTERM);
    EXPECT_EQ(lane->wait(scaled(10s)), 0);
}

TEST_F(DriveThru, AStalledDeviceStopsTheWatchdogUntilItRecovers) {
    // The sound server stops running its cycles (a stalled driver): the lane sees the device
    // stall, cannot close it (PortAudio waits for the stalled client) and stops feeding the
    // systemd watchdog, while /metrics still answers. When the server runs again the close
    // returns, the device reopens and the watchdog is fed again. SIGTERM says STOPPING=1.
    PrivateJack jack;
    ASSERT_TRUE(jack.start()) << jack.problem();
    NotifySocket notify(dir_ + "/notify");
    setenv("NOTIFY_SOCKET", (dir_ + "/notify").c_str(), 1);
    setenv("WATCHDOG_USEC", "2000000", 1);  // a ping every second
    auto lane = start_lane(config());
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    const int port = metrics_port(*lane);
    ASSERT_TRUE(in_state(port, "waiting", scaled(15s))) << lane->err();
    ASSERT_TRUE(olympus::test::eventually([&] { return notify.count("READY=1") == 1; }, 5s));
    ASSERT_TRUE(
        olympus::test::eventually([&] { return notify.count("WATCHDOG=1") >= 2; }, scaled(5s)));

    // Stalled: lost, and after a while no more pings, with the reason in the status.
    jack.pause();
    ASSERT_TRUE(in_state(port, "device_lost", scaled(5s)));
    ASSERT_TRUE(olympus::test::eventually(
        [&] { return notify.count("STATUS=stalled: audio_pipeline") >= 1; }, scaled(20s)))
        << lane->err();
    // Two ping periods without a ping must come (a stall also shows before the device counts
    // as lost, while no frames flow; the pings stop for good once the close is stuck).
    std::size_t pings = 0;
    auto quiet_since = Clock::now();
    const bool starved = olympus::test::eventually(
        [&] {
            const auto now_pings = notify.count("WATCHDOG=1");
            if (now_pings != pings) {
                pings = now_pings;
                quiet_since = Clock::now();
            }
            return Clock::now() - quiet_since >= 2500ms;
        },
        scaled(20s));
    EXPECT_TRUE(starved) << "the watchdog was still fed while the device was stuck";
    EXPECT_GE(scrape(port)["olympus_lane_device_errors_total"], 1.0) << "/metrics must answer";

    // The server runs again: the device comes back and so do the pings.
    jack.resume();
    ASSERT_TRUE(in_state(port, "waiting", scaled(15s))) << lane->err();
    EXPECT_TRUE(olympus::test::eventually([&] { return notify.count("WATCHDOG=1") >= pings + 2; },
                                          scaled(5s)));
    lane->signal(SIGTERM);
    EXPECT_EQ(lane->wait(scaled(10s)), 0);
    EXPECT_EQ(notify.count("STOPPING=1"), 1u);
}

TEST_F(DriveThru, AMetricsPortInUseFailsTheStart) {
    // Another process holds the port: the lane says so, naming address and port, and exits 1
    // at once (systemd restarts it later) instead of running without its endpoint.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(listen(fd, 1), 0);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    const int taken = ntohs(address.sin_port);

    auto lane = start_lane(config([&](Json& c) { c["metrics"]["port"] = taken; }));
    EXPECT_EQ(lane->wait(scaled(10s)), 1);
    EXPECT_NE(lane->err().find("metrics endpoint 127.0.0.1:" + std::to_string(taken) +
                               ": Address already in use"),
              std::string::npos)
        << lane->err();
    close(fd);
}

TEST_F(DriveThru, AMissingTokenFileIsReportedAndRetriedUntilItAppears) {
    // The token file is not there yet (another service writes it): the lane says so, counts
    // it, retries on its backoff, and comes up once the file appears. No device is needed.
    std::filesystem::remove(dir_ + "/token");
    auto lane = start_lane(config([&](Json& c) { c["devices"]["input"] = "no-such-device"; }));
    const int port = metrics_port(*lane);
    ASSERT_GT(port, 0) << lane->err();
    ASSERT_TRUE(metric_reaches(port, "olympus_lane_token_errors_total", 2, scaled(5s)));
    EXPECT_NE(lane->err().find("problem=\"the token file is missing or unreadable\""),
              std::string::npos)
        << lane->err();
    EXPECT_EQ(lane->err().find(emu_->mint_token().substr(0, 40)), std::string::npos);
    std::ofstream(dir_ + "/token") << emu_->mint_token();
    EXPECT_TRUE(metric_reaches(port, "olympus_lane_connected", 1, scaled(5s)));
    EXPECT_EQ(scrape(port)["olympus_lane_voice_stream_warm"], 1.0);
    lane->signal(SIGINT);
    EXPECT_EQ(lane->wait(scaled(10s)), 0);
}

}  // namespace
}  // namespace olympus::lane
