// The drive-thru lane agent: one unattended lane from start-up to SIGTERM. It keeps the voice
// stream warm, starts a session when a car arrives (the driver's voice at the post, a line on
// standard input, POST /trigger from a loop detector), ends it on session_ended, after the
// silence timeout or at the session limit, and waits for the next car. Underneath, the devices
// are reopened when they fail and the voice stream reconnects; both are visible on /metrics.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "olympus/connection.hpp"
#include "olympus/lane/lane_audio.hpp"
#include "olympus/lane/lane_config.hpp"
#include "olympus/lane/lane_metrics.hpp"
#include "olympus/lane/post_devices.hpp"

namespace olympus::lane {

/// The lane's state machine; see the diagram in lane_agent.cpp.
enum class LaneState { warming, waiting, in_session, ending, device_lost, stopped };
const char* to_string(LaneState state);

/// What became of a trigger.
enum class TriggerResult {
    accepted,   ///< a session starts
    busy,       ///< a session is already on (or ending)
    not_ready,  ///< the lane is still warming up (devices or voice stream not ready)
    no_device,  ///< the microphone or speaker is lost
    stopping,   ///< the agent is shutting down
};
const char* to_string(TriggerResult result);

struct LaneAgentOptions {
    LaneConfig config;
    /// The post's sound hardware; null: PortAudioPost on config.devices.
    std::unique_ptr<PostDevices> devices;
    int rate = 16000;   ///< microphone, speaker and uplink rate, Hz
    int frame_ms = 20;  ///< uplink frame
    /// The voice link's heartbeat and timeouts (defaults: the protocol's).
    HeartbeatOptions heartbeat;
    std::chrono::milliseconds start_timeout{10'000};  ///< start_session to session_started
    std::chrono::milliseconds end_timeout{2'000};     ///< end_session to session_ended
    std::chrono::milliseconds close_within{2'000};    ///< bounded device close
    /// Called on the agent's thread after every state change (systemd status line). Must not
    /// block.
    std::function<void(LaneState state, const std::string& detail)> on_state;
};

/// Threads: the constructor, start(), stop() and the destructor on the owner's thread;
/// trigger() and the getters on any thread (the HTTP server thread, a stdin reader, the audio
/// worker). The state machine runs on the agent's own thread; the voice stream and sessions
/// run on one shared io thread; the audio pipeline on its own threads (LaneAudio).
///
///   audio worker ──voice──┐
///   stdin reader ──line───┼─► trigger() ─► [agent thread: state machine] ─► VoiceSession
///   HTTP thread ─POST─────┘                      ▲      ▲
///   io thread: voice stream state, session events┘      └ device thread: device up / lost
class LaneAgent {
public:
    /// Registers the lane's metrics in `registry` (which must outlive the agent). Throws
    /// std::invalid_argument for options the voice client refuses.
    LaneAgent(LaneAgentOptions options, MetricsRegistry& registry);
    ~LaneAgent();  ///< stop()
    LaneAgent(const LaneAgent&) = delete;
    LaneAgent& operator=(const LaneAgent&) = delete;

    /// Starts the audio pipeline, the voice stream and the state machine.
    void start();
    /// Ends a running session (end_session "cancelled"), finishes its recording, closes the
    /// voice stream and the devices. Bounded; idempotent.
    void stop();

    /// A car arrived, says `source` ("stdin", "http", "voice"). Any thread.
    TriggerResult trigger(const std::string& source);

    LaneState state() const;
    /// Blocks until the state is `state` or `timeout` passes; true on `state`.
    bool wait_for(LaneState state, std::chrono::milliseconds timeout) const;

    LaneMetrics& metrics();
    /// Advances while the audio pipeline makes progress (the watchdog's "audio_pipeline").
    std::uint64_t audio_progress() const;
    /// Advances while the network thread runs its timers (the watchdog's "network").
    std::uint64_t network_progress() const;
    /// The WAV file of the last finished session's recording ("" without one).
    std::string last_recording() const;

    class Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace olympus::lane
