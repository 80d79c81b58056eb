// `olympus-voice load`: N concurrent voice sessions from one process, replaying one file at
// real-time pace (pre-encoded once, or encoded live by every session), against --url or an
// embedded emulator, ending by itself after --duration with a report. Main thread only; the
// sessions run on a few shared io threads (--threads).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

#include <asio/post.hpp>
#include <nlohmann/json.hpp>

#include "olympus/audio/file_source.hpp"
#include "olympus/emulator/emulator.hpp"
#include "olympus/io_thread.hpp"
#include "olympus/log.hpp"
#include "olympus/token_provider.hpp"

#include "commands.hpp"
#include "duration.hpp"
#include "load_session.hpp"
#include "voice_endpoint.hpp"

namespace olympus::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct LoadFlags {
    std::size_t sessions = 0;
    std::string duration = "30s";
    std::string file;
    std::string mode = "pre-encoded";
    int complexity = 5;
    int bitrate = 24000;
    std::size_t threads = 0;
    std::string ramp;
    std::string url, token;
    bool insecure = false;
    bool emulator_decode = false;
    bool json = false;
    std::string frames_out;
};

/// Descriptors one session needs: its socket, plus the server's when the emulator is embedded.
constexpr std::size_t kFdsReserved = 64;

void check_fd_limit(std::size_t sessions, bool embedded) {
    // Ask for the hard limit first: raising the soft limit needs no privilege.
    std::size_t needed = sessions * (embedded ? 2 : 1) + kFdsReserved;
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < needed && limit.rlim_max > limit.rlim_cur) {
        limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, needed);
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur < needed) {
        throw std::invalid_argument(
            "--sessions " + std::to_string(sessions) + " needs about " + std::to_string(needed) +
            " file descriptors" +
            (embedded ? " (two per session with the embedded emulator)" : "") +
            " but the limit is " + std::to_string(limit.rlim_cur) + " (hard limit " +
            std::to_string(limit.rlim_max) +
            "); raise it with `ulimit -n <count>` (the hard limit with `ulimit -Hn` as root or "
            "in /etc/security/limits.conf) or use fewer sessions");
    }
}

/// Reads the file once, encodes it once, and appends a second of silence so that every pass
/// ends an utterance on the server.
LoadAudio prepare_audio(const LoadFlags& flags) {
    LoadAudio load;
    load.encoder.sample_rate = load.sample_rate;
    load.encoder.frame_ms = load.frame_ms;
    load.encoder.complexity = flags.complexity;
    load.encoder.bitrate = flags.bitrate;
    const auto frame = static_cast<std::size_t>(load.sample_rate * load.frame_ms / 1000);

    audio::FileSourceConfig source_config;
    source_config.output_rate = load.sample_rate;
    source_config.frame_samples = frame;
    auto source = audio::FileSource::open(flags.file, source_config);
    if (!source) {
        throw std::invalid_argument(source.error().what());
    }
    std::vector<float> pcm(frame);
    std::size_t samples = 0;
    while (!source.value().read_frame(audio::Span<float>(pcm.data(), pcm.size()), samples) &&
           samples > 0) {
        load.pcm.push_back(pcm);
    }
    if (load.pcm.empty()) {
        throw std::invalid_argument("--file " + flags.file + " holds no audio");
    }
    load.pcm.resize(load.pcm.size() + 1000 / static_cast<std::size_t>(load.frame_ms),
                    std::vector<float>(frame, 0.0f));

    auto encoder = audio::OpusEncoder::create(load.encoder);
    if (!encoder) {
        throw std::invalid_argument(encoder.error().what());
    }
    for (const auto& samples_of_frame : load.pcm) {
        audio::EncodedFrame out;
        if (auto ec = encoder.value().encode(
                audio::Span<const float>(samples_of_frame.data(), samples_of_frame.size()), out)) {
            throw std::runtime_error("encoding " + flags.file + ": " + ec.message());
        }
        load.packets.emplace_back(reinterpret_cast<const char*>(out.bytes.data()), out.size);
    }
    if (flags.mode != "live") {
        load.pcm.clear();  // pre-encoded runs never touch the samples
        load.pcm.shrink_to_fit();
    }
    return load;
}

/// The pre-encoded packets as <u16 little-endian length><bytes>..., for other load clients.
void write_frames(const LoadAudio& load, const std::string& path) {
    std::ofstream out(path, std::ios::binary);
    for (const auto& packet : load.packets) {
        auto size = static_cast<std::uint16_t>(packet.size());
        char prefix[2] = {static_cast<char>(size & 0xff), static_cast<char>(size >> 8)};
        out.write(prefix, 2);
        out.write(packet.data(), static_cast<std::streamsize>(packet.size()));
    }
    if (!out) {
        throw std::runtime_error("cannot write " + path);
    }
    std::printf("wrote %zu frames to %s\n", load.packets.size(), path.c_str());
}

