// Voice sources and sinks over files and PortAudio devices; see voice_io.hpp. Each runs on the
// session thread that owns it (source thread or playout thread).
#include "olympus/voice_io.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace olympus {

using std::chrono::milliseconds;

// ---- FileVoiceSource ----

audio::Result<std::unique_ptr<FileVoiceSource>> FileVoiceSource::open(const std::string& path,
                                                                      int sample_rate, int frame_ms,
                                                                      bool realtime,
                                                                      milliseconds trailing_silence,
                                                                      int channel) {
    // The file source decodes as fast as it can; this class does the pacing, silence included.
    audio::FileSourceConfig config;
    config.output_rate = sample_rate;
    config.frame_samples = static_cast<std::size_t>(sample_rate * frame_ms / 1000);
    config.pace = audio::Pace::as_fast_as_possible;
    config.channel = channel;
    auto file = audio::FileSource::open(path, config);
    if (!file) {
        return file.error();
    }
    auto silence = static_cast<std::size_t>(trailing_silence.count() / frame_ms);
    return std::unique_ptr<FileVoiceSource>(
        new FileVoiceSource(std::move(file).value(), realtime, silence));
}

FileVoiceSource::FileVoiceSource(audio::FileSource file, bool realtime, std::size_t silence_frames)
    : file_(std::move(file)),
      realtime_(realtime),
      silence_left_(silence_frames),
      frame_period_(std::chrono::nanoseconds(1'000'000'000LL *
                                             static_cast<long long>(file_.config().frame_samples) /
                                             file_.config().output_rate)) {}

SourceRead FileVoiceSource::read(audio::Span<float> frame, Clock::time_point& captured) {
    if (stopped_.load(std::memory_order_relaxed)) {
        return SourceRead::end;
    }

    // A paced file releases frame k at start + k periods; that due time stands for capture.
    if (realtime_) {
        auto now = Clock::now();
        if (next_due_ == Clock::time_point{}) {
            next_due_ = now;
        }
        std::this_thread::sleep_until(next_due_);
        captured = next_due_;
        next_due_ += frame_period_;
    } else {
        captured = Clock::now();
    }

    // The file first, its last frame zero-padded by FileSource.
    if (!file_done_) {
        std::size_t samples = 0;
        if (auto ec = file_.read_frame(frame, samples)) {
            error_ = file_.error_context() + ": " + ec.message();
            return SourceRead::error;
        }
        if (samples > 0) {
            ++frames_read_;
            return SourceRead::frame;
        }
        file_done_ = true;
    }

    // Then the trailing silence that lets the server hear the end of the last utterance.
    if (silence_left_ > 0) {
        --silence_left_;
        std::fill(frame.begin(), frame.end(), 0.0f);
        ++frames_read_;
        return SourceRead::frame;
    }
    return SourceRead::end;
}

// ---- DeviceVoiceSource ----

audio::Result<std::unique_ptr<DeviceVoiceSource>> DeviceVoiceSource::open(const std::string& device,
                                                                          int sample_rate) {
    audio::DeviceStreamConfig config;
    config.device = device;
    config.codec_rate = sample_rate;
    auto stream = audio::CaptureStream::open(config);
    if (!stream) {
        return stream.error();
    }
    if (auto ec = stream.value()->start()) {
        return audio::Error{ec, "input device=" + stream.value()->device().name};
    }
    return std::unique_ptr<DeviceVoiceSource>(new DeviceVoiceSource(std::move(stream).value()));
}

DeviceVoiceSource::DeviceVoiceSource(std::unique_ptr<audio::CaptureStream> stream)
    : stream_(std::move(stream)) {}

SourceRead DeviceVoiceSource::read(audio::Span<float> frame, Clock::time_point& captured) {
    // Poll in short slices so stop() is honoured within a frame or two.
    std::size_t got = 0;
    while (got < frame.size()) {
        if (stopped_.load(std::memory_order_relaxed)) {
            return SourceRead::end;
        }
        got += stream_->read_frame(frame.subspan(got, frame.size() - got), milliseconds(40));
    }
    // TODO: use PortAudio's input ADC time instead of the time the frame was complete; the
    // reported latency misses the device buffer (a few ms on JACK, more on some drivers).
    captured = Clock::now();
    return SourceRead::frame;
}

double DeviceVoiceSource::fill_ms() const {
    auto s = stream_->stats();
    return s.device_rate > 0 ? static_cast<double>(s.ring_fill) * 1000.0 / s.device_rate : 0.0;
}

// ---- WavVoiceSink ----

