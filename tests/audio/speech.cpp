// Speech synthesis and signal measures for the audio tests; see speech.hpp.
#include "speech.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>

#include <sndfile.h>

#include "support/test_env.hpp"

namespace olympus::audio::test {

void synthesise(const std::string& text, const std::string& path, int rate) {
    // espeak-ng speaks at 22.05 kHz; sox converts to the rate asked for.
    const std::string raw = path + ".espeak.wav";
    const std::string speak = "espeak-ng -s 150 -w '" + raw + "' '" + text + "'";
    const std::string convert =
        "sox -q '" + raw + "' -r " + std::to_string(rate) + " -c 1 '" + path + "' vol 0.9";
    if (std::system(speak.c_str()) != 0 || std::system(convert.c_str()) != 0) {
        throw std::runtime_error("cannot synthesise speech into " + path);
    }
    std::filesystem::remove(raw);
}

std::vector<float> read_wav(const std::string& path, int* rate) {
    SF_INFO info{};
    SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
    if (file == nullptr) {
        throw std::runtime_error("cannot open " + path + ": " + sf_strerror(nullptr));
    }
    std::vector<float> interleaved(static_cast<std::size_t>(info.frames * info.channels));
    const sf_count_t got = sf_readf_float(file, interleaved.data(), info.frames);
    sf_close(file);
    std::vector<float> mono(static_cast<std::size_t>(got));
    for (std::size_t i = 0; i < mono.size(); ++i) {
        mono[i] = interleaved[i * static_cast<std::size_t>(info.channels)];
    }
    if (rate != nullptr) {
        *rate = info.samplerate;
    }
    return mono;
}

const std::vector<float>& speech(int rate) {
    static std::mutex mutex;
    static std::map<int, std::vector<float>> cache;
    std::lock_guard lock(mutex);
    auto it = cache.find(rate);
    if (it == cache.end()) {
        const std::string dir = olympus::test::make_temp_dir("olympus-speech");
        const std::string path = dir + "/speech.wav";
        synthesise("Welcome to Olympus. Would you like fries with your order today?", path, rate);
        it = cache.emplace(rate, read_wav(path)).first;
        std::filesystem::remove_all(dir);
    }
    return it->second;
}

double correlation(const std::vector<float>& a, const std::vector<float>& b, long lag) {
    double ab = 0, aa = 0, bb = 0;
    for (long i = 0; i < static_cast<long>(a.size()); ++i) {
        const long j = i + lag;
        if (j < 0 || j >= static_cast<long>(b.size())) {
            continue;
        }
        ab += double{a[static_cast<std::size_t>(i)]} * double{b[static_cast<std::size_t>(j)]};
        aa += double{a[static_cast<std::size_t>(i)]} * double{a[static_cast<std::size_t>(i)]};
        bb += double{b[static_cast<std::size_t>(j)]} * double{b[static_cast<std::size_t>(j)]};
    }
    return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

long best_lag(const std::vector<float>& a, const std::vector<float>& b, long min_lag,
              long max_lag) {
    long best = min_lag;
    double best_value = -2;
    for (long lag = min_lag; lag <= max_lag; ++lag) {
        const double value = correlation(a, b, lag);
        if (value > best_value) {
            best_value = value;
            best = lag;
        }
    }
    return best;
}

double snr_db(const float* expected, const float* actual, std::size_t count) {
    double signal = 0, noise = 0;
    for (std::size_t i = 0; i < count; ++i) {
        signal += double{expected[i]} * double{expected[i]};
        const double diff = double{expected[i]} - double{actual[i]};
        noise += diff * diff;
    }
    return 10.0 * std::log10((signal + 1e-12) / (noise + 1e-12));
}

double rms(const float* samples, std::size_t count) {
    double sum = 0;
    for (std::size_t i = 0; i < count; ++i) {
        sum += double{samples[i]} * double{samples[i]};
    }
    return count == 0 ? 0.0 : std::sqrt(sum / static_cast<double>(count));
}

std::vector<float> sine(double frequency, double amplitude, int rate, std::size_t count) {
    std::vector<float> out(count);
    const double step = 2.0 * M_PI * frequency / rate;
    for (std::size_t i = 0; i < count; ++i) {
        out[i] = static_cast<float>(amplitude * std::sin(step * static_cast<double>(i)));
    }
    return out;
}

}  // namespace olympus::audio::test