double thread_cpu_seconds(IoThread& thread) {
    // Read on the thread itself: CLOCK_THREAD_CPUTIME_ID is per calling thread.
    std::promise<double> result;
    asio::post(thread.context(), [&result] {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        result.set_value(static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9);
    });
    return result.get_future().get();
}

double process_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto sec = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
    };
    return sec(usage.ru_utime) + sec(usage.ru_stime);
}

/// VmRSS or VmHWM from /proc/self/status, in KiB.
long status_kib(const std::string& key) {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind(key + ":", 0) == 0) {
            return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
        }
    }
    return -1;
}

struct Measurement {
    std::size_t held = 0;
    double window_s = 0;
    double client_cpu_s = 0;   // the io threads that run the sessions
    double process_cpu_s = 0;  // everything, the embedded emulator included
    long rss_kib = 0, rss_idle_kib = 0, rss_peak_kib = 0;
};

void print_report(const LoadFlags& flags, const LoadTally& t, const Measurement& m, bool embedded,
                  std::size_t threads) {
    auto session_seconds = std::max(1e-9, static_cast<double>(m.held) * m.window_s);
    auto client_ms = m.client_cpu_s * 1000 / session_seconds;
    auto process_ms = m.process_cpu_s * 1000 / session_seconds;
    auto per_session_kib =
        m.held > 0 ? static_cast<double>(m.rss_kib - m.rss_idle_kib) / static_cast<double>(m.held)
                   : 0.0;
    std::printf("load report: %zu sessions (%s, complexity %d), %zu io threads, %s\n",
                flags.sessions, flags.mode.c_str(), flags.complexity, threads,
                embedded ? "embedded emulator" : flags.url.c_str());
    std::printf("  sessions held      %zu of %zu (started %llu, lost %llu)\n", m.held,
                flags.sessions, static_cast<unsigned long long>(t.sessions_started),
                static_cast<unsigned long long>(t.sessions_lost));
    std::printf("  frames sent        %llu, late %llu (%.3f%%), dropped %llu\n",
                static_cast<unsigned long long>(t.frames_sent),
                static_cast<unsigned long long>(t.frames_late),
                t.frames_sent ? 100.0 * static_cast<double>(t.frames_late) /
                                    static_cast<double>(t.frames_sent)
                              : 0.0,
                static_cast<unsigned long long>(t.frames_dropped));
    std::printf("  send latency       p50 %.0f us, p99 %.0f us, max %.0f us\n",
                t.send_latency.quantile_us(0.5), t.send_latency.quantile_us(0.99),
                t.send_latency.max_us());
    std::printf("  reply first audio  %llu replies, p50 %.1f ms, p99 %.1f ms (%llu frames)\n",
                static_cast<unsigned long long>(t.reply_first_audio.count()),
                t.reply_first_audio.quantile_us(0.5) / 1000,
                t.reply_first_audio.quantile_us(0.99) / 1000,
                static_cast<unsigned long long>(t.reply_frames));
    if (t.receive_to_playout.count() > 0) {
        std::printf("  receive to playout p50 %.1f ms, p99 %.1f ms\n",
                    t.receive_to_playout.quantile_us(0.5) / 1000,
                    t.receive_to_playout.quantile_us(0.99) / 1000);
    }
    std::printf("  cpu per session    %.3f ms/s client io threads, %.3f ms/s whole process%s\n",
                client_ms, process_ms, embedded ? " (emulator included)" : "");
    std::printf("  rss                %ld KiB (%.1f KiB per session; peak %ld KiB)\n", m.rss_kib,
                per_session_kib, m.rss_peak_kib);
    if (t.frames_late > 0) {
        std::printf("  OVERLOAD: %llu frames went out more than one frame late\n",
                    static_cast<unsigned long long>(t.frames_late));
    }
    if (!flags.json) {
        return;
    }
    nlohmann::json j = {{"sessions", flags.sessions},
                        {"held", m.held},
                        {"mode", flags.mode},
                        {"threads", threads},
                        {"window_s", m.window_s},
                        {"frames_sent", t.frames_sent},
                        {"frames_late", t.frames_late},
                        {"frames_dropped", t.frames_dropped},
                        {"sessions_lost", t.sessions_lost},
                        {"send_p50_us", t.send_latency.quantile_us(0.5)},
                        {"send_p99_us", t.send_latency.quantile_us(0.99)},
                        {"send_max_us", t.send_latency.max_us()},
                        {"ttfa_count", t.reply_first_audio.count()},
                        {"ttfa_p50_ms", t.reply_first_audio.quantile_us(0.5) / 1000},
                        {"ttfa_p99_ms", t.reply_first_audio.quantile_us(0.99) / 1000},
                        {"playout_count", t.receive_to_playout.count()},
                        {"playout_p50_ms", t.receive_to_playout.quantile_us(0.5) / 1000},
                        {"playout_p99_ms", t.receive_to_playout.quantile_us(0.99) / 1000},
                        {"playout_max_ms", t.receive_to_playout.max_us() / 1000},
                        {"reply_frames", t.reply_frames},
                        {"client_cpu_s", m.client_cpu_s},
                        {"process_cpu_s", m.process_cpu_s},
                        {"client_cpu_ms_per_session_s", client_ms},
                        {"rss_kib", m.rss_kib},
                        {"rss_idle_kib", m.rss_idle_kib},
                        {"rss_per_session_kib", per_session_kib}};
    std::printf("LOAD_JSON %s\n", j.dump().c_str());
}

