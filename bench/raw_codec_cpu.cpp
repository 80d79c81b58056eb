// The reference for the pipeline-overhead ratio of bench/run: raw libopus, no project code,
// encoding and decoding a file's audio frame by frame (48 kHz mono, 20 ms, VOIP, 24 kb/s, the
// given complexity) as fast as it can, and printing the CPU it took per second of audio.
// Usage: raw_codec_cpu <file.wav> [complexity] [passes]. Single-threaded.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include <opus/opus.h>
#include <sndfile.h>

namespace {

double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: raw_codec_cpu <file.wav> [complexity] [passes]\n");
        return 2;
    }
    const int complexity = argc > 2 ? std::atoi(argv[2]) : 5;
    const int passes = argc > 3 ? std::atoi(argv[3]) : 20;

    // The file must already be 48 kHz mono: the reference does no resampling.
    SF_INFO info{};
    SNDFILE* file = sf_open(argv[1], SFM_READ, &info);
    if (file == nullptr || info.samplerate != 48000 || info.channels != 1) {
        std::fprintf(stderr, "raw_codec_cpu: %s must be a 48 kHz mono file\n", argv[1]);
        return 2;
    }
    std::vector<float> audio(static_cast<std::size_t>(info.frames));
    audio.resize(static_cast<std::size_t>(sf_readf_float(file, audio.data(), info.frames)));
    sf_close(file);

    int error = 0;
    OpusEncoder* encoder = opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP, &error);
    OpusDecoder* decoder = opus_decoder_create(48000, 1, &error);
    opus_encoder_ctl(encoder, OPUS_SET_BITRATE(24000));
    opus_encoder_ctl(encoder, OPUS_SET_COMPLEXITY(complexity));

    // Encode and decode every whole frame, `passes` times over.
    constexpr int kFrame = 960;
    unsigned char packet[1500];
    std::vector<float> out(kFrame);
    std::size_t frames = 0;
    double start = cpu_seconds();
    for (int pass = 0; pass < passes; ++pass) {
        for (std::size_t at = 0; at + kFrame <= audio.size(); at += kFrame) {
            int bytes = opus_encode_float(encoder, &audio[at], kFrame, packet, sizeof packet);
            opus_decode_float(decoder, packet, bytes, out.data(), kFrame, 0);
            ++frames;
        }
    }
    double cpu = cpu_seconds() - start;
    double audio_seconds = static_cast<double>(frames) * 0.020;
    std::printf("RAW_JSON {\"frames\":%zu,\"cpu_s\":%.6f,\"cpu_ms_per_audio_s\":%.4f}\n", frames,
                cpu, cpu * 1000 / audio_seconds);
    opus_encoder_destroy(encoder);
    opus_decoder_destroy(decoder);
    return 0;
}
