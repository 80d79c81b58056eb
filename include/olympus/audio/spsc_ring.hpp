// A bounded lock-free ring for exactly one producer thread and one consumer thread. It carries
// PCM between the audio callback and the codec threads, and encoded frames between the encoder
// and the network thread. Push and pop never allocate, lock or make a system call.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "olympus/audio/span.hpp"

namespace olympus::audio {

/// What try_push does when the ring is full. Either way the lost elements are counted in
/// overflows().
enum class OverflowPolicy {
    /// The new element is refused. Wait-free on both sides; any element type.
    drop_newest,
    /// The oldest queued element is discarded to make room, so the ring always holds the most
    /// recent data (keeps capture latency bounded when the consumer stalls). Trivially copyable
    /// elements only, single-element pops only. The producer stays wait-free; a pop retries
    /// when the producer evicted the element it was reading, so the consumer is lock-free.
    /// While the consumer is preempted in the middle of copying an element, the producer
    /// cannot reuse that element's slot and drops new elements instead (counted) until the
    /// consumer resumes.
    overwrite_oldest,
};

/// Size of the cache line that the indices are spread over (x86-64 and most ARM64).
inline constexpr std::size_t kCacheLine = 64;

/// Single-producer single-consumer ring of at most `capacity` elements (a power of two).
///
/// Threads: the producer thread calls try_push/try_emplace/try_push_bulk/write_regions/
/// commit_write; the consumer thread calls try_pop/try_pop_bulk/read_regions/commit_read;
/// size(), overflows(), peak_fill() and capacity() may be called from any thread.
template <typename T, OverflowPolicy Policy = OverflowPolicy::drop_newest>
class SpscRing {
    static_assert(Policy == OverflowPolicy::drop_newest || std::is_trivially_copyable_v<T>,
                  "overwrite_oldest needs trivially copyable elements");

public:
    /// Two spans that together cover a contiguous run of ring positions (the second is
    /// non-empty only when the run wraps around the end of the storage).
    struct Regions {
        Span<T> first;
        Span<T> second;
        std::size_t size() const noexcept { return first.size() + second.size(); }
    };

    /// Throws std::invalid_argument unless `capacity` is a power of two >= 2 (setup error).
    explicit SpscRing(std::size_t capacity) : capacity_(capacity), mask_(capacity - 1) {
        if (capacity < 2 || (capacity & mask_) != 0) {
            throw std::invalid_argument("SpscRing capacity must be a power of two >= 2, got " +
                                        std::to_string(capacity));
        }
        slots_ = std::allocator<T>().allocate(capacity_);
    }

    ~SpscRing() {
        // Elements still queued are destroyed here; both threads must have stopped.
        const std::size_t tail = tail_.load(std::memory_order_acquire);
        for (std::size_t i = head_.load(std::memory_order_acquire); i != tail; ++i) {
            slots_[i & mask_].~T();
        }
        std::allocator<T>().deallocate(slots_, capacity_);
    }

    SpscRing(const SpscRing&) = delete;
    SpscRing& operator=(const SpscRing&) = delete;

    // ---- producer thread ----

    template <typename... Args>
    [[nodiscard]] bool try_emplace(Args&&... args) noexcept(
        std::is_nothrow_constructible_v<T, Args&&...>) {
        const std::size_t tail = tail_.load(std::memory_order_relaxed);
        if (!make_room(tail)) {
            return false;
        }
        new (&slots_[tail & mask_]) T(std::forward<Args>(args)...);
        publish(tail + 1);
        return true;
    }

    [[nodiscard]] bool try_push(const T& value) noexcept(std::is_nothrow_copy_constructible_v<T>) {
        return try_emplace(value);
    }

    [[nodiscard]] bool try_push(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>) {
        return try_emplace(std::move(value));
    }

    /// Copies as many of `values` as fit; returns how many were queued. The rest are counted
    /// as overflows.
    [[nodiscard]] std::size_t try_push_bulk(Span<const T> values) noexcept {
        static_assert(std::is_trivially_copyable_v<T>, "bulk copies need trivially copyable T");
        static_assert(Policy == OverflowPolicy::drop_newest, "bulk push needs drop_newest");
        Regions free = write_regions(values.size());
        copy_into(free, values.data());
        commit_write(free.size());
        const std::size_t refused = values.size() - free.size();
        if (refused != 0) {
            overflows_.fetch_add(refused, std::memory_order_relaxed);
        }
        return free.size();
    }

