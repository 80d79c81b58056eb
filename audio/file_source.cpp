// libsndfile reader with downmix, resampling and real-time pacing; see file_source.hpp.
// One reading thread.
#include "olympus/audio/file_source.hpp"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include <sndfile.h>

namespace olympus::audio {
namespace {

constexpr sf_count_t kBlockFrames = 1024;
constexpr int kMaxChannels = 8;

std::string format_name(int format) {
    SF_FORMAT_INFO major{};
    major.format = format & SF_FORMAT_TYPEMASK;
    sf_command(nullptr, SFC_GET_FORMAT_INFO, &major, sizeof(major));
    SF_FORMAT_INFO minor{};
    minor.format = format & SF_FORMAT_SUBMASK;
    sf_command(nullptr, SFC_GET_FORMAT_INFO, &minor, sizeof(minor));
    std::string name = major.extension != nullptr ? major.extension : "unknown";
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (minor.name != nullptr && (format & SF_FORMAT_TYPEMASK) == SF_FORMAT_OGG) {
        name += std::string("/") + minor.name;
    }
    return name;
}

}  // namespace

void FileSource::Closer::operator()(sf_private_tag* file) const noexcept {
    sf_close(file);
}

FileSource::FileSource(std::unique_ptr<sf_private_tag, Closer> file, FileInfo info,
                       const FileSourceConfig& config, Resampler resampler)
    : file_(std::move(file)),
      info_(std::move(info)),
      config_(config),
      resampler_(std::move(resampler)),
      interleaved_(static_cast<std::size_t>(kBlockFrames * info_.channels)),
      mono_(static_cast<std::size_t>(kBlockFrames)) {
    pending_.reserve(resampler_.output_size(kBlockFrames) * 2 + config_.frame_samples);
}

FileSource::FileSource(FileSource&&) noexcept = default;
FileSource& FileSource::operator=(FileSource&&) noexcept = default;
FileSource::~FileSource() = default;

Result<FileSource> FileSource::open(const std::string& path, const FileSourceConfig& config) {
    // Let libsndfile identify the format from the content; its message says why it cannot.
    SF_INFO sf_info{};
    std::unique_ptr<sf_private_tag, Closer> file(sf_open(path.c_str(), SFM_READ, &sf_info));
    if (!file) {
        return Error{make_error_code(errc::file_open_failed),
                     "file=" + path + " (" + sf_strerror(nullptr) + ")"};
    }

    // Refuse shapes the pipeline cannot use, naming the value.
    FileInfo info{path,
                  format_name(sf_info.format),
                  sf_info.samplerate,
                  sf_info.channels,
                  static_cast<long long>(sf_info.frames),
                  {},
                  {}};
    for (auto [tag, field] :
         {std::pair{SF_STR_SOFTWARE, &info.software}, std::pair{SF_STR_COMMENT, &info.comment}}) {
        if (const char* text = sf_get_string(file.get(), tag)) {
            *field = text;
        }
    }
    if (info.channels < 1 || info.channels > kMaxChannels) {
        return Error{make_error_code(errc::unsupported_channels),
                     "file=" + path + " channels=" + std::to_string(info.channels)};
    }
    if (info.sample_rate < 8000 || info.sample_rate > 192000) {
        return Error{make_error_code(errc::unsupported_rate),
                     "file=" + path + " rate=" + std::to_string(info.sample_rate)};
    }
    if (config.channel < -1 || config.channel >= info.channels) {
        return Error{make_error_code(errc::unsupported_channels),
                     "file=" + path + " channel=" + std::to_string(config.channel + 1) + " of " +
                         std::to_string(info.channels)};
    }
    if (config.frame_samples == 0 || config.frame_samples > 48000) {
        return Error{make_error_code(errc::invalid_argument),
                     "file source frame_samples=" + std::to_string(config.frame_samples)};
    }

    // Convert to the pipeline's rate.
    auto resampler =
        Resampler::create(info.sample_rate, config.output_rate, config.resampler_quality);
    if (!resampler) {
        return Error{resampler.error().code, "file=" + path + " " + resampler.error().context};
    }
    return FileSource(std::move(file), std::move(info), config, std::move(resampler).value());
}

std::error_code FileSource::refill() {
    // Read one block; a short read is the end of the file unless libsndfile flags an error.
    const sf_count_t got = sf_readf_float(file_.get(), interleaved_.data(), kBlockFrames);
    if (got < kBlockFrames) {
        if (sf_error(file_.get()) != SF_ERR_NO_ERROR) {
            return make_error_code(errc::file_read_failed);
        }
        end_of_file_ = true;
    }
    std::size_t count = downmix(static_cast<std::size_t>(got));

    // Once at the end, push the resampler's delay worth of zeros so its tail comes out.
    if (end_of_file_ && !flushed_) {
        flushed_ = true;
        const auto tail = static_cast<std::size_t>(resampler_.latency()) *
                          static_cast<std::size_t>(info_.sample_rate) /
                          static_cast<std::size_t>(config_.output_rate);
        const std::size_t zeros = std::min(tail, mono_.size() - count);
        std::fill(mono_.begin() + static_cast<long>(count),
                  mono_.begin() + static_cast<long>(count + zeros), 0.0f);
        count += zeros;
    }
    resample(count);
    return {};
}

std::size_t FileSource::downmix(std::size_t frames) {
    // One chosen channel as it is, or the average of all, so a stereo file keeps its level.
    const auto channels = static_cast<std::size_t>(info_.channels);
    if (config_.channel >= 0) {
        const auto pick = static_cast<std::size_t>(config_.channel);
        for (std::size_t i = 0; i < frames; ++i) {
            mono_[i] = interleaved_[i * channels + pick];
        }
        return frames;
    }
    for (std::size_t i = 0; i < frames; ++i) {
        float sum = 0.0f;
        for (std::size_t c = 0; c < channels; ++c) {
            sum += interleaved_[i * channels + c];
        }
        mono_[i] = sum / static_cast<float>(channels);
    }
    return frames;
}

void FileSource::resample(std::size_t count) {
    // Drop what was delivered, then append the converted block.
    if (pending_pos_ > 0) {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(pending_pos_));
        pending_pos_ = 0;
    }
    std::size_t offset = 0;
    while (offset < count) {
        const std::size_t start = pending_.size();
        pending_.resize(start + resampler_.output_size(count - offset) + 16);
        std::size_t consumed = 0, produced = 0;
        resampler_.process(Span<const float>(mono_.data() + offset, count - offset),
                           Span<float>(pending_.data() + start, pending_.size() - start), consumed,
                           produced);
        pending_.resize(start + produced);
        offset += consumed;
        if (consumed == 0 && produced == 0) {
            break;
        }
    }
}

