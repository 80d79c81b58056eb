// Reads an audio file (WAV, FLAC, Ogg/Vorbis, Ogg/Opus, MP3) with libsndfile and delivers mono
// frames at the pipeline's rate, either as fast as possible or paced in real time on the
// monotonic clock. Opened at setup time; then used by one thread (the capture worker).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "olympus/audio/error.hpp"
#include "olympus/audio/resampler.hpp"
#include "olympus/audio/span.hpp"

struct sf_private_tag;

namespace olympus::audio {

/// How read_frame() is paced.
enum class Pace {
    as_fast_as_possible,  ///< return each frame as soon as it is decoded (tests, batch jobs)
    realtime,             ///< frame k is returned no earlier than start + k * frame period
};

struct FileSourceConfig {
    int output_rate = 48000;          ///< rate of the delivered frames, Hz
    std::size_t frame_samples = 960;  ///< samples per delivered frame (20 ms at 48 kHz)
    Pace pace = Pace::as_fast_as_possible;
    int resampler_quality = 5;  ///< speexdsp quality 0..10
    /// Which channel of a multi-channel file to deliver (0-based); -1 averages them all.
    int channel = -1;
};

/// What the file holds, as libsndfile reports it.
struct FileInfo {
    std::string path;
    std::string format;    ///< e.g. "WAV", "FLAC", "OGG/VORBIS", "OGG/OPUS", "MPEG"
    int sample_rate = 0;   ///< Hz, before resampling
    int channels = 0;      ///< before downmixing
    long long frames = 0;  ///< samples per channel in the file (may be an estimate for MP3)
    std::string software;  ///< the file's software tag (WAV ISFT), "" when absent
    std::string comment;   ///< the file's comment tag (WAV ICMT), "" when absent
};

class FileSource {
public:
    /// Opens `path`. Missing, unreadable and unsupported files, rates or channel counts out
    /// of range, and a config.channel the file does not have come back as errors naming the
    /// file and the value.
    static Result<FileSource> open(const std::string& path, const FileSourceConfig& config);

    FileSource(FileSource&&) noexcept;
    FileSource& operator=(FileSource&&) noexcept;
    ~FileSource();

    /// Fills `out` (config.frame_samples long) with the next frame and sets `samples` to the
    /// number of file samples in it: frame_samples, fewer in the last frame (the rest is
    /// zero-padded), 0 at the end of the file. With Pace::realtime it first sleeps until the
    /// frame's absolute deadline. A read error mid-file (corrupt or truncated data) is
    /// returned with the file named via error_context().
    std::error_code read_frame(Span<float> out, std::size_t& samples);

    /// Restarts the real-time clock: the next frame is due now.
    void restart_clock();

    /// The steady-clock deadline of the next frame (meaningful with Pace::realtime).
    std::chrono::steady_clock::time_point next_deadline() const;

    const FileInfo& info() const { return info_; }
    const FileSourceConfig& config() const { return config_; }

    /// "file=<path>", for messages about an error returned by read_frame().
    std::string error_context() const { return "file=" + info_.path; }

private:
    struct Closer {
        void operator()(sf_private_tag* file) const noexcept;
    };

    FileSource(std::unique_ptr<sf_private_tag, Closer> file, FileInfo info,
               const FileSourceConfig& config, Resampler resampler);

    std::error_code refill();
    std::size_t downmix(std::size_t frames);
    void resample(std::size_t count);

    std::unique_ptr<sf_private_tag, Closer> file_;
    FileInfo info_;
    FileSourceConfig config_;
    Resampler resampler_;

    // Decode state, owned by the reading thread.
    std::vector<float> interleaved_;  // one block as read from the file
    std::vector<float> mono_;         // the block downmixed
    std::vector<float> pending_;      // resampled samples not yet delivered
    std::size_t pending_pos_ = 0;
    bool end_of_file_ = false;
    bool flushed_ = false;

    // Real-time pacing: frame k is due at clock_start_ + k * frame period.
    std::chrono::steady_clock::time_point clock_start_{};
    long long frames_delivered_ = 0;
    bool clock_started_ = false;
};

}  // namespace olympus::audio