    /// The free slots, up to `max`, as two spans to fill in place; then commit_write(n).
    Regions write_regions(std::size_t max) noexcept {
        static_assert(std::is_trivially_copyable_v<T>, "regions need trivially copyable T");
        static_assert(Policy == OverflowPolicy::drop_newest, "regions need drop_newest");
        const std::size_t tail = tail_.load(std::memory_order_relaxed);
        std::size_t free = capacity_ - (tail - cached_head_);
        if (free < max) {
            cached_head_ = head_.load(std::memory_order_acquire);
            free = capacity_ - (tail - cached_head_);
        }
        return regions_at(tail, free < max ? free : max);
    }

    /// Publishes the first `count` slots handed out by write_regions().
    void commit_write(std::size_t count) noexcept {
        publish(tail_.load(std::memory_order_relaxed) + count);
    }

    // ---- consumer thread ----

    /// Moves the oldest element into `out`; false when the ring is empty.
    [[nodiscard]] bool try_pop(T& out) noexcept(std::is_nothrow_move_assignable_v<T>) {
        if constexpr (Policy == OverflowPolicy::drop_newest) {
            const std::size_t head = head_.load(std::memory_order_relaxed);
            if (head == cached_tail_) {
                cached_tail_ = tail_.load(std::memory_order_acquire);
                if (head == cached_tail_) {
                    return false;
                }
            }
            T* slot = &slots_[head & mask_];
            out = std::move(*slot);
            slot->~T();
            head_.store(head + 1, std::memory_order_release);
            return true;
        } else {
            return pop_racing_producer(out);
        }
    }

    /// Copies up to out.size() of the oldest elements into `out`; returns how many.
    [[nodiscard]] std::size_t try_pop_bulk(Span<T> out) noexcept {
        static_assert(std::is_trivially_copyable_v<T>, "bulk copies need trivially copyable T");
        Regions queued = read_regions(out.size());
        std::memcpy(out.data(), queued.first.data(), queued.first.size() * sizeof(T));
        std::memcpy(out.data() + queued.first.size(), queued.second.data(),
                    queued.second.size() * sizeof(T));
        commit_read(queued.size());
        return queued.size();
    }

    /// The queued elements, up to `max`, as two spans to read in place; then commit_read(n).
    Regions read_regions(std::size_t max) noexcept {
        static_assert(std::is_trivially_copyable_v<T>, "regions need trivially copyable T");
        static_assert(Policy == OverflowPolicy::drop_newest, "regions need drop_newest");
        const std::size_t head = head_.load(std::memory_order_relaxed);
        std::size_t queued = cached_tail_ - head;
        if (queued < max) {
            cached_tail_ = tail_.load(std::memory_order_acquire);
            queued = cached_tail_ - head;
        }
        return regions_at(head, queued < max ? queued : max);
    }

    /// Releases the first `count` elements handed out by read_regions().
    void commit_read(std::size_t count) noexcept {
        head_.store(head_.load(std::memory_order_relaxed) + count, std::memory_order_release);
    }

    // ---- any thread ----

    std::size_t capacity() const noexcept { return capacity_; }

    /// Elements queued now (exact when called from either side, approximate elsewhere).
    std::size_t size() const noexcept {
        const std::size_t head = head_.load(std::memory_order_acquire);
        const std::size_t tail = tail_.load(std::memory_order_acquire);
        return tail >= head ? tail - head : 0;
    }

    /// Elements lost to the overflow policy since construction.
    std::size_t overflows() const noexcept { return overflows_.load(std::memory_order_relaxed); }

    /// The highest fill the producer has seen since construction. The producer measures it
    /// against its cached read index, so it may overstate the true peak, never understate it.
    std::size_t peak_fill() const noexcept { return peak_fill_.load(std::memory_order_relaxed); }

private:
    static constexpr std::size_t kNotReading = std::numeric_limits<std::size_t>::max();