void run_load(const LoadFlags& flags) {
    // Flags that cannot work fail before anything starts.
    if (flags.sessions == 0) {
        throw std::invalid_argument("--sessions must be at least 1");
    }
    auto duration = parse_duration(flags.duration);
    if (!duration || duration->count() <= 0) {
        throw std::invalid_argument("--duration '" + flags.duration +
                                    "' is not a positive duration (e.g. 20s, 2m)");
    }
    const bool embedded = flags.url.empty();
    check_fd_limit(flags.sessions, embedded);
    auto default_ramp = std::min({std::chrono::milliseconds(5 * static_cast<long>(flags.sessions)),
                                  std::chrono::milliseconds(5000), *duration / 2});
    auto ramp = flags.ramp.empty() ? std::optional(default_ramp) : parse_duration(flags.ramp);
    if (!ramp || *ramp >= *duration) {
        throw std::invalid_argument("--ramp '" + flags.ramp +
                                    "' must be a duration shorter than --duration");
    }
    if (flags.file.empty()) {
        throw std::invalid_argument("--file is required (a speech recording to replay)");
    }
    auto load_audio = prepare_audio(flags);
    if (!flags.frames_out.empty()) {
        write_frames(load_audio, flags.frames_out);
        return;
    }

    // The server: --url, or an emulator in this process that relays packets (no codec work)
    // unless --emulator-decode asks for the full decoding one.
    std::unique_ptr<emulator::Emulator> emu;
    std::string url = flags.url, token = flags.token;
    if (embedded) {
        emulator::EmulatorOptions options;
        options.max_connections_per_user = flags.sessions + 10;
        options.greeting_duration = std::chrono::milliseconds(0);
        options.max_recorded_seconds = 0;
        options.decode_audio = flags.emulator_decode;
        options.idle_timeout = *duration + std::chrono::minutes(1);
        emu = std::make_unique<emulator::Emulator>(options);
        emu->start();
        url = emu->voice_url();
        token = emu->mint_token("load-user");
    } else if (token.empty()) {
        const char* env = std::getenv("OLYMPUS_TOKEN");
        token = env != nullptr ? env : "";
    }

    // Shared io threads, each with the tally of its sessions.
    const std::size_t threads =
        flags.threads > 0 ? flags.threads : std::max(1u, std::thread::hardware_concurrency());
    IoThreadPool pool(threads);
    std::vector<LoadTally> tallies(threads);
    auto rss_idle = status_kib("VmRSS");

    // Connect at an even rate over the ramp, which also spreads the frame phases.
    auto token_provider = std::make_shared<FixedTokenProvider>(token);
    std::vector<std::unique_ptr<LoadSession>> sessions;
    sessions.reserve(flags.sessions);
    auto run_start = Clock::now();
    auto run_end = run_start + *duration;
    for (std::size_t i = 0; i < flags.sessions && !interrupted(); ++i) {
        LoadSessionConfig config;
        config.connection.url = url;
        config.connection.token_provider = token_provider;
        config.connection.tls.verify_peer = config.connection.tls.verify_hostname = !flags.insecure;
        config.connection.io_thread = pool.at(i % threads);
        config.connection.logger = "load";
        config.connection.reconnect.max_attempts = 3;
        config.live_encode = flags.mode == "live";
        config.idle = flags.mode == "idle";
        sessions.push_back(
            std::make_unique<LoadSession>(std::move(config), load_audio, tallies[i % threads]));
        sessions.back()->start();
        std::this_thread::sleep_until(run_start + *ramp * (i + 1) / flags.sessions);
    }

    // The measuring window opens once every session is active (or a grace period passed).
    auto count_active = [&] {
        return static_cast<std::size_t>(std::count_if(sessions.begin(), sessions.end(),
                                                      [](const auto& s) { return s->active(); }));
    };
    while (count_active() < sessions.size() && Clock::now() < run_end && !interrupted()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto window_start = Clock::now();
    double client_cpu0 = 0;
    for (std::size_t i = 0; i < threads; ++i) {
        client_cpu0 += thread_cpu_seconds(*pool.at(i));
    }
    auto process_cpu0 = process_cpu_seconds();

    // Hold the load, with a progress line every 5 s on stderr.
    auto next_progress = window_start + std::chrono::seconds(5);
    while (Clock::now() < run_end && !interrupted()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (Clock::now() >= next_progress) {
            std::fprintf(stderr, "load: %zu of %zu sessions active\n", count_active(),
                         sessions.size());
            next_progress += std::chrono::seconds(5);
        }
    }

    // Close the window, then end every session politely and collect.
    Measurement m;
    m.held = count_active();
    m.window_s = std::chrono::duration<double>(Clock::now() - window_start).count();
    for (std::size_t i = 0; i < threads; ++i) {
        m.client_cpu_s += thread_cpu_seconds(*pool.at(i));
    }
    m.client_cpu_s -= client_cpu0;
    m.process_cpu_s = process_cpu_seconds() - process_cpu0;
    m.rss_kib = status_kib("VmRSS");
    m.rss_idle_kib = rss_idle;
    m.rss_peak_kib = status_kib("VmHWM");
    for (auto& session : sessions) {
        session->finish();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sessions.clear();

    LoadTally total;
    for (const auto& t : tallies) {
        total.send_latency.merge(t.send_latency);
        total.reply_first_audio.merge(t.reply_first_audio);
        total.receive_to_playout.merge(t.receive_to_playout);
        total.frames_sent += t.frames_sent;
        total.frames_late += t.frames_late;
        total.frames_dropped += t.frames_dropped;
        total.reply_frames += t.reply_frames;
        total.replies += t.replies;
        total.sessions_started += t.sessions_started;
        total.sessions_lost += t.sessions_lost;
    }
    print_report(flags, total, m, embedded, threads);
    exit_code() = interrupted() ? kExitInterrupted : m.held > 0 ? kExitOk : kExitFailure;
}

}  // namespace

void add_load_command(CLI::App& app) {
    auto flags = std::make_shared<LoadFlags>();
    auto* cmd = app.add_subcommand(
        "load", "Run many concurrent voice sessions at real-time pace and report what they saw");
    cmd->add_option("--sessions", flags->sessions, "concurrent sessions")->required();
    cmd->add_option("--duration", flags->duration, "how long to run, e.g. 20s or 2m")
        ->capture_default_str();
    cmd->add_option("--file", flags->file, "speech recording every session replays in a loop")
        ->required();
    cmd->add_option("--mode", flags->mode,
                    "pre-encoded: encode the file once; live: every session encodes each frame "
                    "and plays replies through a jitter buffer; idle: sessions start and send "
                    "nothing (memory of an idle link)")
        ->check(CLI::IsMember({"pre-encoded", "live", "idle"}))
        ->capture_default_str();
    cmd->add_option("--complexity", flags->complexity, "Opus complexity 0..10")
        ->check(CLI::Range(0, 10))
        ->capture_default_str();
    cmd->add_option("--bitrate", flags->bitrate, "Opus bits per second")->capture_default_str();
    cmd->add_option("--threads", flags->threads, "io threads (default: one per core)");
    cmd->add_option("--ramp", flags->ramp,
                    "spread the connects over this long (default 5 ms per session, at most 5s)");
    cmd->add_option("--url", flags->url, "voice stream URL (default: an embedded emulator)");
    cmd->add_option("--token", flags->token, "access token (default: $OLYMPUS_TOKEN)");
    cmd->add_flag("--insecure", flags->insecure, "do not verify the server's certificate");
    cmd->add_flag("--emulator-decode", flags->emulator_decode,
                  "embedded emulator decodes every frame (default: it relays packets)");
    cmd->add_flag("--json", flags->json, "also print the figures as one LOAD_JSON line");
    cmd->add_option("--frames-out", flags->frames_out,
                    "only write the pre-encoded frames to this file (for bench/node) and exit");
    cmd->callback([flags] {
        run_guarded([&] {
            install_interrupt_handler();
            run_load(*flags);
        });
    });
}

}  // namespace olympus::cli