audio::Result<std::unique_ptr<WavVoiceSink>> WavVoiceSink::create(const std::string& path,
                                                                  int sample_rate, int fade_ms) {
    auto sink = audio::WavSink::create(path, sample_rate);
    if (!sink) {
        return sink.error();
    }
    return std::unique_ptr<WavVoiceSink>(
        new WavVoiceSink(std::move(sink).value(), path, sample_rate, fade_ms));
}

WavVoiceSink::WavVoiceSink(audio::WavSink sink, std::string path, int sample_rate, int fade_ms)
    : sink_(std::move(sink)),
      path_(std::move(path)),
      rate_(sample_rate),
      fade_samples_(static_cast<std::size_t>(std::max(1, sample_rate * fade_ms / 1000))) {}

std::error_code WavVoiceSink::write(audio::Span<const float> pcm) {
    if (!sink_) {
        return audio::make_error_code(audio::errc::file_write_failed);
    }
    auto ec = sink_->write(pcm);
    if (!ec) {
        written_.fetch_add(pcm.size(), std::memory_order_relaxed);
    }
    return ec;
}

void WavVoiceSink::fade_out_and_flush(audio::Span<const float> next) {
    // What a listener would have heard: the next samples ramping down to silence.
    std::vector<float> fade(std::min(fade_samples_, next.size()));
    for (std::size_t i = 0; i < fade.size(); ++i) {
        auto gain = static_cast<float>(fade.size() - i) / static_cast<float>(fade.size() + 1);
        fade[i] = next[i] * gain;
    }
    (void)write(fade);
}

std::error_code WavVoiceSink::finish() {
    if (!sink_) {
        return {};
    }
    auto ec = sink_->close();
    sink_.reset();
    return ec;
}

// ---- DeviceVoiceSink ----

audio::Result<std::unique_ptr<DeviceVoiceSink>> DeviceVoiceSink::open(const std::string& device,
                                                                      int sample_rate,
                                                                      int fade_ms) {
    audio::DeviceStreamConfig config;
    config.device = device;
    config.codec_rate = sample_rate;
    config.fade_ms = fade_ms;
    auto stream = audio::PlaybackStream::open(config);
    if (!stream) {
        return stream.error();
    }
    if (auto ec = stream.value()->start()) {
        return audio::Error{ec, "output device=" + stream.value()->device().name};
    }
    return std::unique_ptr<DeviceVoiceSink>(
        new DeviceVoiceSink(std::move(stream).value(), sample_rate));
}

DeviceVoiceSink::DeviceVoiceSink(std::unique_ptr<audio::PlaybackStream> stream, int sample_rate)
    : stream_(std::move(stream)), rate_(sample_rate) {}

std::error_code DeviceVoiceSink::write(audio::Span<const float> pcm) {
    // The ring holds about 340 ms at 48 kHz; a full one means the device stalled.
    std::size_t taken = 0;
    for (int tries = 0; taken < pcm.size() && tries < 50; ++tries) {
        taken += stream_->write(pcm.subspan(taken, pcm.size() - taken));
        if (taken < pcm.size()) {
            std::this_thread::sleep_for(milliseconds(2));
        }
    }
    return taken == pcm.size() ? std::error_code{}
                               : audio::make_error_code(audio::errc::buffer_too_small);
}

void DeviceVoiceSink::fade_out_and_flush(audio::Span<const float>) {
    // The callback fades what is playing now; wait (bounded) until it has.
    stream_->fade_out_and_flush();
    auto deadline = std::chrono::steady_clock::now() + milliseconds(200);
    while (!stream_->flush_done() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(milliseconds(1));
    }
}

std::uint64_t DeviceVoiceSink::written_samples() const {
    // Played plus queued: audio discarded by a flush never reaches the listener's timeline.
    auto s = stream_->stats();
    return s.device_rate > 0 ? played_samples() + s.ring_fill * static_cast<std::uint64_t>(rate_) /
                                                      static_cast<std::uint64_t>(s.device_rate)
                             : 0;
}

std::uint64_t DeviceVoiceSink::played_samples() const {
    auto s = stream_->stats();
    return s.device_rate > 0 ? stream_->played_samples() * static_cast<std::uint64_t>(rate_) /
                                   static_cast<std::uint64_t>(s.device_rate)
                             : 0;
}

double DeviceVoiceSink::fill_ms() const {
    auto s = stream_->stats();
    return s.device_rate > 0 ? static_cast<double>(s.ring_fill) * 1000.0 / s.device_rate : 0.0;
}

}  // namespace olympus
