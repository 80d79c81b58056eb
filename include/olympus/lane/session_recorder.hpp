// Records one session for later replay: both directions as one stereo WAV (channel 1 the
// customer, as the microphone heard them after echo cancellation and the other processing;
// channel 2 the agent, as handed to the speaker; time-aligned frame by frame, the way the echo
// canceller pairs them) and a JSONL log of every control message with timestamps. The audio
// worker and the io thread only hand data over; the recorder's own writer thread does the disk
// I/O, so a slow or full disk never stalls audio or network. A failed write (disk full) stops
// the recording with one error line and a count, and leaves both files valid up to the failure.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "olympus/audio/error.hpp"
#include "olympus/audio/span.hpp"
#include "olympus/audio/spsc_ring.hpp"
#include "olympus/audio/wav_sink.hpp"
#include "olympus/lane/metrics_registry.hpp"

namespace olympus::lane {

/// The WAV tags that mark a lane recording; `olympus-voice replay` reads them to stream the
/// customer's channel.
inline constexpr const char* kRecordingSoftware = "olympus-voice drive-thru";
inline constexpr const char* kRecordingComment = "channel 1: customer, channel 2: agent";

/// Threads: create()/finish()/destructor on the lane agent's thread; push_audio() on the audio
/// worker (wait-free); push_message() on the io thread; the getters on any thread.
///
///   audio worker --push_audio--> [SPSC ring] --.
///   io thread --push_message--> [queue] -------+--> writer thread --> .wav, .jsonl
class SessionRecorder {
public:
    /// Creates `<directory>/<name>.wav` (stereo, 16-bit, `rate`) and `<name>.jsonl`, whose
    /// first line is `header` plus the file names and channel map. `errors`
    /// (olympus_lane_recording_errors_total) must outlive the recorder. Fails when a file
    /// cannot be created (the error names it); the caller counts that.
    static audio::Result<std::unique_ptr<SessionRecorder>> create(const std::string& directory,
                                                                  const std::string& name, int rate,
                                                                  nlohmann::json header,
                                                                  Counter& errors);

    ~SessionRecorder();  ///< finish()
    SessionRecorder(const SessionRecorder&) = delete;
    SessionRecorder& operator=(const SessionRecorder&) = delete;

    /// Audio worker: one block of each direction, the same length. Wait-free; when the writer
    /// falls behind by more than 4 s the block is dropped and counted.
    void push_audio(audio::Span<const float> customer, audio::Span<const float> agent) noexcept;

    /// io thread: one control message, `sent` by the lane or received from the server.
    void push_message(bool sent, const nlohmann::json& message);

    /// Writes what is queued, finalises both files and joins the writer. Idempotent.
    void finish();

    bool failed() const { return failed_.load(std::memory_order_acquire); }
    const std::string& wav_path() const { return wav_path_; }
    const std::string& jsonl_path() const { return jsonl_path_; }
    /// Stereo frames written to the WAV so far.
    std::uint64_t frames_written() const { return frames_.load(std::memory_order_relaxed); }
    /// Frames lost because the writer fell behind.
    std::uint64_t frames_dropped() const { return dropped_.load(std::memory_order_relaxed); }

private:
    SessionRecorder(audio::WavSink wav, std::ofstream jsonl, std::string wav_path,
                    std::string jsonl_path, Counter& errors);

    void run_writer();
    void write_pending(bool final);
    void stop_recording(const std::string& file, const std::string& why);

    const std::string wav_path_;
    const std::string jsonl_path_;
    Counter& errors_;
    const std::chrono::steady_clock::time_point started_;

    // Audio worker -> writer: interleaved stereo samples.
    audio::SpscRing<float> ring_;

    // io thread -> writer, under mutex_ (pairs with wake_).
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::string> lines_;
    bool finishing_ = false;

    // Writer thread only (then the finishing thread, after the join).
    std::optional<audio::WavSink> wav_;
    std::ofstream jsonl_;
    std::vector<float> block_;

    std::atomic<bool> failed_{false};
    std::atomic<std::uint64_t> frames_{0}, dropped_{0};
    std::thread writer_;
    bool finished_ = false;  // the finishing thread only
};

}  // namespace olympus::lane
