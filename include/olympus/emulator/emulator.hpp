// A local emulator of the Olympus realtime gateway (`/v1`, `/v1/ws`) and voice stream
// (`/stream`), strict enough that a client passing against it also works against the real
// service. It runs its own io thread;
// every public method may be called from any other thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "olympus/emulator/jwt.hpp"

namespace olympus::emulator {

/// The container of an audio file the emulator serves.
enum class AudioFileType { mp3, wav };

struct EmulatorOptions {
    std::string host = "127.0.0.1";  ///< address to listen on; loopback by default
    std::uint16_t port = 0;          ///< 0 picks a free port; see Emulator::port()

    bool tls = false;           ///< serve wss:// instead of ws://
    std::string tls_cert_file;  ///< PEM certificate; empty: a self-signed one for
                                ///< localhost and 127.0.0.1 is generated
    std::string tls_key_file;   ///< PEM private key of tls_cert_file
    std::string jwt_key_file;   ///< PEM RSA key that signs tokens; empty: generated

    std::chrono::milliseconds ping_interval{30'000};  ///< server ping period
    std::chrono::milliseconds pong_timeout{10'000};   ///< close 4000 without a pong by then
    std::chrono::milliseconds auth_timeout{10'000};   ///< close 4001 when not authenticated
    std::chrono::milliseconds idle_timeout{300'000};  ///< close 4002 when nothing arrives

    double events_per_second = 1.0;  ///< per subscription; 0 sends no events
    /// On each new subscription, re-send up to this many of the last events already sent for
    /// the same channel and location (an at-least-once server replaying after a reconnect).
    /// The replayed events keep their original `id`. 0 turns replay off.
    std::size_t replay_recent_events = 0;

    std::size_t max_connections_per_user = 10;
    std::size_t max_subscriptions = 50;      ///< per connection
    std::size_t max_message_bytes = 65'536;  ///< larger inbound frames close with 1009
    double requests_per_second = 20.0;       ///< sustained request rate per connection
    double request_burst = 60.0;  ///< requests at once before rate_limited; room to resubscribe 50

    std::uint64_t seed = 1;  ///< seeds the event generator, so runs are repeatable

    // Voice stream (/stream).
    double speech_threshold_dbfs = -45.0;               ///< a frame this loud counts as speech
    std::chrono::milliseconds utterance_silence{500};   ///< silence that ends an utterance
    std::chrono::milliseconds min_utterance{150};       ///< shorter speech is taken as noise
    std::chrono::milliseconds barge_in_speech{120};     ///< speech over a reply that interrupts it
    std::chrono::milliseconds greeting_duration{1200};  ///< synthetic greeting audio; 0: none
    std::chrono::milliseconds no_speech_timeout{30'000};  ///< session_ended "timeout"
    std::chrono::milliseconds max_session{600'000};       ///< session_ended "timeout"
    /// A dropped session can be resumed this long, by the user who started it. A resume also
    /// takes the session over from a link the server still holds (one that died half-open):
    /// that old link is torn down, and what arrives on it afterwards is not counted.
    std::chrono::milliseconds resume_window{30'000};
    /// Received audio kept per session, for tests; only the 64 newest sessions keep theirs.
    std::size_t max_recorded_seconds = 120;
    /// The file type of replies offered as an audio_url: MP3, as the public docs describe
    /// them, or 16-bit WAV.
    AudioFileType audio_url_type = AudioFileType::mp3;
    /// Off: relay mode for load tests. Opus frames are counted but neither decoded nor
    /// recorded; a packet of at least speech_packet_bytes counts as speech, and a reply sends
    /// the utterance's own packets back unchanged. The emulator then spends no codec time.
    bool decode_audio = true;
    /// [ours] A voice stream connection may authenticate with {"type":"auth"} before its first
    /// start_session and carry one session after another (the drive-thru lane keeps it warm).
    /// Off: the emulator behaves like a server without that extension: `auth` is answered with
    /// `error invalid_message` and the connection is closed (1000) after each session_ended.
    bool voice_warm_connections = true;
    /// Relay mode: smaller packets count as silence. Tuned for Opus at 24 kb/s, where a frame
    /// of silence takes about 26 bytes and one of speech 50 to 80.
    std::size_t speech_packet_bytes = 40;
};

/// How the voice stream delivers its replies.
enum class ReplyMode {
    stream,             ///< binary frames at real-time pace, between final_response and
                        ///< response_audio_done
    audio_url,          ///< final_response carries an audio_url to a WAV file on this server
    audio_url_missing,  ///< as audio_url, but the URL answers 404
    audio_url_garbage,  ///< as audio_url, but the URL serves bytes that are not audio
};

/// Misbehaviour of the voice stream, for tests of a client's handling of bad server input.
enum class VoiceFault {
    none,
    refuse_start,          ///< answer start_session with an error frame (code "unauthorized")
    corrupt_reply_frames,  ///< every 4th reply frame is bytes that do not decode
    wrong_reply_format,    ///< reply frames last twice the announced frame_ms
    flood_reply_frames,    ///< reply frames go out back to back, far faster than real time,
                           ///< and the reply loops for as long as the fault is on
};

/// The fingerprint of one binary frame in VoiceSessionRecord::frame_digests: 64-bit FNV-1a of
/// its bytes. Tests compute it over the frames a client produced to compare them one by one.
std::uint64_t frame_digest(std::string_view bytes);

/// What the voice stream saw of one session, for tests to compare with what was sent.
struct VoiceSessionRecord {
    std::string session_id;
    std::string encoding;  ///< "opus" or "pcm_s16le"
    int sample_rate = 0;
    int frame_ms = 0;
    std::uint64_t frames_received = 0;  ///< binary audio frames taken in
    /// frame_digest() of each binary frame, in the order taken in (bounded like
    /// received_audio), so that a test can tell lost, repeated and reordered frames apart.
    std::vector<std::uint64_t> frame_digests;
    std::uint64_t bad_frames = 0;       ///< frames that did not decode or had the wrong size;
                                        ///< concealed in received_audio
    std::vector<float> received_audio;  ///< the frames decoded, mono at sample_rate (bounded
                                        ///< by max_recorded_seconds; emptied once 64 newer
                                        ///< sessions exist)
    std::uint64_t utterances = 0;       ///< ends of speech detected
    std::uint64_t replies = 0;          ///< final_response messages sent (greeting excluded)
    std::uint64_t reply_frames_sent = 0;
    std::uint64_t interrupts_sent = 0;
    std::vector<std::int64_t> barge_in_played_ms;  ///< played_ms of each barge_in received
    int resumes = 0;
    std::string end_reason;  ///< empty while the session runs
};

/// How drop_all_connections() ends each connection.
enum class DropMode {
    going_away,  ///< a clean close frame with code 1001
    abort,       ///< the TCP connection is torn down without a close frame (a network drop)
};

/// What the emulator saw and did since start or the last reset_stats().
struct Stats {
    std::map<std::string, std::uint64_t> received;  ///< inbound frames by `type`; also
                                                    ///< "<binary>", "<malformed>", "<untyped>"
    std::map<std::string, std::uint64_t> sent;      ///< outbound frames by `type`
    std::map<std::string, std::uint64_t> errors;    ///< error codes sent (error frames,
                                                    ///< auth_error, failed responses)
    std::map<int, std::uint64_t> closes;            ///< close codes the server sent
    std::uint64_t connections_opened = 0;
    std::uint64_t connections_refused = 0;  ///< by refuse_next_connections()
    std::uint64_t connections_open = 0;     ///< open right now
    std::uint64_t oversize_frames = 0;      ///< inbound frames over max_message_bytes

    std::uint64_t received_of(const std::string& type) const;
    std::uint64_t sent_of(const std::string& type) const;
    std::uint64_t error_count(const std::string& code) const;
    std::uint64_t close_count(int code) const;
    nlohmann::json to_json() const;
};

class Emulator {
public:
    /// Loads or generates keys and certificates; throws std::runtime_error on a bad file.
    explicit Emulator(EmulatorOptions options = {});
    ~Emulator();  ///< stops the server and joins its thread
    Emulator(const Emulator&) = delete;
    Emulator& operator=(const Emulator&) = delete;

    /// Binds and starts serving on the io thread; throws std::system_error when the port is
    /// taken. Returns once the listening socket is open.
    void start();
    /// Closes every connection (1001) and the listener, and joins the io thread. Idempotent.
    void stop();

    std::uint16_t port() const;
    /// "ws://127.0.0.1:<port>" or "wss://localhost:<port>" (wss uses the certificate's name).
    std::string base_url() const;
    std::string gateway_url() const { return base_url() + "/v1"; }
    std::string voice_url() const { return base_url() + "/stream"; }
    /// The certificate a client must trust to reach this emulator over wss (PEM).
    std::string certificate_pem() const;

    const JwtKey& key() const;
    /// A token for `user_id` with read and write permissions on every channel.
    std::string mint_token(const std::string& user_id = "user-dev",
                           std::chrono::seconds lifetime = std::chrono::hours(8)) const;

    Stats stats() const;
    void reset_stats();
    const EmulatorOptions& options() const;

    // Fault controls for tests. Each takes effect on the io thread right after the call.

    /// Ends every open connection now.
    void drop_all_connections(DropMode mode = DropMode::abort);
    /// Rejects the next `n` WebSocket upgrades with HTTP 503.
    void refuse_next_connections(std::size_t n);
    /// Stops (false) or resumes (true) the server's own pings; pong checking pauses too.
    void set_pings_enabled(bool enabled);
    /// While silent, the server sends nothing at all: no pings, answers or events. Inbound
    /// frames are still read and counted, and timeouts still run.
    void set_silent(bool silent);
    /// Holds every outbound frame for `delay` before sending it (order is kept).
    void set_frame_delay(std::chrono::milliseconds delay);
    /// How later voice replies are delivered.
    void set_reply_mode(ReplyMode mode);
    /// Makes the voice stream misbehave from now on (VoiceFault::none to stop).
    void set_voice_fault(VoiceFault fault);

    /// Every voice session since start, oldest first. Waits for the io thread.
    std::vector<VoiceSessionRecord> voice_sessions() const;
    /// The voice session named `session_id`, if the emulator still keeps it. Waits for the io
    /// thread; cheaper than voice_sessions() when many sessions kept their audio.
    std::optional<VoiceSessionRecord> voice_session(const std::string& session_id) const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace olympus::emulator
