// The metrics a drive-thru lane exports, by name, in one place: what the lane agent bumps and
// what an operator graphs and alerts on. Registered at setup; updates are relaxed atomics, safe
// from the capture worker, the playout thread and the network thread.
#pragma once

#include <atomic>
#include <string>

#include "olympus/audio/voice_processor.hpp"
#include "olympus/lane/metrics_registry.hpp"

namespace olympus::lane {

/// Threads: construct on the setup thread; every member may then be updated from any thread
/// (including the audio callback: inc/set are wait-free); health_line() on any thread.
class LaneMetrics {
public:
    /// Registers every lane metric in `registry`, each labelled with `labels` (e.g. the lane id).
    LaneMetrics(MetricsRegistry& registry, const Labels& labels);

    /// Copies the capture-path processor's figures into their gauges. Capture worker, e.g. once
    /// a second; wait-free.
    void publish(const audio::VoiceProcessorStats& stats) noexcept;

    /// One line for the log every minute: the state of the lane at a glance.
    std::string health_line() const;

    /// The lane agent's state, one of kStates: its gauge of olympus_lane_state{state=...} is 1,
    /// the others 0. Any thread.
    void set_state(const std::string& state) noexcept;
    static constexpr const char* kStates[] = {"warming", "waiting",     "in_session",
                                              "ending",  "device_lost", "stopped"};

    // Network thread.
    Gauge& connected;     ///< 1 while the voice connection is up
    Counter& reconnects;  ///< reconnect attempts
    // Session logic.
    Counter& sessions_started;   ///< customer arrivals that started a session
    Counter& sessions_ended;     ///< sessions ended (session_ended or silence timeout)
    Gauge& session_active;       ///< 1 during a session
    Gauge& time_to_first_audio;  ///< seconds from session start to the first reply audio
    // Audio threads.
    Counter& capture_frames;      ///< microphone frames processed (watchdog progress too)
    Counter& capture_dropped;     ///< microphone frames lost (ring overflow)
    Counter& playback_dropped;    ///< reply frames lost before the speaker
    Counter& playback_underruns;  ///< the speaker ran dry mid-reply
    Counter& device_errors;       ///< device open failures and losses (unplugged, busy)
    // Capture-path processing (publish()).
    Gauge& erle_db;             ///< echo return loss enhancement, dB
    Gauge& echo_delay_ms;       ///< the canceller's delay estimate, ms
    Gauge& speech_probability;  ///< noise suppressor's speech probability of the last frame
    Gauge& voice;               ///< VAD decision of the last frame, 0 or 1
    Gauge& far_end_dropped;     ///< speaker samples the canceller never saw
    // Lane agent.
    Gauge& device_up;           ///< 1 while the microphone and speaker run
    Gauge& stream_warm;         ///< 1 while sessions ride a warm voice stream connection
    Counter& token_errors;      ///< no usable token (missing, not a JWT, rejected)
    Counter& recording_errors;  ///< recordings cut short (disk full, unwritable directory)
    Counter& triggers_ignored;  ///< arrivals that could not start a session (busy, no device)

private:
    Gauge* states_[sizeof(kStates) / sizeof(kStates[0])];
    std::atomic<int> state_index_{0};
};

}  // namespace olympus::lane
