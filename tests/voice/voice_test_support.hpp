// Shared helpers of the voice session tests: an emulator, session options that trust it, speech
// written to a WAV file, and signal comparisons. Test threads only.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "olympus/emulator/emulator.hpp"
#include "olympus/voice_session.hpp"

namespace olympus::test {

/// Emulator options for fast tests: no greeting, no server pings.
emulator::EmulatorOptions quiet_emulator(bool tls = false);

/// Session options for `emu`'s voice stream: its token, its certificate, quick reconnects.
VoiceSessionOptions session_options(const emulator::Emulator& emu);

/// espeak-ng speech at `rate` (about 3 s), written once per process to a WAV file.
const std::string& speech_wav(int rate = 48000);

/// Reads a mono WAV file (throws on failure).
std::vector<float> read_wav_file(const std::string& path, int* rate = nullptr);

/// Best normalised correlation of `b` against `a` over lags in [-max_lag, max_lag], computed on
/// both signals decimated by 4 (speech keeps its shape; it is 16 times cheaper).
double best_correlation(const std::vector<float>& a, const std::vector<float>& b, long max_lag);

/// The emulator's only voice session (fails the test when there is not exactly one).
emulator::VoiceSessionRecord only_session(const emulator::Emulator& emu);

}  // namespace olympus::test
