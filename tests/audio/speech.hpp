// Real speech and signal measures for the audio tests: speech is synthesised with espeak-ng at
// test time, so nothing large is committed. Test threads only.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace olympus::audio::test {

/// Mono speech at `rate` Hz, about 3 s long ("Welcome to Olympus ... order"), peak near 0.5.
/// Synthesised once per process and rate; throws std::runtime_error if espeak-ng or sox fail.
const std::vector<float>& speech(int rate);

/// Writes `text` spoken by espeak-ng to `path` as WAV at `rate` Hz; throws on failure.
void synthesise(const std::string& text, const std::string& path, int rate);

/// Reads every sample of channel 0 of a WAV file with libsndfile; throws on failure.
std::vector<float> read_wav(const std::string& path, int* rate = nullptr);

/// Normalised correlation of a[i] and b[i + lag] over the overlap, in [-1, 1].
double correlation(const std::vector<float>& a, const std::vector<float>& b, long lag);

/// The lag in [min_lag, max_lag] where correlation() peaks.
long best_lag(const std::vector<float>& a, const std::vector<float>& b, long min_lag, long max_lag);

/// Signal-to-noise ratio in dB of `actual` against `expected` over `count` samples from the
/// given offsets.
double snr_db(const float* expected, const float* actual, std::size_t count);

/// Root mean square of a run of samples.
double rms(const float* samples, std::size_t count);

/// A sine of `frequency` Hz and `amplitude` at `rate`, `count` samples long.
std::vector<float> sine(double frequency, double amplitude, int rate, std::size_t count);

}  // namespace olympus::audio::test
