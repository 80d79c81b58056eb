// The client side of a live voice session (protocol section 3): start_session over the voice
// stream, audio frames up from a VoiceSource, reply audio down into a VoiceSink, typed events
// to the application, barge-in, audio_url replies and resume after a dropped link. It reuses
// the transport core (Connection) for heartbeat, token refresh and reconnection, on a link of its
// own or riding a warm VoiceStream that carries one session after another.
//
// Threads: public methods may be called from any thread. Events are delivered on the
// connection's io thread. The session runs three more threads of its own: the source thread
// (read, encode, queue), the playout thread (jitter buffer, decode, sink) and the fetch thread
// (audio_url downloads).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "olympus/connection.hpp"
#include "olympus/voice_io.hpp"
#include "olympus/voice_stream.hpp"

namespace olympus {

/// The audio format of one direction of the stream (protocol section 3.1).
struct AudioFormat {
    enum class Encoding { opus, pcm_s16le };
    Encoding encoding = Encoding::opus;
    int sample_rate = 48000;  ///< 8000, 12000, 16000, 24000 or 48000 Hz
    int frame_ms = 20;        ///< 10, 20, 40 or 60 ms

    int frame_samples() const { return sample_rate * frame_ms / 1000; }
    nlohmann::json to_json() const;
    /// Reads a session_started "audio" object; nullopt when a value is missing or not allowed.
    static std::optional<AudioFormat> from_json(const nlohmann::json& audio);
    bool operator==(const AudioFormat& other) const;
};

/// The session's state machine; see the diagram in voice_session.cpp.
enum class VoiceState {
    idle,        ///< constructed, start() not called yet
    connecting,  ///< opening the voice stream
    starting,    ///< start_session sent, waiting for session_started
    active,      ///< session running: audio flows both ways
    resuming,    ///< the link dropped; reconnecting to resume the same session
    ending,      ///< end_session sent, waiting for session_ended
    ended,       ///< over: session_ended, close(), or a terminal error (see VoiceStats::error)
};
const char* to_string(VoiceState state);

/// What the session tells the application. Fields that do not apply to a kind are empty.
struct VoiceEvent {
    enum class Kind {
        state_changed,        ///< `state`; `error` says why when it went down
        session_started,      ///< `session_id`, `resumed`, `text` = greeting
        partial_transcript,   ///< `text`
        final_transcript,     ///< `text`, `id` = utterance_id
        final_response,       ///< `text`, `id` = response_id, `url` = audio_url if any
        response_audio_done,  ///< `id` = response_id, `played_ms` = its duration
        interrupt,            ///< `id` = response_id the server stopped
        barge_in,             ///< a barge_in was sent: `id`, `played_ms` actually heard
        audio_url_played,     ///< the fetched reply was queued for playback: `id`, `url`
        session_ended,        ///< `session_id`, `reason`
        error,                ///< `error`, `text` = details; the session carries on unless
                              ///< the state changes to ended
    };
    Kind kind = Kind::error;
    VoiceState state = VoiceState::idle;
    std::string session_id;
    std::string id;
    std::string text;
    std::string url;
    std::string reason;
    bool resumed = false;
    std::int64_t played_ms = 0;
    std::error_code error;
};
const char* to_string(VoiceEvent::Kind kind);

/// Counters and measurements; a snapshot, readable from any thread.
struct VoiceStats {
    VoiceState state = VoiceState::idle;
    std::error_code error;  ///< why the session ended, if it failed
    std::string session_id;

    // Uplink.
    std::uint64_t frames_captured = 0;   ///< frames the source delivered
    std::uint64_t frames_sent = 0;       ///< frames handed to the link
    std::uint64_t uplink_overflows = 0;  ///< frames dropped because the uplink queue was full
    std::uint64_t outage_dropped = 0;    ///< oldest frames dropped from the outage buffer
    std::uint64_t outage_peak = 0;       ///< most frames held in the outage buffer at once
    /// Capture (or file due time) to send on the io thread, microseconds.
    double send_latency_p50_us = 0, send_latency_p90_us = 0, send_latency_p99_us = 0,
           send_latency_max_us = 0;

    // Downlink.
    std::uint64_t reply_frames_received = 0;     ///< binary frames received
    std::uint64_t bad_frames = 0;                ///< frames that did not decode (concealed)
    std::uint64_t unexpected_format_frames = 0;  ///< frames of another format (concealed)
    std::uint64_t frames_played = 0;             ///< frames written to the sink
    std::uint64_t concealed_frames = 0;          ///< of those, filled in by PLC or FEC
    std::uint64_t discarded_after_barge_in = 0;  ///< frames of a stopped reply that still came
    /// Frames dropped unplayed because more came than the jitter buffer (or, for PCM, the
    /// playout ring) holds, or came too late to play: a burst after a stall, a flooding server.
    std::uint64_t reply_frames_dropped = 0;
    std::uint64_t barge_ins = 0;          ///< barge_in messages sent
    std::uint64_t replies = 0;            ///< final_response messages received
    std::uint64_t audio_urls_played = 0;  ///< audio_url replies fetched and played
    std::uint64_t resumes = 0;            ///< successful resumes (resumed: true)
    /// From a final_transcript to the first sample of its reply in the sink, ms (last reply);
    /// negative while no reply has played.
    double reply_first_audio_ms = -1;
    int jitter_depth_frames = 0;
    float input_dbfs = -120;                       ///< level of the last frame sent
    float output_dbfs = -120;                      ///< level of the last frame played
    std::optional<std::chrono::microseconds> rtt;  ///< of the last client ping
    std::uint64_t link_drops = 0;
};

struct VoiceSessionOptions {
    /// The voice stream URL, token provider, TLS, heartbeat and reconnect policy. The auth
    /// mode is always "first message": start_session carries the access token.
    ConnectionOptions connection;
    std::string location_id = "loc-demo";
    std::string channel = "drive_thru";
    int lane = 1;
    std::string language = "en-US";
    AudioFormat audio;         ///< what the client sends; the server says what it sends back
    int opus_bitrate = 24000;  ///< bits per second of the uplink encoder

