// Downloads and decodes the audio of an audio_url reply (protocol section 3.3) with libcurl and
// libsndfile, under the same TLS rules as the voice stream. Blocking: called by the voice
// session's fetch thread only, never by the io thread or the audio callback.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "olympus/connection.hpp"

namespace olympus::detail {

/// Fetches `url` (http or https), decodes it (WAV, MP3, FLAC, Ogg: whatever libsndfile reads),
/// downmixes to mono and resamples to `sample_rate` into `pcm`. Errors: audio_fetch_tls for a
/// TLS or certificate failure, audio_fetch_failed for an HTTP error status or a network failure
/// or timeout, audio_not_decodable for a body that is not audio; `detail` says more. Returns
/// early with audio_fetch_failed when `cancel` turns true.
std::error_code fetch_audio(const std::string& url, const TlsOptions& tls,
                            std::chrono::milliseconds timeout, int sample_rate,
                            const std::atomic<bool>& cancel, std::vector<float>& pcm,
                            std::string& detail);

}  // namespace olympus::detail
