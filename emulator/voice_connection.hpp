// One emulated voice stream connection (`/stream`): sessions started with start_session, audio
// frames in, end-of-utterance detection by energy and silence, replies streamed back at
// real-time pace (an echo of what the customer said) or offered as an audio_url, interrupts when
// the customer talks over a reply, and resume after a dropped link. A connection may first
// authenticate with `auth` and then carry one session after another (a warm connection, [ours];
// EmulatorOptions::voice_warm_connections). io thread only.
//
//   open ──auth (optional)──► authenticated, no auth timeout ─┐
//     │                                                        ▼
//     └──start_session ok──► in session ──end_session / timeout──► session_ended ─┐
//                              ▲  │ link drops: the session waits resume_window   │
//                              │  ▼                                               │
//                              └──────────── next start_session ◄─────────────────┘
//                                (warm connections off: the server closes with 1000 instead)
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "olympus/audio/opus_decoder.hpp"
#include "olympus/audio/opus_encoder.hpp"

#include "emulated_connection.hpp"

namespace olympus::emulator {

/// The audio format of one direction of a session.
struct VoiceFormat {
    bool opus = true;  ///< else little-endian 16-bit PCM
    int sample_rate = 48000;
    int frame_ms = 20;

    int frame_samples() const { return sample_rate * frame_ms / 1000; }
    nlohmann::json to_json() const;
    /// Reads a start_session "audio" object; nullopt with `why` set when a value is not allowed.
    static std::optional<VoiceFormat> parse(const nlohmann::json& audio, std::string& why);
};

/// A voice session. It outlives its connection for resume_window after a drop.
struct VoiceSessionState {
    VoiceSessionRecord record;
    VoiceFormat format;
    std::optional<audio::OpusDecoder> decoder;
    std::optional<audio::OpusEncoder> encoder;
    std::optional<audio::OpusEncoder> long_encoder;  ///< for VoiceFault::wrong_reply_format
    std::string user_id;  ///< who started it; only this user may resume it
    bool attached = false;
    std::weak_ptr<EmulatedConnection> owner;  ///< the connection it is attached to
    std::chrono::steady_clock::time_point started, detached_at, last_speech;

    // End-of-utterance detection.
    bool in_speech = false;
    int speech_frames = 0;   ///< speech frames in the current utterance
    int silence_frames = 0;  ///< consecutive quiet frames since the last speech
    int run_of_speech = 0;   ///< consecutive speech frames, for barge-in
    std::vector<float> utterance;
    std::vector<std::string> utterance_packets;  ///< relay mode (decode_audio off): as received
    std::uint64_t next_response = 0;
};

class VoiceConnection : public EmulatedConnection {
public:
    /// `base_url` is "http://127.0.0.1:<port>" or "https://localhost:<port>", for audio_url.
    VoiceConnection(ServerContext& context, std::unique_ptr<Transport> transport,
                    std::string base_url);

    void start() { start_timers(); }
    void on_binary(const std::string& bytes) override;

private:
    void handle(const nlohmann::json& message, const std::string& type) override;
    void released() override;

    // Client messages.
    void handle_start(const nlohmann::json& message);
    void handle_end(const nlohmann::json& message);
    void handle_barge_in(const nlohmann::json& message);

    // Session lifecycle.
    std::shared_ptr<VoiceSessionState> new_session(const VoiceFormat& format, std::string& why);
    std::shared_ptr<VoiceSessionState> find_resumable(const nlohmann::json& message);
    /// Another connection resumed this one's session: let it go and tear this link down.
    void hand_over_session();
    void end_session(const std::string& reason);
    void check_session_timers();

    // Audio in.
    bool decode(const std::string& bytes, std::vector<float>& pcm);
    void detect_speech(bool speech, const std::vector<float>& pcm, const std::string& packet);
    bool relaying() const { return !ctx_.options.decode_audio && session_->format.opus; }
    void utterance_ended();

    // Audio out.
    void start_reply(std::vector<float> audio, const std::string& response_id);
    void start_relayed_reply(std::vector<std::string> packets, const std::string& response_id);
    void send_reply_frame();
    void flood_reply_frames();
    void stop_reply();
    std::string encode(const float* pcm, int samples);
    std::string encode_long(const float* pcm, int samples);

    std::string base_url_;
    std::shared_ptr<VoiceSessionState> session_;

    // The reply being streamed.
    bool replying_ = false;
    std::vector<float> reply_audio_;
    std::vector<std::string> reply_packets_;  // relay mode: sent as they are, not re-encoded
    std::size_t reply_pos_ = 0;
    std::string reply_id_;
    Clock::time_point reply_next_;
    asio::steady_timer reply_timer_;
    asio::steady_timer session_timer_;
};

/// Speech-like test audio: a voiced buzz with syllable-rate loudness changes, mono.
std::vector<float> synthetic_speech(int sample_rate, std::chrono::milliseconds duration);

/// `pcm` (mono float) as an MP3 or 16-bit WAV file in memory; empty if libsndfile refuses.
std::string audio_file_bytes(const std::vector<float>& pcm, int sample_rate, AudioFileType type);

/// The file name extension of `type`, with its dot.
const char* extension_of(AudioFileType type);

}  // namespace olympus::emulator