    /// No session_started within this long after start_session fails the first start with
    /// errc::timeout (a resume keeps retrying under the reconnect policy).
    std::chrono::milliseconds start_timeout{10'000};
    /// Audio kept while the link is down, oldest dropped first (protocol section 3.5).
    std::chrono::milliseconds outage_buffer{2'000};
    /// After a final_response with an audio_url, how long to wait for streamed frames before
    /// fetching the URL instead.
    std::chrono::milliseconds audio_url_grace{250};
    std::chrono::milliseconds audio_url_timeout{10'000};  ///< whole download
    /// TLS rules for audio_url downloads; unset: the same as the stream's.
    std::optional<TlsOptions> audio_url_tls;
    /// How long the source may wait for the greeting to play out before its first frame: a
    /// recorded customer waits for the agent to finish, as one at the post does. The greeting
    /// is over when no reply is pending, nothing plays, and the downlink has been quiet for
    /// 500 ms. 0 starts the source as soon as the session is active (a live microphone: the
    /// customer may talk over the greeting, which barges in). Not applied after a resume.
    std::chrono::milliseconds greeting_wait{0};
    /// Wait this long for session_ended after end_session.
    std::chrono::milliseconds end_timeout{2'000};
    int fade_ms = 5;  ///< barge-in fade, file sinks (device sinks use their own setting)
    /// Sees every control message of the session on the io thread, as sent (`sent` true:
    /// start_session, barge_in, end_session) or received (session_started, transcripts,
    /// replies, interrupt, session_ended, error), before it is acted on; the access token is
    /// replaced by "<redacted>". Must not block. Unset: nothing is observed.
    std::function<void(bool sent, const nlohmann::json& message)> on_control_message;

    /// Throws std::invalid_argument naming the bad value.
    void validate() const;
};

class VoiceSession {
public:
    using EventHandler = std::function<void(const VoiceEvent&)>;

    /// Validates the options (throws std::invalid_argument). `source` may be null (listen
    /// only); `sink` may be null (replies are decoded and dropped). `on_event` runs on the io
    /// thread and must not block or call wait_*() or the destructor.
    VoiceSession(VoiceSessionOptions options, std::unique_ptr<VoiceSource> source,
                 std::unique_ptr<VoiceSink> sink, EventHandler on_event);
    /// As above, riding `stream`'s warm link unless the stream is in per-session mode (then
    /// options.connection opens a link of its own, as above). On the warm link start() sends
    /// start_session once the link is authenticated, a drop is resumed on the stream's
    /// reconnect, and the end leaves the link open for the next session. One session rides a
    /// stream at a time; a second one fails with errc::session_refused. If the stream turns
    /// out not to support warm links while this session waits on it, the session fails with
    /// errc::session_lost. The stream must outlive the session.
    VoiceSession(VoiceSessionOptions options, VoiceStream& stream,
                 std::unique_ptr<VoiceSource> source, std::unique_ptr<VoiceSink> sink,
                 EventHandler on_event);
    /// Ends like close() and joins every thread; the sink is finished.
    ~VoiceSession();
    VoiceSession(const VoiceSession&) = delete;
    VoiceSession& operator=(const VoiceSession&) = delete;

    /// Connects and sends start_session; the source starts once the session is active.
    void start();
    /// Stops the current reply now (the customer spoke over it) and reports barge_in.
    void barge_in();
    /// Stops the source, sends end_session and waits for session_ended in the background
    /// (end_timeout). Idempotent.
    void end(const std::string& reason = "completed");
    /// Closes the link without end_session. Idempotent.
    void close();

    /// Blocks until the state is `state` or ended, or `timeout` passes; true on `state`.
    bool wait_for(VoiceState state, std::chrono::milliseconds timeout) const;
    /// Blocks until the source is exhausted and every frame read has left the uplink queue.
    bool wait_source_done(std::chrono::milliseconds timeout) const;
    /// Blocks until no reply is pending: every response started has finished (audio done and
    /// played out, or its audio_url played) and nothing arrived for `quiet`.
    bool wait_replies_done(std::chrono::milliseconds quiet,
                           std::chrono::milliseconds timeout) const;

    VoiceState state() const;
    VoiceStats stats() const;
    /// The sink's written samples (for progress displays); 0 without a sink.
    std::uint64_t sink_samples() const;
    /// The underlying link, for its state and counters (the stream's when riding one).
    const Connection& connection() const;
    /// True when the session rides a warm VoiceStream rather than a link of its own.
    bool rides_stream() const;

private:
    class Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace olympus
