// libsndfile WAV writer; see wav_sink.hpp. One writing thread.
#include "olympus/audio/wav_sink.hpp"

#include <sndfile.h>

namespace olympus::audio {

void WavSink::Closer::operator()(sf_private_tag* file) const noexcept {
    sf_close(file);
}

WavSink::WavSink(std::unique_ptr<sf_private_tag, Closer> file, std::string path)
    : file_(std::move(file)), path_(std::move(path)) {}

Result<WavSink> WavSink::create(const std::string& path, int sample_rate) {
    if (sample_rate < 8000 || sample_rate > 192000) {
        return Error{make_error_code(errc::unsupported_rate),
                     "file=" + path + " rate=" + std::to_string(sample_rate)};
    }
    SF_INFO info{};
    info.samplerate = sample_rate;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    std::unique_ptr<sf_private_tag, Closer> file(sf_open(path.c_str(), SFM_WRITE, &info));
    if (!file) {
        return Error{make_error_code(errc::file_write_failed),
                     "file=" + path + " (" + sf_strerror(nullptr) + ")"};
    }
    // Clip instead of wrapping around when a float sample exceeds full scale.
    sf_command(file.get(), SFC_SET_CLIPPING, nullptr, SF_TRUE);
    return WavSink(std::move(file), path);
}

std::error_code WavSink::write(Span<const float> samples) {
    if (!file_) {
        return make_error_code(errc::file_write_failed);
    }
    const auto count = static_cast<sf_count_t>(samples.size());
    const sf_count_t written = sf_write_float(file_.get(), samples.data(), count);
    written_ += written;
    return written == count ? std::error_code{} : make_error_code(errc::file_write_failed);
}

std::error_code WavSink::close() {
    if (!file_) {
        return {};
    }
    const int status = sf_close(file_.release());
    return status == 0 ? std::error_code{} : make_error_code(errc::file_write_failed);
}

}  // namespace olympus::audio
