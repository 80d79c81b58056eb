// libFuzzer target: the audio file source (libsndfile, downmix, resampling) on arbitrary file
// contents, written to a temporary file and read to the end. Single thread.
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include "olympus/audio/file_source.hpp"

namespace {

const std::string& temp_path() {
    static const std::string path = "/tmp/olympus-fuzz-audio-" + std::to_string(getpid());
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The bytes become a file, since FileSource opens paths.
    if (FILE* f = std::fopen(temp_path().c_str(), "wb")) {
        std::fwrite(data, 1, size, f);
        std::fclose(f);
    } else {
        return 0;
    }

    // Open it and read every frame, with a bound on how much a tiny input may claim to hold.
    olympus::audio::FileSourceConfig config;
    config.output_rate = 16000;
    config.frame_samples = 320;
    auto source = olympus::audio::FileSource::open(temp_path(), config);
    if (!source.ok()) {
        return 0;
    }
    std::vector<float> frame(config.frame_samples);
    for (int i = 0; i < 20000; ++i) {
        std::size_t samples = 0;
        if (source.value().read_frame({frame.data(), frame.size()}, samples) || samples == 0) {
            break;
        }
    }
    return 0;
}
