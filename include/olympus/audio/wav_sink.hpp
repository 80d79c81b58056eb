// Writes mono float frames to a 16-bit PCM WAV file with libsndfile. Opened at setup time;
// then written by one thread (the playout loop).
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
    /// Creates (or truncates) `path` as a mono WAV file at `sample_rate` Hz.
    static Result<WavSink> create(const std::string& path, int sample_rate);

    /// Appends `samples` (clipped to [-1, 1]). Errors name nothing; use path() for context.
    std::error_code write(Span<const float> samples);

    /// Finishes the header and closes the file; later writes fail. Also done on destruction.
    std::error_code close();

    const std::string& path() const { return path_; }
    long long samples_written() const { return written_; }

private:
    struct Closer {
        void operator()(sf_private_tag* file) const noexcept;
    };

    WavSink(std::unique_ptr<sf_private_tag, Closer> file, std::string path);

    std::unique_ptr<sf_private_tag, Closer> file_;
    std::string path_;
    long long written_ = 0;
};

}  // namespace olympus::audio
