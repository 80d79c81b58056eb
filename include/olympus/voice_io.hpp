// Where a voice session's audio comes from and goes to: a file or the microphone on the way up,
// a WAV file or the speakers on the way down. A source is read by the session's source thread
// only; a sink is written by the session's playout thread only; the small `*_level`/`fill`
// getters may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "olympus/audio/capture_stream.hpp"
#include "olympus/audio/error.hpp"
#include "olympus/audio/file_source.hpp"
#include "olympus/audio/playback_stream.hpp"
#include "olympus/audio/span.hpp"
#include "olympus/audio/wav_sink.hpp"

namespace olympus {

/// What VoiceSource::read() produced.
enum class SourceRead {
    frame,  ///< a whole frame
    end,    ///< the source is exhausted (end of file, or stop() was called)
    error,  ///< a read error; the source is done (see VoiceSource::error())
};

/// A mono stream of frames at the session's uplink rate and frame size.
class VoiceSource {
public:
    using Clock = std::chrono::steady_clock;
    virtual ~VoiceSource() = default;

    /// Source thread. Fills all of `frame` and sets `captured` to when that audio was captured
    /// (or, for a paced file, when it was due). May block up to about a frame period.
    virtual SourceRead read(audio::Span<float> frame, Clock::time_point& captured) = 0;

    /// True when the source runs on its own clock (a device, a paced file): when the uplink is
    /// full a frame is dropped and counted. False: the source waits for room (nothing lost).
    virtual bool realtime() const = 0;

    /// Any thread: makes read() return SourceRead::end soon.
    virtual void stop() = 0;

    /// Why read() returned SourceRead::error, with the file or device named.
    virtual std::string error() const { return {}; }

    /// Any thread: samples waiting between the device callback and the source thread, in ms.
    virtual double fill_ms() const { return 0; }
};

/// Where reply audio goes. Written by the playout thread at the sink's rate.
class VoiceSink {
public:
    virtual ~VoiceSink() = default;

    /// Hz of the samples write() takes.
    virtual int sample_rate() const = 0;

    /// Playout thread. Queues or writes `pcm`.
    virtual std::error_code write(audio::Span<const float> pcm) = 0;

    /// Playout thread, barge-in: stop within one frame with a short fade and drop whatever is
    /// queued. `next` is the audio that would have played next (a file sink fades it out).
    /// Returns once the fade has been played or written (bounded wait).
    virtual void fade_out_and_flush(audio::Span<const float> next) = 0;

    /// Position (samples at sample_rate()) at which the next write() will be heard: what was
    /// written so far, less anything a flush discarded.
    virtual std::uint64_t written_samples() const = 0;

    /// Samples (at sample_rate()) the listener actually heard: what the device played, or what
    /// a file sink wrote.
    virtual std::uint64_t played_samples() const = 0;

    /// Any thread: audio written but not yet heard, in ms (a device's ring).
    virtual double fill_ms() const { return 0; }

    /// Playout thread, at the end: finish files. Idempotent.
    virtual std::error_code finish() { return {}; }
};

/// Streams an audio file (any format FileSource reads), followed by `trailing_silence` so that
/// the server hears the end of the last utterance.
class FileVoiceSource final : public VoiceSource {
public:
    /// Opens `path` now: a missing or unreadable file fails here, with its name, before any
    /// connection is made. `realtime` paces frames at their real-time deadlines. `channel`
    /// (0-based) streams one channel of a multi-channel file; -1 averages them.
    static audio::Result<std::unique_ptr<FileVoiceSource>> open(
        const std::string& path, int sample_rate, int frame_ms, bool realtime,
        std::chrono::milliseconds trailing_silence = std::chrono::milliseconds(1000),
        int channel = -1);

    SourceRead read(audio::Span<float> frame, Clock::time_point& captured) override;
    bool realtime() const override { return realtime_; }
    void stop() override { stopped_.store(true, std::memory_order_relaxed); }
    std::string error() const override { return error_; }

    /// Frames of the file (without the trailing silence), known after the end was reached.
    const audio::FileInfo& info() const { return file_.info(); }
    /// Frames read() delivered so far, trailing silence included.
    std::uint64_t frames_read() const { return frames_read_; }

private:
    FileVoiceSource(audio::FileSource file, bool realtime, std::size_t silence_frames);

    audio::FileSource file_;
    bool realtime_;
    std::size_t silence_left_;
    bool file_done_ = false;
    std::uint64_t frames_read_ = 0;
    std::string error_;
    std::chrono::nanoseconds frame_period_;
    Clock::time_point next_due_{};
    std::atomic<bool> stopped_{false};
};

/// The microphone through PortAudio (a callback stream; see CaptureStream).
class DeviceVoiceSource final : public VoiceSource {
public:
    /// Opens and starts `device` ("" = default) delivering `sample_rate` mono.
    static audio::Result<std::unique_ptr<DeviceVoiceSource>> open(const std::string& device,
                                                                  int sample_rate);

    SourceRead read(audio::Span<float> frame, Clock::time_point& captured) override;
    bool realtime() const override { return true; }
    void stop() override { stopped_.store(true, std::memory_order_relaxed); }
    double fill_ms() const override;
    const audio::CaptureStream& stream() const { return *stream_; }

private:
    explicit DeviceVoiceSource(std::unique_ptr<audio::CaptureStream> stream);

    std::unique_ptr<audio::CaptureStream> stream_;
    std::atomic<bool> stopped_{false};
};

/// Writes reply audio to a 16-bit WAV file. A barge-in writes a short fade-out of the audio
/// that would have played next, so the file ends the reply without a click.
class WavVoiceSink final : public VoiceSink {
public:
    static audio::Result<std::unique_ptr<WavVoiceSink>> create(const std::string& path,
                                                               int sample_rate, int fade_ms = 5);

    int sample_rate() const override { return rate_; }
    std::error_code write(audio::Span<const float> pcm) override;
    void fade_out_and_flush(audio::Span<const float> next) override;
    std::uint64_t written_samples() const override {
        return written_.load(std::memory_order_relaxed);
    }
    std::uint64_t played_samples() const override { return written_samples(); }
    std::error_code finish() override;
    const std::string& path() const { return path_; }

private:
    WavVoiceSink(audio::WavSink sink, std::string path, int sample_rate, int fade_ms);

    std::optional<audio::WavSink> sink_;
    std::string path_;
    int rate_;
    std::size_t fade_samples_;
    std::atomic<std::uint64_t> written_{0};
};

/// The speakers through PortAudio (a callback stream; see PlaybackStream).
class DeviceVoiceSink final : public VoiceSink {
public:
    /// Opens and starts `device` ("" = default) taking `sample_rate` mono.
    static audio::Result<std::unique_ptr<DeviceVoiceSink>> open(const std::string& device,
                                                                int sample_rate, int fade_ms = 5);

    int sample_rate() const override { return rate_; }
    std::error_code write(audio::Span<const float> pcm) override;
    void fade_out_and_flush(audio::Span<const float> next) override;
    std::uint64_t written_samples() const override;
    std::uint64_t played_samples() const override;
    double fill_ms() const override;
    const audio::PlaybackStream& stream() const { return *stream_; }

private:
    DeviceVoiceSink(std::unique_ptr<audio::PlaybackStream> stream, int sample_rate);

    std::unique_ptr<audio::PlaybackStream> stream_;
    int rate_;
};

}  // namespace olympus
