// `olympus-voice talk`: a live voice session from the microphone to the speakers through
// PortAudio, with a one-screen terminal view (connection state, levels, ring and jitter-buffer
// fill, round-trip time, transcripts) redrawn five times a second, or a status line per second
// when stderr is not a terminal. Ends on Ctrl-C or after --duration. Main thread, plus the
// session's own threads (events arrive on its io thread).
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "olympus/voice_session.hpp"

#include "commands.hpp"
#include "duration.hpp"
#include "voice_endpoint.hpp"

namespace olympus::cli {
namespace {

struct TalkFlags {
    std::string input_device;
    std::string output_device;
    std::string duration = "0";
    VoiceEndpointFlags endpoint;
};

// The last few things said, written by the io thread, read by the main thread.
class Transcript {
public:
    void add(std::string line) {
        std::lock_guard lock(mutex_);
        lines_.push_back(std::move(line));
        while (lines_.size() > 8) {
            lines_.pop_front();
        }
    }
    std::deque<std::string> lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    mutable std::mutex mutex_;
    std::deque<std::string> lines_;
};

std::string meter(float dbfs) {
    // -60 dBFS .. 0 dBFS over 30 cells.
    int cells = static_cast<int>(std::clamp((dbfs + 60.0f) / 2.0f, 0.0f, 30.0f));
    return std::string(static_cast<std::size_t>(cells), '|') +
           std::string(static_cast<std::size_t>(30 - cells), ' ');
}

void draw_screen(const VoiceSession& session, const VoiceSource& mic, const VoiceSink& speaker,
                 const Transcript& transcript) {
    auto s = session.stats();
    std::string rtt = s.rtt ? format_ms(static_cast<double>(s.rtt->count()) / 1000) : "-";
    std::fprintf(stderr, "\033[H\033[2J");
    std::fprintf(stderr, "olympus-voice talk    state: %-10s session: %s\n\n", to_string(s.state),
                 s.session_id.c_str());
    std::fprintf(stderr, "  mic      [%s] %6.1f dBFS   ring %s\n", meter(s.input_dbfs).c_str(),
                 static_cast<double>(s.input_dbfs), format_ms(mic.fill_ms()).c_str());
    std::fprintf(stderr, "  speaker  [%s] %6.1f dBFS   ring %s\n", meter(s.output_dbfs).c_str(),
                 static_cast<double>(s.output_dbfs), format_ms(speaker.fill_ms()).c_str());
    std::fprintf(stderr,
                 "  jitter buffer %d frames   rtt %s   sent %llu   played %llu   "
                 "dropped %llu   barge-ins %llu\n\n",
                 s.jitter_depth_frames, rtt.c_str(), static_cast<unsigned long long>(s.frames_sent),
                 static_cast<unsigned long long>(s.frames_played),
                 static_cast<unsigned long long>(s.outage_dropped + s.uplink_overflows),
                 static_cast<unsigned long long>(s.barge_ins));
    for (const auto& line : transcript.lines()) {
        std::fprintf(stderr, "  %s\n", line.c_str());
    }
    std::fprintf(stderr, "\n  Ctrl-C to end the session\n");
    std::fflush(stderr);
}

void status_line(const VoiceSession& session) {
    auto s = session.stats();
    std::fprintf(stderr, "state=%s sent=%llu played=%llu in=%.1fdBFS out=%.1fdBFS jitter=%d\n",
                 to_string(s.state), static_cast<unsigned long long>(s.frames_sent),
                 static_cast<unsigned long long>(s.frames_played),
                 static_cast<double>(s.input_dbfs), static_cast<double>(s.output_dbfs),
                 s.jitter_depth_frames);
}

void run_talk(const TalkFlags& flags) {
    auto duration = parse_duration(flags.duration);
    if (!duration) {
        throw std::invalid_argument("--duration takes a duration like 30s (0: until Ctrl-C)");
    }

    // Devices first: a missing one fails before anything connects.
    auto endpoint = resolve_voice_endpoint(flags.endpoint);
    auto mic = DeviceVoiceSource::open(flags.input_device, endpoint.options.audio.sample_rate);
    if (!mic) {
        std::fprintf(stderr, "olympus-voice: microphone: %s\n", mic.error().what().c_str());
        exit_code() = kExitUsage;
        return;
    }
    auto speaker = DeviceVoiceSink::open(flags.output_device, 48000);
    if (!speaker) {
        std::fprintf(stderr, "olympus-voice: speakers: %s\n", speaker.error().what().c_str());
        exit_code() = kExitUsage;
        return;
    }

    // The session, with what was said collected for the screen.
    Transcript transcript;
    auto on_event = [&transcript](const VoiceEvent& e) {
        using K = VoiceEvent::Kind;
        if (e.kind == K::final_transcript) {
            transcript.add("customer: " + e.text);
        } else if (e.kind == K::final_response || e.kind == K::session_started) {
            transcript.add("agent:    " + e.text);
        } else if (e.kind == K::barge_in) {
            transcript.add("(barge-in after " + std::to_string(e.played_ms) + " ms)");
        } else if (e.kind == K::error) {
            transcript.add("error:    " + e.error.message() + ": " + e.text);
        }
    };
    const VoiceSource& mic_view = *mic.value();
    const VoiceSink& speaker_view = *speaker.value();
    VoiceSession session(endpoint.options, std::move(mic).value(), std::move(speaker).value(),
                         on_event);
    install_interrupt_handler();
    session.start();

    // Redraw until Ctrl-C, the duration, or the session's end.
    const bool tty = isatty(STDERR_FILENO) == 1;
    auto until = std::chrono::steady_clock::now() + *duration;
    int tick = 0;
    while (!interrupted().load() && session.state() != VoiceState::ended &&
           (duration->count() == 0 || std::chrono::steady_clock::now() < until)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if (tty) {
            draw_screen(session, mic_view, speaker_view, transcript);
        } else if (++tick % 5 == 0) {
            status_line(session);
        }
    }

    // End the protocol's way and report.
    session.end(interrupted().load() ? "cancelled" : "completed");
    session.wait_for(VoiceState::ended, endpoint.options.end_timeout + std::chrono::seconds(1));
    auto stats = session.stats();
    std::printf(
        "session %s: sent %llu frames, played %llu, dropped %llu, send latency p50=%s "
        "p99=%s\n",
        stats.session_id.c_str(), static_cast<unsigned long long>(stats.frames_sent),
        static_cast<unsigned long long>(stats.frames_played),
        static_cast<unsigned long long>(stats.outage_dropped + stats.uplink_overflows),
        format_ms(stats.send_latency_p50_us / 1000).c_str(),
        format_ms(stats.send_latency_p99_us / 1000).c_str());
    if (stats.error) {
        std::fprintf(stderr, "olympus-voice: session failed: %s\n", stats.error.message().c_str());
    }
    exit_code() = interrupted().load() ? kExitInterrupted : stats.error ? kExitFailure : kExitOk;
}

}  // namespace

void add_talk_command(CLI::App& app) {
    auto flags = std::make_shared<TalkFlags>();
    auto* cmd = app.add_subcommand("talk", "A live voice session from the microphone");
    cmd->add_option("--input-device", flags->input_device,
                    "microphone: index or name substring (see `devices`)");
    cmd->add_option("--output-device", flags->output_device,
                    "speakers: index or name substring (see `devices`)");
    cmd->add_option("--duration", flags->duration, "end after this long (0: until Ctrl-C)")
        ->capture_default_str();
    flags->endpoint.add_to(*cmd);
    cmd->callback([flags] { run_guarded([&] { run_talk(*flags); }); });
}

}  // namespace olympus::cli
