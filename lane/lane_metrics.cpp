// Registration of the lane metrics and the minute health line; see lane_metrics.hpp.
#include "olympus/lane/lane_metrics.hpp"

#include <cmath>
#include <cstdio>
#include <iterator>

namespace olympus::lane {

LaneMetrics::LaneMetrics(MetricsRegistry& r, const Labels& l)
    : connected(r.gauge("olympus_lane_connected", "1 while the voice connection is up", l)),
      reconnects(
          r.counter("olympus_lane_reconnects_total", "Voice connection reconnect attempts", l)),
      sessions_started(r.counter("olympus_lane_sessions_started_total",
                                 "Customer arrivals that started a session", l)),
      sessions_ended(r.counter("olympus_lane_sessions_ended_total",
                               "Sessions ended by the server or the silence timeout", l)),
      session_active(r.gauge("olympus_lane_session_active", "1 while a session runs", l)),
      time_to_first_audio(r.gauge("olympus_lane_time_to_first_audio_seconds",
                                  "Last session: seconds from start to the first reply audio", l)),
      capture_frames(r.counter("olympus_lane_capture_frames_total",
                               "Microphone frames processed (10 ms each)", l)),
      capture_dropped(r.counter("olympus_lane_capture_frames_dropped_total",
                                "Microphone frames lost to a full ring", l)),
      playback_dropped(r.counter("olympus_lane_playback_frames_dropped_total",
                                 "Reply frames lost before reaching the speaker", l)),
      playback_underruns(r.counter("olympus_lane_playback_underruns_total",
                                   "Times the speaker ran dry in the middle of a reply", l)),
      device_errors(r.counter("olympus_lane_device_errors_total",
                              "Audio device failures: open refused, unplugged, busy", l)),
      erle_db(r.gauge("olympus_lane_echo_erle_db",
                      "Echo return loss enhancement of the canceller, dB (NaN: not measured)", l)),
      echo_delay_ms(r.gauge("olympus_lane_echo_delay_estimate_ms",
                            "The canceller's own delay estimate, ms; shifts when delay_ms is off",
                            l)),
      speech_probability(r.gauge("olympus_lane_speech_probability",
                                 "Speech probability of the last microphone frame", l)),
      voice(r.gauge("olympus_lane_voice_detected", "VAD decision of the last frame (0 or 1)", l)),
      far_end_dropped(r.gauge("olympus_lane_echo_reference_dropped_samples",
                              "Speaker samples the echo canceller never received", l)),
      device_up(r.gauge("olympus_lane_device_up", "1 while the microphone and speaker run", l)),
      stream_warm(r.gauge("olympus_lane_voice_stream_warm",
                          "1 while sessions ride a warm voice stream connection", l)),
      token_errors(r.counter("olympus_lane_token_errors_total",
                             "Times no usable access token was found (missing, garbage, rejected)",
                             l)),
      recording_errors(r.counter("olympus_lane_recording_errors_total",
                                 "Recordings cut short: disk full or directory unwritable", l)),
      triggers_ignored(r.counter("olympus_lane_triggers_ignored_total",
                                 "Arrivals that could not start a session (busy, no device)", l)) {
    for (std::size_t i = 0; i < std::size(kStates); ++i) {
        Labels labels = l;
        labels["state"] = kStates[i];
        states_[i] = &r.gauge("olympus_lane_state", "1 for the lane agent's current state", labels);
    }
    states_[0]->set(1);
    erle_db.set(std::nan(""));
    echo_delay_ms.set(std::nan(""));
    speech_probability.set(std::nan(""));
}

void LaneMetrics::publish(const audio::VoiceProcessorStats& stats) noexcept {
    erle_db.set(double{stats.erle_db});
    echo_delay_ms.set(stats.delay_median_ms < 0 ? std::nan("")
                                                : static_cast<double>(stats.delay_median_ms));
    speech_probability.set(double{stats.speech_probability});
    voice.set(stats.voice ? 1.0 : 0.0);
    far_end_dropped.set(static_cast<double>(stats.far_end_dropped));
}

void LaneMetrics::set_state(const std::string& state) noexcept {
    for (std::size_t i = 0; i < std::size(kStates); ++i) {
        const bool now = state == kStates[i];
        states_[i]->set(now ? 1.0 : 0.0);
        if (now) {
            state_index_.store(static_cast<int>(i), std::memory_order_relaxed);
        }
    }
}

std::string LaneMetrics::health_line() const {
    char line[400];
    std::snprintf(
        line, sizeof line,
        "health state=%s connected=%d sessions=%llu active=%d ttfa_s=%.2f "
        "reconnects=%llu capture_frames=%llu capture_dropped=%llu playback_dropped=%llu "
        "underruns=%llu device_up=%d device_errors=%llu erle_db=%.0f",
        kStates[state_index_.load(std::memory_order_relaxed)], connected.value() > 0 ? 1 : 0,
        static_cast<unsigned long long>(sessions_started.value()),
        session_active.value() > 0 ? 1 : 0, time_to_first_audio.value(),
        static_cast<unsigned long long>(reconnects.value()),
        static_cast<unsigned long long>(capture_frames.value()),
        static_cast<unsigned long long>(capture_dropped.value()),
        static_cast<unsigned long long>(playback_dropped.value()),
        static_cast<unsigned long long>(playback_underruns.value()), device_up.value() > 0 ? 1 : 0,
        static_cast<unsigned long long>(device_errors.value()), erle_db.value());
    return line;
}

}  // namespace olympus::lane
