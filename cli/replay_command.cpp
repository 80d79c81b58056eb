// `olympus-voice replay FILE...`: streams each audio file as one voice session (real-time pace or
// as fast as possible), records the agent's replies into one WAV file, shows a progress bar on a
// terminal and prints per-session stats. Every file is opened before anything connects, so a
// missing one fails first, by name. Ctrl-C ends the session with end_session and finalises the
// WAV. Main thread, plus the session's own threads.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "olympus/log.hpp"
#include "olympus/voice_session.hpp"

#include "commands.hpp"
#include "duration.hpp"
#include "voice_endpoint.hpp"

namespace olympus::cli {
namespace {

struct ReplayFlags {
    std::vector<std::string> files;
    std::string out;
    std::string speed = "realtime";
    int loop = 1;
    std::string reply_wait = "15s";
    std::string trailing_silence = "1s";
    std::string channel = "auto";
    std::string greeting_wait;  // empty: 10s at real-time pace, 0 when fast
    bool stats_json = false;
    VoiceEndpointFlags endpoint;
};

// The channel to stream from `info`: --channel N (1-based), "mix" for the average of all, or
// "auto": the customer's channel (1) of a drive-thru lane recording, recognised by its WAV
// software tag, else the average. -1 stands for the average.
int pick_channel(const std::string& choice, const audio::FileInfo& info) {
    if (choice == "mix") {
        return -1;
    }
    if (choice == "auto") {
        const bool lane = info.software.rfind("olympus-voice drive-thru", 0) == 0;
        return lane && info.channels > 1 ? 0 : -1;
    }
    return std::stoi(choice) - 1;
}

// One WAV file shared by every session of the run; only the command finishes it.
class SharedSink final : public VoiceSink {
public:
    explicit SharedSink(std::shared_ptr<VoiceSink> sink) : sink_(std::move(sink)) {}
    int sample_rate() const override { return sink_->sample_rate(); }
    std::error_code write(audio::Span<const float> pcm) override { return sink_->write(pcm); }
    void fade_out_and_flush(audio::Span<const float> next) override {
        sink_->fade_out_and_flush(next);
    }
    std::uint64_t written_samples() const override { return sink_->written_samples(); }
    std::uint64_t played_samples() const override { return sink_->played_samples(); }

private:
    std::shared_ptr<VoiceSink> sink_;
};

struct Run {
    const ReplayFlags& flags;
    VoiceEndpoint& endpoint;
    std::shared_ptr<VoiceSink> sink;
    std::chrono::milliseconds reply_wait;
    std::chrono::milliseconds silence;
    bool tty;
};

void draw_progress(const std::string& name, std::uint64_t done, std::uint64_t total) {
    constexpr int kWidth = 30;
    double fraction = total > 0 ? std::min(1.0, static_cast<double>(done) / total) : 0.0;
    int filled = static_cast<int>(fraction * kWidth);
    std::fprintf(stderr, "\r%-24.24s [%s%s] %3.0f%%", name.c_str(),
                 std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                 fraction * 100);
    std::fflush(stderr);
}

void print_stats(const std::string& file, const VoiceStats& s, int frame_ms) {
    std::printf(
        "session %s file=%s\n"
        "  frames: captured=%llu sent=%llu dropped=%llu (outage buffer %llu, queue %llu)\n"
        "  send latency: p50=%s p90=%s p99=%s max=%s\n"
        "  replies=%llu reply frames=%llu played=%llu (%.1f s) concealed=%llu bad=%llu "
        "unexpected-format=%llu barge-ins=%llu resumes=%llu\n"
        "  reply time to first audio: %s\n",
        s.session_id.c_str(), file.c_str(), static_cast<unsigned long long>(s.frames_captured),
        static_cast<unsigned long long>(s.frames_sent),
        static_cast<unsigned long long>(s.outage_dropped + s.uplink_overflows),
        static_cast<unsigned long long>(s.outage_dropped),
        static_cast<unsigned long long>(s.uplink_overflows),
        format_ms(s.send_latency_p50_us / 1000).c_str(),
        format_ms(s.send_latency_p90_us / 1000).c_str(),
        format_ms(s.send_latency_p99_us / 1000).c_str(),
        format_ms(s.send_latency_max_us / 1000).c_str(), static_cast<unsigned long long>(s.replies),
        static_cast<unsigned long long>(s.reply_frames_received),
        static_cast<unsigned long long>(s.frames_played),
        static_cast<double>(s.frames_played) * frame_ms / 1000.0,
        static_cast<unsigned long long>(s.concealed_frames),
        static_cast<unsigned long long>(s.bad_frames),
        static_cast<unsigned long long>(s.unexpected_format_frames),
        static_cast<unsigned long long>(s.barge_ins), static_cast<unsigned long long>(s.resumes),
        s.reply_first_audio_ms < 0 ? "no reply played" : format_ms(s.reply_first_audio_ms).c_str());
    std::fflush(stdout);
}

// The same figures as one JSON line, for scripts (the soak compares them with the server's).
void print_stats_json(const std::string& file, const VoiceStats& s) {
    nlohmann::json line = {{"session_id", s.session_id},
                           {"file", file},
                           {"frames_captured", s.frames_captured},
                           {"frames_sent", s.frames_sent},
                           {"outage_dropped", s.outage_dropped},
                           {"uplink_overflows", s.uplink_overflows},
                           {"outage_peak", s.outage_peak},
                           {"link_drops", s.link_drops},
                           {"resumes", s.resumes},
                           {"replies", s.replies},
                           {"reply_frames_received", s.reply_frames_received},
                           {"frames_played", s.frames_played},
                           {"bad_frames", s.bad_frames},
                           {"error", s.error ? s.error.message() : ""}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
}

// Streams one file as one session; false when the session failed or was interrupted.
bool replay_one(Run& run, const std::string& path, int channel) {
    // The source: the file at the session's rate, then silence so the last utterance ends.
    const auto& format = run.endpoint.options.audio;
    auto source = FileVoiceSource::open(path, format.sample_rate, format.frame_ms,
                                        run.flags.speed == "realtime", run.silence, channel);
    if (!source) {
        std::fprintf(stderr, "olympus-voice: %s\n", source.error().what().c_str());
        return false;
    }
    const auto& info = source.value()->info();
    auto total =
        static_cast<std::uint64_t>(std::ceil(static_cast<double>(info.frames) * format.sample_rate /
                                             info.sample_rate / format.frame_samples())) +
        static_cast<std::uint64_t>(run.silence.count() / format.frame_ms);

    // Events worth a line: transcripts, replies and errors.
    std::mutex out;
    auto on_event = [&out, tty = run.tty](const VoiceEvent& e) {
        using K = VoiceEvent::Kind;
        std::lock_guard lock(out);
        const char* lead = tty ? "\r\033[K" : "";
        if (e.kind == K::final_transcript || e.kind == K::final_response) {
            std::fprintf(stderr, "%s%s: %s\n", lead,
                         e.kind == K::final_transcript ? "customer" : "agent", e.text.c_str());
        } else if (e.kind == K::error) {
            std::fprintf(stderr, "%serror: %s: %s\n", lead, e.error.message().c_str(),
                         e.text.c_str());
        }
    };
    VoiceSession session(run.endpoint.options, std::move(source).value(),
                         std::make_unique<SharedSink>(run.sink), on_event);
    session.start();

    // Stream the file, drawing progress, until it ends or Ctrl-C.
    while (!session.wait_source_done(std::chrono::milliseconds(100))) {
        if (interrupted().load() || session.state() == VoiceState::ended) {
            break;
        }
        if (run.tty) {
            std::lock_guard lock(out);
            draw_progress(path, session.stats().frames_sent, total);
        }
    }
    if (run.tty) {
        std::lock_guard lock(out);
        draw_progress(path, session.stats().frames_sent, total);
        std::fprintf(stderr, "\n");
    }

    // Let the last reply play out, then end the session the protocol's way.
    if (!interrupted().load() && session.state() != VoiceState::ended) {
        auto deadline = std::chrono::steady_clock::now() + run.reply_wait;
        while (!session.wait_replies_done(std::chrono::milliseconds(1200),
                                          std::chrono::milliseconds(100)) &&
               !interrupted().load() && std::chrono::steady_clock::now() < deadline) {
        }
    }
    session.end(interrupted().load() ? "cancelled" : "completed");
    session.wait_for(VoiceState::ended,
                     run.endpoint.options.end_timeout + std::chrono::milliseconds(500));
    auto stats = session.stats();
    if (run.flags.stats_json) {
        print_stats_json(path, stats);
    } else {
        print_stats(path, stats, format.frame_ms);
    }
    if (stats.error) {
        std::fprintf(stderr, "olympus-voice: session failed: %s\n", stats.error.message().c_str());
        return false;
    }
    return !interrupted().load();
}

void run_replay(const ReplayFlags& flags) {
    // Every file must open before anything connects: a typo fails fast, by name. Each file's
    // channel is chosen now, and said when it is not the mix.
    std::vector<int> channels;
    for (const auto& path : flags.files) {
        auto probe = FileVoiceSource::open(path, 48000, 20, false);
        int channel = -1;
        if (probe) {
            channel = pick_channel(flags.channel, probe.value()->info());
            probe = FileVoiceSource::open(path, 48000, 20, false, std::chrono::milliseconds(0),
                                          channel);
        }
        if (!probe) {
            std::fprintf(stderr, "olympus-voice: cannot replay %s\n", probe.error().what().c_str());
            exit_code() = kExitUsage;
            return;
        }
        if (channel >= 0) {
            std::fprintf(stderr, "olympus-voice: %s: streaming channel %d of %d%s\n", path.c_str(),
                         channel + 1, probe.value()->info().channels,
                         flags.channel == "auto" ? " (the customer of a lane recording)" : "");
        }
        channels.push_back(channel);
    }
    auto reply_wait = parse_duration(flags.reply_wait);
    auto silence = parse_duration(flags.trailing_silence);
    auto greeting_wait = parse_duration(!flags.greeting_wait.empty() ? flags.greeting_wait
                                        : flags.speed == "realtime"  ? "10s"
                                                                     : "0s");
    if (!reply_wait || !silence || !greeting_wait) {
        throw std::invalid_argument(
            "--reply-wait, --trailing-silence and --greeting-wait take durations like 2s");
    }

    // The reply file (or nowhere), then the endpoint.
    std::shared_ptr<VoiceSink> sink;
    auto endpoint = resolve_voice_endpoint(flags.endpoint);
    endpoint.options.greeting_wait = *greeting_wait;
    if (!flags.out.empty()) {
        auto wav = WavVoiceSink::create(flags.out, endpoint.options.audio.sample_rate);
        if (!wav) {
            std::fprintf(stderr, "olympus-voice: %s\n", wav.error().what().c_str());
            exit_code() = kExitUsage;
            return;
        }
        sink = std::move(wav).value();
    } else {
        struct Nowhere final : VoiceSink {
            int sample_rate() const override { return 48000; }
            std::error_code write(audio::Span<const float>) override { return {}; }
            void fade_out_and_flush(audio::Span<const float>) override {}
            std::uint64_t written_samples() const override { return 0; }
            std::uint64_t played_samples() const override { return 0; }
        };
        sink = std::make_shared<Nowhere>();
    }

    // One session per file, the list repeated --loop times.
    install_interrupt_handler();
    Run run{flags, endpoint, sink, *reply_wait, *silence, isatty(STDERR_FILENO) == 1};
    bool ok = true;
    for (int round = 0; round < flags.loop && ok && !interrupted().load(); ++round) {
        for (std::size_t i = 0; i < flags.files.size(); ++i) {
            ok = replay_one(run, flags.files[i], channels[i]) && ok;
            if (!ok || interrupted().load()) {
                break;
            }
        }
    }

    // The WAV is finished whatever happened, so it is always playable.
    if (auto ec = sink->finish()) {
        std::fprintf(stderr, "olympus-voice: writing %s failed: %s\n", flags.out.c_str(),
                     ec.message().c_str());
        ok = false;
    } else if (!flags.out.empty()) {
        std::fprintf(stderr, "olympus-voice: reply audio written to %s (%.1f s)\n",
                     flags.out.c_str(),
                     static_cast<double>(sink->written_samples()) / sink->sample_rate());
    }
    exit_code() = interrupted().load() ? kExitInterrupted : ok ? kExitOk : kExitFailure;
}

}  // namespace

void add_replay_command(CLI::App& app) {
    auto flags = std::make_shared<ReplayFlags>();
    auto* cmd = app.add_subcommand(
        "replay", "Stream audio files as voice sessions and record the agent's replies");
    cmd->add_option("files", flags->files, "audio files (WAV, FLAC, Ogg, MP3)")->required();
    cmd->add_option("--out", flags->out, "write the reply audio to this WAV file");
    cmd->add_option("--speed", flags->speed, "pace of the upload")
        ->check(CLI::IsMember({"realtime", "fast"}))
        ->capture_default_str();
    cmd->add_option("--loop", flags->loop, "play the list this many times")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--reply-wait", flags->reply_wait,
                    "after a file, wait at most this long for the reply to finish")
        ->capture_default_str();
    cmd->add_option("--trailing-silence", flags->trailing_silence,
                    "silence sent after each file so the last utterance ends")
        ->capture_default_str();
    cmd->add_option("--channel", flags->channel,
                    "channel of a multi-channel file to stream: N (from 1), mix, or auto (the "
                    "customer's channel of a drive-thru recording, else mix)")
        ->check([](const std::string& v) {
            if (v == "auto" || v == "mix" ||
                (!v.empty() && v.size() < 3 && std::all_of(v.begin(), v.end(), ::isdigit) &&
                 std::stoi(v) >= 1)) {
                return std::string();
            }
            return std::string("must be auto, mix or a channel number from 1");
        })
        ->capture_default_str();
    cmd->add_option("--greeting-wait", flags->greeting_wait,
                    "wait at most this long for the agent's greeting to play out before the "
                    "file starts (default 10s at real-time pace, 0 when fast; 0 talks over it)");
    cmd->add_flag("--stats-json", flags->stats_json,
                  "print each session's figures as one JSON line instead of the text block");
    flags->endpoint.add_to(*cmd);
    cmd->callback([flags] { run_guarded([&] { run_replay(*flags); }); });
}

}  // namespace olympus::cli
