// Throughput of the SPSC ring against boost::lockfree::spsc_queue, measured in the same run:
// one producer and one consumer thread moving single values and 20 ms blocks of samples.
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/lockfree/spsc_queue.hpp>

#include "olympus/audio/spsc_ring.hpp"

namespace {

constexpr std::size_t kCapacity = 4096;
constexpr std::uint64_t kItems = 1 << 20;

// Moves kItems values through `push`/`pop` on two threads, once per benchmark iteration.
template <typename Push, typename Pop>
void run_pair(benchmark::State& state, Push push, Pop pop) {
    for (auto _ : state) {
        std::thread consumer([&] {
            std::uint64_t received = 0, sum = 0, value = 0;
            while (received < kItems) {
                if (pop(value)) {
                    sum += value;
                    ++received;
                }
            }
            benchmark::DoNotOptimize(sum);
        });
        for (std::uint64_t i = 0; i < kItems;) {
            if (push(i)) {
                ++i;
            }
        }
        consumer.join();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kItems));
}

void BM_OlympusRing_Single(benchmark::State& state) {
    olympus::audio::SpscRing<std::uint64_t> ring(kCapacity);
    run_pair(
        state, [&](std::uint64_t v) { return ring.try_push(v); },
        [&](std::uint64_t& v) { return ring.try_pop(v); });
}

void BM_BoostSpscQueue_Single(benchmark::State& state) {
    boost::lockfree::spsc_queue<std::uint64_t, boost::lockfree::capacity<kCapacity>> queue;
    run_pair(
        state, [&](std::uint64_t v) { return queue.push(v); },
        [&](std::uint64_t& v) { return queue.pop(v); });
}

// 20 ms of 48 kHz samples per push and pop, as between an audio callback and the encoder.
constexpr std::size_t kBlock = 960;
constexpr std::size_t kBlocks = 4096;

template <typename PushBlock, typename PopBlock>
void run_blocks(benchmark::State& state, PushBlock push_block, PopBlock pop_block) {
    std::vector<float> in(kBlock, 0.25f);
    for (auto _ : state) {
        std::thread consumer([&] {
            std::vector<float> out(kBlock);
            std::size_t received = 0;
            while (received < kBlock * kBlocks) {
                received += pop_block(out.data(), kBlock);
            }
            benchmark::DoNotOptimize(out.data());
        });
        for (std::size_t sent = 0; sent < kBlock * kBlocks;) {
            sent += push_block(in.data(), kBlock);
        }
        consumer.join();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBlock * kBlocks));
}

void BM_OlympusRing_Block960(benchmark::State& state) {
    olympus::audio::SpscRing<float> ring(kCapacity * 4);
    run_blocks(
        state,
        [&](const float* p, std::size_t n) {
            return ring.try_push_bulk(olympus::audio::Span<const float>(p, n));
        },
        [&](float* p, std::size_t n) {
            return ring.try_pop_bulk(olympus::audio::Span<float>(p, n));
        });
}

void BM_BoostSpscQueue_Block960(benchmark::State& state) {
    boost::lockfree::spsc_queue<float, boost::lockfree::capacity<kCapacity * 4>> queue;
    run_blocks(
        state, [&](const float* p, std::size_t n) { return queue.push(p, n); },
        [&](float* p, std::size_t n) { return queue.pop(p, n); });
}

// One thread fills and drains the ring: the cost per operation without any scheduling noise
// (the two-thread figures depend heavily on what else the cores run).
template <typename Push, typename Pop>
void run_same_thread(benchmark::State& state, Push push, Pop pop) {
    std::uint64_t sum = 0, value = 0;
    for (auto _ : state) {
        for (std::uint64_t i = 0; i < 1024; ++i) {
            benchmark::DoNotOptimize(push(i));
        }
        for (std::uint64_t i = 0; i < 1024; ++i) {
            benchmark::DoNotOptimize(pop(value));
            sum += value;
        }
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 1024));
}

void BM_OlympusRing_SameThread(benchmark::State& state) {
    olympus::audio::SpscRing<std::uint64_t> ring(kCapacity);
    run_same_thread(
        state, [&](std::uint64_t v) { return ring.try_push(v); },
        [&](std::uint64_t& v) { return ring.try_pop(v); });
}

void BM_BoostSpscQueue_SameThread(benchmark::State& state) {
    boost::lockfree::spsc_queue<std::uint64_t, boost::lockfree::capacity<kCapacity>> queue;
    run_same_thread(
        state, [&](std::uint64_t v) { return queue.push(v); },
        [&](std::uint64_t& v) { return queue.pop(v); });
}

}  // namespace

BENCHMARK(BM_OlympusRing_SameThread);
BENCHMARK(BM_BoostSpscQueue_SameThread);
BENCHMARK(BM_OlympusRing_Single)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostSpscQueue_Single)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OlympusRing_Block960)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostSpscQueue_Block960)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
