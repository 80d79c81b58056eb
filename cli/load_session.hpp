// One session of `olympus-voice load`: the voice stream protocol (start_session, paced binary
// frames up, reply frames down) on a Connection that shares its io thread with many others.
// Built for counting, not for listening: frames come from one shared LoadAudio, and in live
// mode each session encodes them itself and plays replies out through its own jitter buffer.
//
// Threads: constructed and destroyed on the main thread; everything else runs on the session's
// io thread, including the pacing timer and the playout pull, so a session takes no lock.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/steady_timer.hpp>

#include "olympus/audio/jitter_buffer.hpp"
#include "olympus/audio/opus_encoder.hpp"
#include "olympus/connection.hpp"
#include "olympus/io_thread.hpp"

#include "latency_histogram.hpp"

namespace olympus::cli {

/// The audio every session replays, prepared once: the file's frames, then a pause that lets
/// the server hear the end of the utterance. Read-only once built; any thread.
struct LoadAudio {
    int sample_rate = 48000;
    int frame_ms = 20;
    std::vector<std::string> packets;     ///< pre-encoded Opus, one per frame
    std::vector<std::vector<float>> pcm;  ///< the same frames as samples, for live encoding
    audio::EncoderConfig encoder;         ///< how packets were made and live mode encodes
};

/// What the sessions of one io thread measured. io thread only while running; read after.
struct LoadTally {
    LatencyHistogram send_latency;        ///< due time to handed to the socket, per frame
    LatencyHistogram reply_first_audio;   ///< final_transcript to first reply frame
    LatencyHistogram receive_to_playout;  ///< live mode: arrival to the pull that decodes it
    std::uint64_t frames_sent = 0;
    std::uint64_t frames_late = 0;     ///< sent more than one frame period after due
    std::uint64_t frames_dropped = 0;  ///< due while the link was down: never sent
    std::uint64_t reply_frames = 0;
    std::uint64_t replies = 0;
    std::uint64_t encode_errors = 0;
    std::uint64_t sessions_started = 0;
    std::uint64_t sessions_lost = 0;  ///< went down after session_started
};

struct LoadSessionConfig {
    ConnectionOptions connection;  ///< url, token provider, TLS, the shared io_thread
    std::string location_id = "loc-demo";
    bool live_encode = false;  ///< encode each frame now, and decode replies
    bool idle = false;         ///< start the session and send nothing
};

class LoadSession {
public:
    using Clock = std::chrono::steady_clock;

    /// `audio` and `tally` must outlive the session; `tally` belongs to config's io thread.
    LoadSession(LoadSessionConfig config, const LoadAudio& audio, LoadTally& tally);
    ~LoadSession();
    LoadSession(const LoadSession&) = delete;
    LoadSession& operator=(const LoadSession&) = delete;

    /// Any thread: connect and send start_session; frames flow once the session is active.
    void start();
    /// Any thread: stop sending and send end_session; the link stays up for the answer.
    void finish();
    /// Any thread: true once session_started came and the link is still up.
    bool active() const { return active_.load(std::memory_order_acquire); }

private:
    void on_message(const nlohmann::json& message);
    void on_binary(std::string_view bytes);
    void on_started();
    void schedule_tick();
    void tick();
    void send_frame(std::size_t index, Clock::time_point due);
    void play_out(Clock::time_point now);

    // Fixed at construction.
    const LoadSessionConfig config_;
    const LoadAudio& audio_;
    LoadTally& tally_;
    std::atomic<bool> active_{false};  // release on start/loss, acquire in active()

    // The link. `connection_` owns it and is written on the owner's thread only (construction,
    // destruction); the io thread reaches it through `link_`, set once before start(), so that
    // clearing the owner in ~LoadSession races with nothing.
    std::unique_ptr<Connection> connection_;
    Connection* link_ = nullptr;

    // io thread only.
    std::unique_ptr<asio::steady_timer> pacer_;  // created and destroyed on the io thread
    Clock::time_point first_due_{};
    std::uint64_t next_frame_ = 0;
    bool finished_ = false;
    std::optional<Clock::time_point> transcript_at_;  // waiting for its reply's first frame
    std::optional<audio::OpusEncoder> encoder_;       // live mode
    std::unique_ptr<audio::JitterBuffer> jitter_;     // live mode
    std::vector<float> playout_frame_;                // live mode
    std::array<Clock::time_point, 32> arrivals_{};    // live mode: of frames not yet played
    std::size_t arrivals_head_ = 0, arrivals_size_ = 0;
    std::uint64_t decoded_seen_ = 0;
    std::uint32_t reply_sequence_ = 0;
};

}  // namespace olympus::cli
