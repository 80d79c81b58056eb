// Error categories of the audio pipeline; see error.hpp. Any thread.
#include "olympus/audio/error.hpp"

#include <opus.h>
#include <portaudio.h>
#include <sndfile.h>

namespace olympus::audio {
namespace {

class AudioCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "olympus.audio"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::invalid_argument:
                return "invalid argument";
            case errc::unsupported_rate:
                return "unsupported sample rate";
            case errc::unsupported_channels:
                return "unsupported channel count";
            case errc::file_open_failed:
                return "cannot open audio file";
            case errc::file_read_failed:
                return "cannot read audio file (corrupt or truncated)";
            case errc::file_write_failed:
                return "cannot write audio file";
            case errc::device_not_found:
                return "no such audio device";
            case errc::device_busy:
                return "audio device unavailable or busy";
            case errc::corrupt_packet:
                return "corrupt Opus packet";
            case errc::buffer_too_small:
                return "output buffer too small";
            case errc::resampler_failed:
                return "resampler failed";
        }
        return "unknown audio error " + std::to_string(value);
    }
};

class OpusCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "opus"; }
    std::string message(int value) const override { return opus_strerror(value); }
};

class PortAudioCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "portaudio"; }
    std::string message(int value) const override { return Pa_GetErrorText(value); }
};

class SndfileCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "sndfile"; }
    std::string message(int value) const override { return sf_error_number(value); }
};

}  // namespace

const std::error_category& audio_category() noexcept {
    static const AudioCategory category;
    return category;
}

const std::error_category& opus_category() noexcept {
    static const OpusCategory category;
    return category;
}

const std::error_category& portaudio_category() noexcept {
    static const PortAudioCategory category;
    return category;
}

const std::error_category& sndfile_category() noexcept {
    static const SndfileCategory category;
    return category;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), audio_category()};
}

std::error_code make_opus_error(int opus_error) noexcept {
    return {opus_error, opus_category()};
}

std::error_code make_portaudio_error(int pa_error) noexcept {
    return {pa_error, portaudio_category()};
}

}  // namespace olympus::audio
