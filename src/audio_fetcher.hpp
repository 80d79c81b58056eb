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

/// A reply's body is read up to this many bytes (a minute of 48 kHz stereo WAV is 11 MB).
constexpr std::size_t kMaxAudioUrlBytes = 16 * 1024 * 1024;
/// A reply decodes to at most this much audio; a small compressed file can hold hours.
constexpr int kMaxReplySeconds = 120;

/// Fetches `url` (http or https), decodes it (WAV, MP3, FLAC, Ogg: whatever libsndfile reads),
/// downmixes to mono and resamples to `sample_rate` into `pcm`. Errors: audio_fetch_tls for a
/// TLS or certificate failure, audio_fetch_failed for an HTTP error status or a network failure
/// or timeout, audio_not_decodable for a body that is not audio, audio_too_large for a body
/// over kMaxAudioUrlBytes (announced or read) or audio longer than kMaxReplySeconds (decoding
/// stops there); `detail` says more. Returns early with audio_fetch_failed when `cancel` turns
/// true.
std::error_code fetch_audio(const std::string& url, const TlsOptions& tls,
                            std::chrono::milliseconds timeout, int sample_rate,
                            const std::atomic<bool>& cancel, std::vector<float>& pcm,
                            std::string& detail);

}  // namespace olympus::detail
