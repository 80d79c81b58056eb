// A drive-thru post in software for the lane tests: what the lane hands to the speaker goes
// through an EchoPath (delay, attenuation, reflections of the box) back into the microphone,
// mixed with the customer's speech the test scripts. A thread of its own paces both devices in
// real time, 10 ms at a time, like a sound card. Test threads script it through the shared
// control; the lane's threads use the PostDevices / PostIo side.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "olympus/audio/echo_path.hpp"
#include "olympus/lane/post_devices.hpp"

namespace olympus::lane::test {

/// What the test controls and observes. Any thread.
class PostControl {
public:
    /// The box: the speaker's sound reaches the microphone `delay_ms` later, `gain_db` down.
    struct Box {
        bool echo = true;
        double delay_ms = 30;
        double gain_db = -6;
    };
    explicit PostControl(Box box) : box_(box) {}

    /// The customer speaks `pcm` (mono at the lane's rate) from the next 10 ms on.
    void say(const std::vector<float>& pcm);
    /// True while the customer's scripted speech is still playing.
    bool speaking() const;

    /// Everything the speaker played so far, and everything the microphone picked up.
    std::vector<float> speaker() const;
    std::vector<float> microphone() const;
    /// Samples the speaker played since `from` that were louder than -50 dBFS in 10 ms blocks.
    std::size_t loud_speaker_samples(std::size_t from = 0) const;

    /// Opens fail from now on (the device is unplugged) until set back.
    void set_unplugged(bool unplugged) { unplugged_.store(unplugged); }
    /// The running device stops calling back (a stalled driver) until set back.
    void set_stalled(bool stalled) { stalled_.store(stalled); }
    /// Opens so far.
    int opens() const { return opens_.load(); }

    const Box& box() const { return box_; }

private:
    friend class SimulatedIo;
    friend class SimulatedPost;

    const Box box_;
    mutable std::mutex mutex_;  // guards the vectors and the queue
    std::deque<float> customer_;
    std::vector<float> speaker_log_;
    std::vector<float> mic_log_;
    std::atomic<bool> unplugged_{false}, stalled_{false};
    std::atomic<int> opens_{0};
};

/// The PostDevices side, handed to the lane.
class SimulatedPost final : public PostDevices {
public:
    explicit SimulatedPost(std::shared_ptr<PostControl> control) : control_(std::move(control)) {}
    audio::Result<std::unique_ptr<PostIo>> open(int rate, audio::PlaybackTap far_end) override;

private:
    std::shared_ptr<PostControl> control_;
};

}  // namespace olympus::lane::test
