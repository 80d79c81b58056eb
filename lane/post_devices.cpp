// The post's devices over PortAudio; see post_devices.hpp. open() and destruction on the lane's
// device thread; the rest as the interface says.
#include "olympus/lane/post_devices.hpp"

#include "olympus/audio/capture_stream.hpp"
#include "olympus/audio/device_stream_config.hpp"
#include "olympus/log.hpp"

namespace olympus::lane {
namespace {

class PortAudioIo final : public PostIo {
public:
    PortAudioIo(std::unique_ptr<audio::CaptureStream> capture,
                std::unique_ptr<audio::PlaybackStream> playback, int rate)
        : capture_(std::move(capture)), playback_(std::move(playback)), rate_(rate) {}

    ~PortAudioIo() override {
        // Speaker first: the far-end tap is the last thing to stop.
        const auto survived = jack_failures_survived();
        playback_.reset();
        capture_.reset();
        if (jack_failures_survived() != survived) {
            log::get("lane.audio")
                ->warn(
                    "the sound server was gone while the devices closed; its ports went with it "
                    "calls_survived={}",
                    jack_failures_survived() - survived);
        }
    }

    std::size_t read_frame(audio::Span<float> out, std::chrono::milliseconds timeout) override {
        return capture_->read_frame(out, timeout);
    }

    std::size_t write(audio::Span<const float> pcm) noexcept override {
        return playback_->write(pcm);
    }

    void fade_out_and_flush() noexcept override { playback_->fade_out_and_flush(); }
    bool flush_done() const noexcept override { return playback_->flush_done(); }

    std::uint64_t played_samples() const noexcept override {
        return to_lane(playback_->played_samples());
    }
    std::uint64_t queued_samples() const noexcept override { return to_lane(playback_->queued()); }

    audio::StreamStats capture_stats() const noexcept override { return capture_->stats(); }
    audio::StreamStats playback_stats() const noexcept override { return playback_->stats(); }
    int far_end_rate() const noexcept override { return playback_->stats().device_rate; }

    double reported_delay_ms() const noexcept override {
        return capture_->stats().latency_ms + playback_->stats().latency_ms;
    }

    std::string describe() const override {
        return "input=\"" + capture_->device().name + "\" output=\"" + playback_->device().name +
               "\"";
    }

private:
    std::uint64_t to_lane(std::uint64_t device_samples) const noexcept {
        const auto device_rate = static_cast<std::uint64_t>(playback_->stats().device_rate);
        return device_rate == 0 ? 0
                                : device_samples * static_cast<std::uint64_t>(rate_) / device_rate;
    }

    std::unique_ptr<audio::CaptureStream> capture_;
    std::unique_ptr<audio::PlaybackStream> playback_;
    int rate_;
};

}  // namespace

PortAudioPost::PortAudioPost(std::string input, std::string output)
    : input_(std::move(input)), output_(std::move(output)) {}

audio::Result<std::unique_ptr<PostIo>> PortAudioPost::open(int rate, audio::PlaybackTap far_end) {
    // Over a second of room in both rings: a loaded machine may not run the workers for a while.
    audio::DeviceStreamConfig config;
    config.codec_rate = rate;
    config.ring_samples = 65536;

    // Microphone, then speaker; both must run or neither does.
    config.device = input_;
    auto capture = audio::CaptureStream::open(config);
    if (!capture) {
        return capture.error();
    }
    config.device = output_;
    auto playback = audio::PlaybackStream::open(config, far_end);
    if (!playback) {
        return playback.error();
    }
    if (auto ec = capture.value()->start()) {
        return audio::Error{ec, "capture device=\"" + capture.value()->device().name + "\""};
    }
    if (auto ec = playback.value()->start()) {
        return audio::Error{ec, "playback device=\"" + playback.value()->device().name + "\""};
    }
    return std::unique_ptr<PostIo>(
        new PortAudioIo(std::move(capture).value(), std::move(playback).value(), rate));
}

}  // namespace olympus::lane
