// Writes float frames (mono, or interleaved channels) to a 16-bit PCM WAV file with libsndfile,
// optionally tagged (software, comment) in the file's INFO list. Opened at setup time; then
// written by one thread (the playout loop, a recorder thread).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <system_error>

#include "olympus/audio/error.hpp"
#include "olympus/audio/span.hpp"

struct sf_private_tag;

namespace olympus::audio {

class WavSink {
public:
    /// Creates (or truncates) `path` as a WAV file at `sample_rate` Hz with `channels` (1..8).
    static Result<WavSink> create(const std::string& path, int sample_rate, int channels = 1);

    /// Tags the file: `software` and `comment` land in its INFO list (ISFT, ICMT), where
    /// tools and FileSource::tags() read them. Call before close().
    std::error_code set_tags(const std::string& software, const std::string& comment);

    /// Appends `samples` (interleaved when channels > 1, whole frames only; clipped to
    /// [-1, 1]). Errors name nothing; use path() and last_error() for context.
    std::error_code write(Span<const float> samples);

    /// libsndfile's words for the last failure ("No space left on device", ...).
    std::string last_error() const;

    /// Finishes the header and closes the file; later writes fail. Also done on destruction.
    std::error_code close();

    const std::string& path() const { return path_; }
    /// Samples written, all channels counted.
    long long samples_written() const { return written_; }
    int channels() const { return channels_; }

private:
    struct Closer {
        void operator()(sf_private_tag* file) const noexcept;
    };

    WavSink(std::unique_ptr<sf_private_tag, Closer> file, std::string path, int channels);

    std::unique_ptr<sf_private_tag, Closer> file_;
    std::string path_;
    int channels_ = 1;
    long long written_ = 0;
};

}  // namespace olympus::audio
