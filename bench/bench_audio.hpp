// Test audio for the benchmarks: a minute of espeak-ng speech, made once in a temp dir.
// Benchmark main thread only.
#pragma once

#include <string>
#include <vector>

namespace olympus::audio::bench {

/// Path of a WAV file with 60 s of mono speech at `rate` Hz (made with espeak-ng and sox on
/// first use; throws std::runtime_error if they fail).
std::string speech_file(int rate);

/// The samples of speech_file(rate) as floats.
std::vector<float> speech_samples(int rate);

}  // namespace olympus::audio::bench
