// Opus cost per 20 ms frame at 16 and 48 kHz, and the pipeline's cost on top of raw libopus
// when encoding a 60 s speech file (file read, downmix, resample, encoder wrapper, ring to a
// network-side consumer thread).
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <opus.h>

#include "olympus/audio/file_source.hpp"
#include "olympus/audio/opus_decoder.hpp"
#include "olympus/audio/opus_encoder.hpp"
#include "olympus/audio/spsc_ring.hpp"

#include "bench_audio.hpp"

namespace {

using namespace olympus::audio;
// opus.h declares global OpusEncoder/OpusDecoder too; these names mean the wrappers.
using olympus::audio::OpusDecoder;
using olympus::audio::OpusEncoder;

EncoderConfig pipeline_config(int rate) {
    EncoderConfig config;
    config.sample_rate = rate;
    config.bitrate = 24000;
    config.complexity = 5;
    return config;
}

void BM_Encode20ms(benchmark::State& state) {
    const int rate = static_cast<int>(state.range(0));
    const auto speech = bench::speech_samples(rate);
    auto encoder = OpusEncoder::create(pipeline_config(rate));
    const auto frame = static_cast<std::size_t>(encoder.value().frame_samples());
    EncodedFrame packet;
    std::size_t offset = 0;
    for (auto _ : state) {
        if (offset + frame > speech.size()) {
            offset = 0;
        }
        (void)encoder.value().encode(Span<const float>(&speech[offset], frame), packet);
        benchmark::DoNotOptimize(packet.size);
        offset += frame;
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_Decode20ms(benchmark::State& state) {
    // Encode the minute once, then time decoding its packets.
    const int rate = static_cast<int>(state.range(0));
    const auto speech = bench::speech_samples(rate);
    auto encoder = OpusEncoder::create(pipeline_config(rate));
    const auto frame = static_cast<std::size_t>(encoder.value().frame_samples());
    std::vector<EncodedFrame> packets(speech.size() / frame);
    for (std::size_t i = 0; i < packets.size(); ++i) {
        (void)encoder.value().encode(Span<const float>(&speech[i * frame], frame), packets[i]);
    }
    auto decoder = OpusDecoder::create(rate);
    std::vector<float> pcm(frame);
    std::size_t i = 0;
    for (auto _ : state) {
        int samples = 0;
        (void)decoder.value().decode(packets[i].payload(), pcm, samples);
        benchmark::DoNotOptimize(pcm.data());
        i = (i + 1) % packets.size();
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_RawLibopus_Encode60s(benchmark::State& state) {
    // The baseline: libopus alone on samples already in memory at 48 kHz.
    const auto speech = bench::speech_samples(48000);
    for (auto _ : state) {
        int error = 0;
        ::OpusEncoder* encoder = opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP, &error);
        opus_encoder_ctl(encoder, OPUS_SET_BITRATE(24000));
        opus_encoder_ctl(encoder, OPUS_SET_COMPLEXITY(5));
        opus_encoder_ctl(encoder, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
        unsigned char packet[kMaxOpusPacketBytes];
        std::size_t bytes = 0;
        for (std::size_t i = 0; i + 960 <= speech.size(); i += 960) {
            bytes += static_cast<std::size_t>(
                opus_encode_float(encoder, &speech[i], 960, packet, kMaxOpusPacketBytes));
        }
        benchmark::DoNotOptimize(bytes);
        opus_encoder_destroy(encoder);
    }
}

void BM_Pipeline_Encode60sFile(benchmark::State& state) {
    // The pipeline: the file at `rate` read by FileSource (resampled to 48 kHz when needed),
    // encoded through OpusEncoder, and handed over a ring to a consumer thread.
    const int file_rate = static_cast<int>(state.range(0));
    const std::string path = bench::speech_file(file_rate);
    for (auto _ : state) {
        auto source = FileSource::open(path, FileSourceConfig{});
        auto encoder = OpusEncoder::create(pipeline_config(48000));
        SpscRing<EncodedFrame> ring(64);
        std::atomic<bool> done{false};
        std::thread network([&] {
            EncodedFrame frame;
            std::size_t bytes = 0;
            for (;;) {
                const bool finished = done.load(std::memory_order_acquire);
                while (ring.try_pop(frame)) {
                    bytes += frame.size;
                }
                if (finished) {
                    break;
                }
                // Like the network thread, wake up now and then rather than spin.
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            benchmark::DoNotOptimize(bytes);
        });
        std::vector<float> pcm(960);
        std::size_t samples = 0;
        EncodedFrame packet;
        std::uint32_t sequence = 0;
        while (!source.value().read_frame(pcm, samples) && samples > 0) {
            (void)encoder.value().encode(pcm, packet);
            packet.sequence = sequence++;
            while (!ring.try_push(packet)) {
                std::this_thread::yield();
            }
        }
        done.store(true, std::memory_order_release);
        network.join();
    }
}

}  // namespace

BENCHMARK(BM_Encode20ms)->Arg(16000)->Arg(48000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Decode20ms)->Arg(16000)->Arg(48000)->Unit(benchmark::kMicrosecond);
// CPU time of the whole process, so the consumer thread's share is counted too.
BENCHMARK(BM_RawLibopus_Encode60s)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Repetitions(3)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_Pipeline_Encode60sFile)
    ->Arg(48000)
    ->Arg(22050)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Repetitions(3)
    ->ReportAggregatesOnly(true);
BENCHMARK_MAIN();
