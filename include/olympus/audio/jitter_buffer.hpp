// The receive side's jitter buffer: the network thread pushes Opus packets as they arrive (in
// order, but bursty and late over TCP); the playout clock pulls exactly one frame of PCM per
// frame period. Losses, late frames and corrupt packets are concealed (FEC, else PLC) and
// counted; underruns fade to silence.
//
//   network thread --push()--> [SPSC ring of EncodedFrame] --pull()--> reorder store
//        --> Opus decoder (decode / FEC / PLC, fades) --> one frame of PCM
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "olympus/audio/encoded_frame.hpp"
#include "olympus/audio/error.hpp"
#include "olympus/audio/opus_decoder.hpp"
#include "olympus/audio/span.hpp"
#include "olympus/audio/spsc_ring.hpp"

namespace olympus::audio {

struct JitterBufferConfig {
    int sample_rate = 48000;           ///< decoder output rate (an Opus rate)
    int frame_ms = 20;                 ///< duration of one packet and of one pull, ms
    int min_depth_frames = 2;          ///< target depth never goes below this
    int max_depth_frames = 25;         ///< target never above; more queued frames are dropped
    int initial_depth_frames = 3;      ///< target before any jitter was measured
    std::size_t queue_capacity = 256;  ///< packets in flight between network and playout
    int fade_ms = 5;                   ///< fade length for underruns and restarts
};

/// A snapshot of the counters; plain fields.
struct JitterBufferStats {
    std::uint64_t packets_in = 0;       ///< packets accepted by push()
    std::uint64_t queue_overflows = 0;  ///< packets push() refused (queue full)
    std::uint64_t frames_out = 0;       ///< frames pull() produced (any kind)
    std::uint64_t frames_decoded = 0;   ///< frames decoded from their own packet
    std::uint64_t concealed_fec = 0;    ///< lost frames rebuilt from the next packet's FEC
    std::uint64_t concealed_plc = 0;    ///< lost or corrupt frames filled by PLC (not underruns)
    std::uint64_t corrupt = 0;          ///< packets the decoder rejected (also in concealed_plc)
    std::uint64_t late_dropped = 0;     ///< packets that arrived after their playout time
    std::uint64_t depth_dropped = 0;    ///< packets dropped because the queue exceeded the max
    std::uint64_t underruns = 0;        ///< times the buffer ran dry and faded to silence; the
                                        ///< faded frame is inserted, no frame is lost
    std::uint64_t resyncs = 0;          ///< restarts after an underrun
    int target_depth = 0;               ///< frames the buffer aims to hold
    int current_depth = 0;              ///< frames held now
    int peak_depth = 0;                 ///< the most frames held so far
    double jitter_ms = 0;               ///< measured arrival jitter (95th percentile spread)
};

/// Threads: push() from the network thread only; pull() and flush() from the playout thread
/// only; stats() from any thread.
class JitterBuffer {
public:
    using Clock = std::chrono::steady_clock;

    /// Validates `config` and creates the decoder; all memory is allocated here.
    static Result<std::unique_ptr<JitterBuffer>> create(const JitterBufferConfig& config);

    /// Network thread. Queues one packet. `sequence` counts frames (+1 per frame period) and
    /// may wrap. False when the queue is full (counted). Does not allocate or lock.
    bool push(std::uint32_t sequence, Span<const std::uint8_t> packet,
              Clock::time_point arrival = Clock::now()) noexcept;

    /// Playout thread, once per frame period. Fills `out` (frame_samples() long) with the next
    /// frame: decoded, concealed, faded or silence. Never blocks. `now` is the playout clock;
    /// while buffering, packets that waited longer than the target depth start playback even
    /// if fewer than the target are queued (the end of a reply).
    void pull(Span<float> out, Clock::time_point now = Clock::now()) noexcept;

    /// Playout thread. Drops every queued packet and goes back to buffering (barge-in).
    void flush() noexcept;

    /// Any thread.
    JitterBufferStats stats() const noexcept;

    std::size_t frame_samples() const noexcept { return frame_samples_; }

private:
    enum class State { buffering, playing };

    // One stored packet, by sequence number modulo the store size.
    struct Slot {
        bool valid = false;
        EncodedFrame frame;
    };

    JitterBuffer(const JitterBufferConfig& config, OpusDecoder decoder);

    void drain_queue() noexcept;
    void store(const EncodedFrame& frame) noexcept;
    void trim_to_max_depth() noexcept;
    void measure_arrival(std::uint32_t sequence, std::int64_t arrival_ns) noexcept;
    bool try_start(std::int64_t now_ns) noexcept;
    void play_next(Span<float> out) noexcept;
    void underrun(Span<float> out) noexcept;
    void set_target(int frames) noexcept;
    Slot& slot(std::uint32_t sequence) noexcept { return store_[sequence & store_mask_]; }

    // Set at construction.
    const JitterBufferConfig config_;
    const std::size_t frame_samples_;
    const std::int64_t frame_ns_;
    const std::size_t fade_samples_;

    // Network thread -> playout thread.
    SpscRing<EncodedFrame> queue_;

    // Playout thread only.
    OpusDecoder decoder_;
    std::vector<Slot> store_;
    std::uint32_t store_mask_ = 0;
    State state_ = State::buffering;
    bool started_ = false;      // played at least once
    std::uint32_t next_ = 0;    // sequence of the next frame to play
    std::uint32_t newest_ = 0;  // highest sequence stored
    std::uint32_t base_ = 0;    // first sequence ever seen, for the transit times
    bool have_base_ = false;
    int arrivals_since_lower_ = 0;            // arrivals since the target was last lowered
    int held_ = 0;                            // valid slots in store_
    bool fade_in_ = false;                    // next decoded frame starts with a fade-in
    std::array<std::int64_t, 64> transit_{};  // arrival - sequence * frame, ns
    std::size_t transit_count_ = 0;

    // Written by the playout thread (relaxed), read by stats() on any thread.
    std::atomic<std::uint64_t> frames_out_{0}, decoded_{0}, fec_{0}, plc_{0}, corrupt_{0}, late_{0},
        depth_dropped_{0}, underruns_{0}, resyncs_{0};
    std::atomic<int> target_{0}, depth_{0}, peak_depth_{0};
    std::atomic<double> jitter_ms_{0};

    // Written by the network thread (relaxed).
    std::atomic<std::uint64_t> packets_in_{0}, refused_{0};
};

}  // namespace olympus::audio