std::error_code FileSource::read_frame(Span<float> out, std::size_t& samples) {
    samples = 0;
    if (out.size() != config_.frame_samples) {
        return make_error_code(errc::invalid_argument);
    }

    // Decode until a whole frame is pending or the file ends.
    while (pending_.size() - pending_pos_ < config_.frame_samples && !end_of_file_) {
        if (auto error = refill()) {
            return error;
        }
    }
    samples = std::min(config_.frame_samples, pending_.size() - pending_pos_);
    std::memcpy(out.data(), pending_.data() + pending_pos_, samples * sizeof(float));
    std::fill(out.begin() + samples, out.end(), 0.0f);
    pending_pos_ += samples;

    // Wait for this frame's absolute deadline, so sleep overshoot never accumulates.
    if (config_.pace == Pace::realtime && samples > 0) {
        if (!clock_started_) {
            restart_clock();
        }
        std::this_thread::sleep_until(next_deadline());
    }
    if (samples > 0) {
        ++frames_delivered_;
    }
    return {};
}

void FileSource::restart_clock() {
    clock_start_ = std::chrono::steady_clock::now();
    frames_delivered_ = 0;
    clock_started_ = true;
}

std::chrono::steady_clock::time_point FileSource::next_deadline() const {
    // Integer nanoseconds from the start, computed fresh for each frame: no rounding drift.
    const long long ns = frames_delivered_ * static_cast<long long>(config_.frame_samples) *
                         1'000'000'000LL / config_.output_rate;
    return clock_start_ + std::chrono::nanoseconds(ns);
}

}  // namespace olympus::audio