    // True when slot `tail` may be written, applying the overflow policy when it may not.
    bool make_room(std::size_t tail) noexcept {
        if constexpr (Policy == OverflowPolicy::drop_newest) {
            if (tail - cached_head_ == capacity_) {
                cached_head_ = head_.load(std::memory_order_acquire);
                if (tail - cached_head_ == capacity_) {
                    overflows_.fetch_add(1, std::memory_order_relaxed);
                    return false;
                }
            }
            return true;
        } else {
            // Evict the oldest element by advancing head past it, unless the consumer got
            // there first.
            std::size_t head = head_.load(std::memory_order_seq_cst);
            if (tail - head == capacity_ &&
                head_.compare_exchange_strong(head, head + 1, std::memory_order_seq_cst)) {
                overflows_.fetch_add(1, std::memory_order_relaxed);
                ++head;
            }
            cached_head_ = head;

            // The slot for `tail` last held element tail - capacity; if the consumer is still
            // copying that one out, the new element has to be dropped instead.
            // TODO: skip the busy slot (e.g. with a per-slot valid flag) so that a consumer
            // preempted mid-copy does not make the producer drop every new element until it
            // resumes.
            if (tail >= capacity_ && reading_.load(std::memory_order_seq_cst) == tail - capacity_) {
                overflows_.fetch_add(1, std::memory_order_relaxed);
                return false;
            }
            return true;
        }
    }

    void publish(std::size_t new_tail) noexcept {
        tail_.store(new_tail, std::memory_order_release);
        const std::size_t fill = new_tail - cached_head_;
        if (fill > peak_fill_.load(std::memory_order_relaxed)) {
            peak_fill_.store(fill, std::memory_order_relaxed);
        }
    }

    // overwrite_oldest pop: announce which element is being read, check it was not evicted in
    // the meantime, copy it, then claim it; retry when the producer evicted it first.
    bool pop_racing_producer(T& out) noexcept {
        for (;;) {
            std::size_t head = head_.load(std::memory_order_seq_cst);
            if (head == tail_.load(std::memory_order_acquire)) {
                reading_.store(kNotReading, std::memory_order_release);
                return false;
            }
            reading_.store(head, std::memory_order_seq_cst);
            if (head_.load(std::memory_order_seq_cst) != head) {
                continue;
            }
            out = slots_[head & mask_];
            if (head_.compare_exchange_strong(head, head + 1, std::memory_order_seq_cst)) {
                reading_.store(kNotReading, std::memory_order_release);
                return true;
            }
        }
    }

    Regions regions_at(std::size_t index, std::size_t count) const noexcept {
        const std::size_t start = index & mask_;
        const std::size_t first = count < capacity_ - start ? count : capacity_ - start;
        return Regions{Span<T>(slots_ + start, first), Span<T>(slots_, count - first)};
    }

    static void copy_into(const Regions& dst, const T* src) noexcept {
        std::memcpy(dst.first.data(), src, dst.first.size() * sizeof(T));
        std::memcpy(dst.second.data(), src + dst.first.size(), dst.second.size() * sizeof(T));
    }

    // Set once at construction, read by both threads.
    const std::size_t capacity_;
    const std::size_t mask_;
    T* slots_ = nullptr;

    // Consumer's cache line: the read index (written by the consumer; also by the producer
    // when it evicts under overwrite_oldest), the element being read, and the consumer's
    // private copy of the write index.
    alignas(kCacheLine) std::atomic<std::size_t> head_{0};
    std::atomic<std::size_t> reading_{kNotReading};
    std::size_t cached_tail_ = 0;

    // Producer's cache line: the write index, its private copy of the read index and the
    // counters it bumps (read from any thread, relaxed).
    alignas(kCacheLine) std::atomic<std::size_t> tail_{0};
    std::size_t cached_head_ = 0;
    std::atomic<std::size_t> overflows_{0};
    std::atomic<std::size_t> peak_fill_{0};

    // Keeps the next object off the producer's line.
    alignas(kCacheLine) char pad_[1] = {};
};

}  // namespace olympus::audio
