// Jitter buffer: reorder store, adaptive target depth, decode/FEC/PLC and fades; see
// jitter_buffer.hpp. push() on the network thread, everything else on the playout thread.
#include "olympus/audio/jitter_buffer.hpp"

#include <algorithm>
#include <string>

namespace olympus::audio {
namespace {

constexpr std::size_t kStoreSize = 64;     // power of two, > max_depth_frames
constexpr int kArrivalsPerLowering = 100;  // the target drops by one frame at most this often

std::int64_t to_ns(JitterBuffer::Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::int32_t distance(std::uint32_t from, std::uint32_t to) {
    return static_cast<std::int32_t>(to - from);
}

// Ramps `samples` linearly from 0 up to full level over the first `length` samples.
void fade_in(Span<float> samples, std::size_t length) {
    length = std::min(length, samples.size());
    for (std::size_t i = 0; i < length; ++i) {
        samples[i] *= static_cast<float>(i) / static_cast<float>(length);
    }
}

// Ramps from full level down to 0 over `length` samples, silence after.
void fade_out(Span<float> samples, std::size_t length) {
    length = std::min(length, samples.size());
    for (std::size_t i = 0; i < samples.size(); ++i) {
        samples[i] *=
            i < length ? 1.0f - static_cast<float>(i + 1) / static_cast<float>(length) : 0.0f;
    }
}

}  // namespace

Result<std::unique_ptr<JitterBuffer>> JitterBuffer::create(const JitterBufferConfig& config) {
    // The store must hold more than the deepest target, and a frame must fit a slot.
    const auto bad = [](const char* field, long value) {
        return Error{make_error_code(errc::invalid_argument),
                     std::string("jitter buffer ") + field + "=" + std::to_string(value)};
    };
    if (config.frame_ms != 10 && config.frame_ms != 20 && config.frame_ms != 40 &&
        config.frame_ms != 60) {
        return bad("frame_ms", config.frame_ms);
    }
    if (config.min_depth_frames < 1 || config.max_depth_frames < config.min_depth_frames ||
        config.max_depth_frames >= static_cast<int>(kStoreSize) / 2) {
        return bad("max_depth_frames", config.max_depth_frames);
    }
    if (config.queue_capacity < 2 || (config.queue_capacity & (config.queue_capacity - 1))) {
        return bad("queue_capacity", static_cast<long>(config.queue_capacity));
    }
    auto decoder = OpusDecoder::create(config.sample_rate);
    if (!decoder) {
        return Error{decoder.error().code, "jitter buffer: " + decoder.error().context};
    }
    return std::unique_ptr<JitterBuffer>(new JitterBuffer(config, std::move(decoder).value()));
}

JitterBuffer::JitterBuffer(const JitterBufferConfig& config, OpusDecoder decoder)
    : config_(config),
      frame_samples_(static_cast<std::size_t>(config.sample_rate * config.frame_ms / 1000)),
      frame_ns_(static_cast<std::int64_t>(config.frame_ms) * 1'000'000),
      fade_samples_(static_cast<std::size_t>(config.sample_rate * config.fade_ms / 1000)),
      queue_(config.queue_capacity),
      decoder_(std::move(decoder)),
      store_(kStoreSize),
      store_mask_(kStoreSize - 1) {
    set_target(
        std::clamp(config.initial_depth_frames, config.min_depth_frames, config.max_depth_frames));
}

bool JitterBuffer::push(std::uint32_t sequence, Span<const std::uint8_t> packet,
                        Clock::time_point arrival) noexcept {
    if (packet.size() > kMaxOpusPacketBytes) {
        return false;
    }
    // Fill the ring slot in place: the 1.3 kB frame is copied once, from the caller.
    auto free = queue_.write_regions(1);
    if (free.size() == 0) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    EncodedFrame& frame = free.first[0];
    frame.sequence = sequence;
    frame.size = static_cast<std::uint16_t>(packet.size());
    frame.timestamp_ns = to_ns(arrival);
    std::copy(packet.begin(), packet.end(), frame.bytes.begin());
    queue_.commit_write(1);
    packets_in_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void JitterBuffer::pull(Span<float> out, Clock::time_point now) noexcept {
    drain_queue();

    // Play when playing, or when enough is buffered to start; otherwise silence.
    if (state_ == State::buffering && !try_start(to_ns(now))) {
        std::fill(out.begin(), out.end(), 0.0f);
    } else {
        play_next(out);
    }
    frames_out_.fetch_add(1, std::memory_order_relaxed);
    depth_.store(held_, std::memory_order_relaxed);
}

void JitterBuffer::drain_queue() noexcept {
    for (auto queued = queue_.read_regions(1); queued.size() == 1;
         queue_.commit_read(1), queued = queue_.read_regions(1)) {
        measure_arrival(queued.first[0].sequence, queued.first[0].timestamp_ns);
        store(queued.first[0]);
    }
    trim_to_max_depth();
    if (held_ > peak_depth_.load(std::memory_order_relaxed)) {
        peak_depth_.store(held_, std::memory_order_relaxed);
    }
}

void JitterBuffer::store(const EncodedFrame& frame) noexcept {
    // Before the first playout the earliest packet sets where playback begins.
    if (!started_ && (held_ == 0 || distance(next_, frame.sequence) < 0)) {
        next_ = frame.sequence;
    }

    // A packet whose frame was already played or concealed is late: drop it and aim for a
    // deeper buffer.
    const std::int32_t ahead = distance(next_, frame.sequence);
    if (ahead < 0) {
        late_.fetch_add(1, std::memory_order_relaxed);
        set_target(target_.load(std::memory_order_relaxed) + 1);
        arrivals_since_lower_ = 0;
        return;
    }
    if (ahead >= static_cast<std::int32_t>(kStoreSize)) {
        // TODO: a sequence jump beyond the store (a new stream) should restart the buffer
        // instead of being dropped; until then such a sender must flush() first.
        depth_dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
    }

    // Keep it in its slot (a duplicate replaces the copy already there).
    Slot& s = slot(frame.sequence);
    if (!s.valid) {
        ++held_;
    }
    s.valid = true;
    s.frame = frame;
    if (held_ == 1 || distance(newest_, frame.sequence) > 0) {
        newest_ = frame.sequence;
    }
}

void JitterBuffer::trim_to_max_depth() noexcept {
    // TODO: time-compress instead (drop only silent frames); a dropped speech frame is
    // audible as a small skip.
    while (held_ > config_.max_depth_frames) {
        Slot& s = slot(next_);
        if (s.valid) {
            s.valid = false;
            --held_;
            depth_dropped_.fetch_add(1, std::memory_order_relaxed);
        }
        ++next_;
    }
}

void JitterBuffer::measure_arrival(std::uint32_t sequence, std::int64_t arrival_ns) noexcept {
    // Transit time up to a constant: arrival minus when the frame was due from the sender.
    if (!have_base_) {
        base_ = sequence;
        have_base_ = true;
    }
    const std::int64_t due_ns = static_cast<std::int64_t>(distance(base_, sequence)) * frame_ns_;
    transit_[transit_count_++ % transit_.size()] = arrival_ns - due_ns;

    // Jitter = 95th percentile of the recent transit times minus their minimum.
    const std::size_t n = std::min(transit_count_, transit_.size());
    std::array<std::int64_t, 64> sorted = transit_;
    std::sort(sorted.begin(), sorted.begin() + static_cast<long>(n));
    const std::int64_t spread = sorted[(n - 1) * 95 / 100] - sorted[0];
    jitter_ms_.store(static_cast<double>(spread) / 1e6, std::memory_order_relaxed);

    // Enough depth to cover that spread plus one frame; rise at once, fall slowly.
    const int wanted = static_cast<int>((spread + frame_ns_ - 1) / frame_ns_) + 1;
    const int target = target_.load(std::memory_order_relaxed);
    if (wanted > target) {
        set_target(wanted);
        arrivals_since_lower_ = 0;
    } else if (wanted < target && ++arrivals_since_lower_ >= kArrivalsPerLowering) {
        set_target(target - 1);
        arrivals_since_lower_ = 0;
    }
}

bool JitterBuffer::try_start(std::int64_t now_ns) noexcept {
    if (held_ == 0) {
        return false;
    }

    // Start at the oldest stored packet; anything between was covered by silence.
    std::uint32_t first = next_;
    while (!slot(first).valid) {
        ++first;
    }
    const int target = target_.load(std::memory_order_relaxed);
    const std::int64_t waited_ns = now_ns - slot(first).frame.timestamp_ns;
    if (held_ < target && waited_ns < target * frame_ns_) {
        return false;
    }
    if (started_) {
        resyncs_.fetch_add(1, std::memory_order_relaxed);
    }
    next_ = first;
    started_ = true;
    fade_in_ = true;
    state_ = State::playing;
    return true;
}

void JitterBuffer::play_next(Span<float> out) noexcept {
    Slot& current = slot(next_);
    if (current.valid) {
        // The frame is here: decode it, concealing a packet the decoder rejects.
        int samples = 0;
        const auto error = decoder_.decode(current.frame.payload(), out, samples);
        if (error || samples != static_cast<int>(out.size())) {
            corrupt_.fetch_add(1, std::memory_order_relaxed);
            plc_.fetch_add(1, std::memory_order_relaxed);
            (void)decoder_.conceal(out);
        } else {
            decoded_.fetch_add(1, std::memory_order_relaxed);
        }
        current.valid = false;
        --held_;
    } else if (held_ == 0) {
        // Nothing left at all: fade out instead of stopping dead. The faded frame is filler,
        // not a replacement: frame next_ is still played if it turns up (a resync).
        underrun(out);
        return;
    } else {
        // A gap with later frames queued: rebuild from the next packet's FEC when it has
        // some, else let the decoder extrapolate.
        Slot& following = slot(next_ + 1);
        if (following.valid && opus_packet_has_fec(following.frame.payload()) &&
            !decoder_.decode_fec(following.frame.payload(), out)) {
            fec_.fetch_add(1, std::memory_order_relaxed);
        } else {
            (void)decoder_.conceal(out);
            plc_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    ++next_;
    if (fade_in_) {
        fade_in(out, fade_samples_);
        fade_in_ = false;
    }
}

void JitterBuffer::underrun(Span<float> out) noexcept {
    if (decoder_.conceal(out)) {
        std::fill(out.begin(), out.end(), 0.0f);
    }
    fade_out(out, fade_samples_);
    underruns_.fetch_add(1, std::memory_order_relaxed);
    state_ = State::buffering;
}

void JitterBuffer::flush() noexcept {
    for (auto queued = queue_.read_regions(1); queued.size() == 1;
         queue_.commit_read(1), queued = queue_.read_regions(1)) {
        if (distance(newest_, queued.first[0].sequence) > 0) {
            newest_ = queued.first[0].sequence;
        }
    }
    for (Slot& s : store_) {
        s.valid = false;
    }
    // TODO: packets of the cancelled reply that are still in flight arrive after this and
    // are played; the voice session must stop pushing them (by reply id) after a barge-in.
    next_ = held_ > 0 || started_ ? newest_ + 1 : next_;
    held_ = 0;
    state_ = State::buffering;
    depth_.store(0, std::memory_order_relaxed);
}

void JitterBuffer::set_target(int frames) noexcept {
    target_.store(std::clamp(frames, config_.min_depth_frames, config_.max_depth_frames),
                  std::memory_order_relaxed);
}

JitterBufferStats JitterBuffer::stats() const noexcept {
    JitterBufferStats s;
    s.packets_in = packets_in_.load(std::memory_order_relaxed);
    s.queue_overflows = refused_.load(std::memory_order_relaxed);
    s.frames_out = frames_out_.load(std::memory_order_relaxed);
    s.frames_decoded = decoded_.load(std::memory_order_relaxed);
    s.concealed_fec = fec_.load(std::memory_order_relaxed);
    s.concealed_plc = plc_.load(std::memory_order_relaxed);
    s.corrupt = corrupt_.load(std::memory_order_relaxed);
    s.late_dropped = late_.load(std::memory_order_relaxed);
    s.depth_dropped = depth_dropped_.load(std::memory_order_relaxed);
    s.underruns = underruns_.load(std::memory_order_relaxed);
    s.resyncs = resyncs_.load(std::memory_order_relaxed);
    s.target_depth = target_.load(std::memory_order_relaxed);
    s.current_depth = depth_.load(std::memory_order_relaxed);
    s.peak_depth = peak_depth_.load(std::memory_order_relaxed);
    s.jitter_ms = jitter_ms_.load(std::memory_order_relaxed);
    return s;
}

}  // namespace olympus::audio
