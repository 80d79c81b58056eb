// libsndfile WAV writer; see wav_sink.hpp. One writing thread.
#include "olympus/audio/wav_sink.hpp"

#include <sndfile.h>

namespace olympus::audio {

void WavSink::Closer::operator()(sf_private_tag* file) const noexcept {
    sf_close(file);
}

WavSink::WavSink(std::unique_ptr<sf_private_tag, Closer> file, std::string path, int channels)
    : file_(std::move(file)), path_(std::move(path)), channels_(channels) {}

Result<WavSink> WavSink::create(const std::string& path, int sample_rate, int channels) {
    if (sample_rate < 8000 || sample_rate > 192000) {
        return Error{make_error_code(errc::unsupported_rate),
                     "file=" + path + " rate=" + std::to_string(sample_rate)};
    }
    if (channels < 1 || channels > 8) {
        return Error{make_error_code(errc::unsupported_channels),
                     "file=" + path + " channels=" + std::to_string(channels)};
    }
    SF_INFO info{};
    info.samplerate = sample_rate;
    info.channels = channels;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    std::unique_ptr<sf_private_tag, Closer> file(sf_open(path.c_str(), SFM_WRITE, &info));
    if (!file) {
        return Error{make_error_code(errc::file_write_failed),
                     "file=" + path + " (" + sf_strerror(nullptr) + ")"};
    }
    // Clip instead of wrapping around when a float sample exceeds full scale.
    sf_command(file.get(), SFC_SET_CLIPPING, nullptr, SF_TRUE);
    return WavSink(std::move(file), path, channels);
}

std::error_code WavSink::set_tags(const std::string& software, const std::string& comment) {
    if (!file_) {
        return make_error_code(errc::file_write_failed);
    }
    const bool ok = sf_set_string(file_.get(), SF_STR_SOFTWARE, software.c_str()) == 0 &&
                    sf_set_string(file_.get(), SF_STR_COMMENT, comment.c_str()) == 0;
    return ok ? std::error_code{} : make_error_code(errc::file_write_failed);
}

std::error_code WavSink::write(Span<const float> samples) {
    if (!file_ || samples.size() % static_cast<std::size_t>(channels_) != 0) {
        return make_error_code(!file_ ? errc::file_write_failed : errc::invalid_argument);
    }
    const auto count = static_cast<sf_count_t>(samples.size());
    const sf_count_t written = sf_write_float(file_.get(), samples.data(), count);
    written_ += written;
    return written == count ? std::error_code{} : make_error_code(errc::file_write_failed);
}

std::string WavSink::last_error() const {
    return file_ ? sf_strerror(file_.get()) : "file closed";
}

std::error_code WavSink::close() {
    if (!file_) {
        return {};
    }
    const int status = sf_close(file_.release());
    return status == 0 ? std::error_code{} : make_error_code(errc::file_write_failed);
}

}  // namespace olympus::audio
