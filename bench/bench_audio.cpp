// Generates the benchmarks' speech files; see bench_audio.hpp.
#include "bench_audio.hpp"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <sndfile.h>

namespace olympus::audio::bench {

std::string speech_file(int rate) {
    const auto dir = std::filesystem::temp_directory_path() / "olympus-audio-bench";
    std::filesystem::create_directories(dir);
    const std::string raw = (dir / "speech-raw.wav").string();
    const std::string path = (dir / ("speech-60s-" + std::to_string(rate) + ".wav")).string();
    if (std::filesystem::exists(path)) {
        return path;
    }
    // About 6 s of speech, repeated and cut to exactly 60 s.
    const std::string speak =
        "espeak-ng -s 150 -w '" + raw +
        "' 'Welcome to Olympus. Can I take your order? One cheeseburger, large fries and a "
        "chocolate shake. Anything else today? That will be eleven dollars, please pull "
        "forward.'";
    const std::string convert = "sox -q '" + raw + "' -r " + std::to_string(rate) + " -c 1 '" +
                                path + "' repeat 15 trim 0 60";
    if (std::system(speak.c_str()) != 0 || std::system(convert.c_str()) != 0) {
        throw std::runtime_error("cannot make " + path + " (espeak-ng and sox needed)");
    }
    return path;
}

std::vector<float> speech_samples(int rate) {
    const std::string path = speech_file(rate);
    SF_INFO info{};
    SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
    if (file == nullptr) {
        throw std::runtime_error("cannot read " + path);
    }
    std::vector<float> samples(static_cast<std::size_t>(info.frames));
    sf_readf_float(file, samples.data(), info.frames);
    sf_close(file);
    return samples;
}

}  // namespace olympus::audio::bench
