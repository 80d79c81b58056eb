// Error codes of the audio pipeline, and a small result type that carries the code together
// with the file, device or value it is about. Any thread; nothing here allocates except the
// context strings, which are only built at setup time, never on the audio callback.
#pragma once

#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace olympus::audio {

/// Failures of the pipeline itself (bad input, missing device). Codec and device library
/// failures use opus_category() and portaudio_category(), whose message() is the library's.
enum class errc {
    invalid_argument = 1,  ///< a value outside its legal range (rate, frame size, bitrate...)
    unsupported_rate,      ///< a sample rate the codec or device cannot use
    unsupported_channels,  ///< a channel count that cannot be used
    file_open_failed,      ///< the file is missing, unreadable or not an audio file
    file_read_failed,      ///< the file is corrupt or truncated
    file_write_failed,     ///< the output file could not be written
    device_not_found,      ///< no device matches the index or name
    device_busy,           ///< the device exists but cannot be opened now
    corrupt_packet,        ///< an Opus packet that does not parse
    buffer_too_small,      ///< the caller's output buffer cannot hold the result
    resampler_failed,      ///< speexdsp refused the conversion
};

const std::error_category& audio_category() noexcept;

/// Error values are Opus's own (OPUS_BAD_ARG, ...); message() is opus_strerror().
const std::error_category& opus_category() noexcept;

/// Error values are PortAudio's PaError values; message() is Pa_GetErrorText().
const std::error_category& portaudio_category() noexcept;

/// Error values are libsndfile's (SF_ERR_*); message() is sf_error_number().
const std::error_category& sndfile_category() noexcept;

std::error_code make_error_code(errc e) noexcept;
std::error_code make_opus_error(int opus_error) noexcept;
std::error_code make_portaudio_error(int pa_error) noexcept;

/// An error code plus what it is about, e.g. "file=/tmp/x.wav".
struct Error {
    std::error_code code;
    std::string context;

    /// "<context>: <code message>", fit for a log line or a CLI message.
    std::string what() const {
        return context.empty() ? code.message() : context + ": " + code.message();
    }
};

/// Either a value or an Error. Setup-time only (it may allocate).
template <typename T>
class Result {
public:
    Result(T value) : state_(std::move(value)) {}
    Result(Error error) : state_(std::move(error)) {}

    explicit operator bool() const noexcept { return state_.index() == 0; }
    bool ok() const noexcept { return state_.index() == 0; }

    /// The value; only call when ok().
    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    /// The error; only call when !ok().
    const Error& error() const { return std::get<1>(state_); }

private:
    std::variant<T, Error> state_;
};

}  // namespace olympus::audio

template <>
struct std::is_error_code_enum<olympus::audio::errc> : std::true_type {};
