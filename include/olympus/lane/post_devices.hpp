// The sound hardware of a drive-thru post, as the lane's audio pipeline uses it: a microphone
// and a speaker opened together (PostIo), and what opens them (PostDevices). PortAudioPost opens
// real devices through PortAudio; tests plug in a simulated box instead.
//
// Threads: PostDevices::open() and the PostIo destructor on the lane's device thread (they may
// block inside the driver); read_frame() on the audio worker; write(), fade_out_and_flush() and
// the counters on any thread (the playout thread, the audio worker).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "olympus/audio/error.hpp"
#include "olympus/audio/playback_stream.hpp"
#include "olympus/audio/span.hpp"
#include "olympus/audio/stream_stats.hpp"

namespace olympus::lane {

/// A running microphone and speaker pair. Samples on the pipeline side are mono at the lane's
/// rate; the destructor stops and closes both (and may block: the lane closes it bounded).
class PostIo {
public:
    virtual ~PostIo() = default;

    /// Audio worker. Fills `out` with microphone samples unless `timeout` passes first;
    /// returns how many were written.
    virtual std::size_t read_frame(audio::Span<float> out, std::chrono::milliseconds timeout) = 0;

    /// Queues speaker samples; returns how many were taken (fewer when the queue is full).
    /// Never blocks.
    virtual std::size_t write(audio::Span<const float> pcm) noexcept = 0;
    /// Barge-in: fade the speaker out within a few ms and drop what is queued.
    virtual void fade_out_and_flush() noexcept = 0;
    virtual bool flush_done() const noexcept = 0;
    /// Speaker samples played so far, and queued now, at the lane's rate.
    virtual std::uint64_t played_samples() const noexcept = 0;
    virtual std::uint64_t queued_samples() const noexcept = 0;

    /// The devices' own counters; a device whose callback count stops moving has stalled.
    virtual audio::StreamStats capture_stats() const noexcept = 0;
    virtual audio::StreamStats playback_stats() const noexcept = 0;

    /// Rate of the samples handed to the far-end tap (the speaker device's rate).
    virtual int far_end_rate() const noexcept = 0;
    /// Output plus input latency the devices report, ms.
    virtual double reported_delay_ms() const noexcept = 0;
    /// "input=<name> output=<name>", for log lines.
    virtual std::string describe() const = 0;
};

/// Opens the post's devices, each time afresh (after a loss the device may be another one).
class PostDevices {
public:
    virtual ~PostDevices() = default;
    /// Opens and starts microphone and speaker at `rate` (the lane's rate). `far_end` sees
    /// exactly the samples handed to the speaker, from the speaker's callback. Errors name
    /// the device.
    virtual audio::Result<std::unique_ptr<PostIo>> open(int rate, audio::PlaybackTap far_end) = 0;
    /// The close of a lost PostIo is stuck in the driver: release it if the driver allows
    /// (true), e.g. because its sound server is known to have died. Called from the lane's
    /// device thread while the close is still waiting on another thread.
    virtual bool release_stuck_close() { return false; }
};

/// Calls into libjack that failed because the JACK server had died while PortAudio cleaned up,
/// and that the lane reported to PortAudio as successful (jack_workaround.cpp); any thread.
std::uint64_t jack_failures_survived();

/// When the JACK server is known to be gone (a new client finds no server, or a restarted one
/// that does not know PortAudio's ports), tells PortAudio so
/// through the shutdown callbacks it registered, which releases a close waiting for the dead
/// server; true when it did. Any thread but an audio callback.
bool release_dead_jack_server();

/// The real devices through PortAudio, chosen as `olympus-voice devices` lists them. Each open
/// starts PortAudio afresh when nothing else holds it, so a restarted sound server (JACK) and
/// replugged devices are seen again; closing the streams of a server that died does not abort
/// the process (jack_workaround.cpp).
class PortAudioPost final : public PostDevices {
public:
    /// "" picks the default device; a number is an index; else part of the device name.
    PortAudioPost(std::string input, std::string output);
    audio::Result<std::unique_ptr<PostIo>> open(int rate, audio::PlaybackTap far_end) override;
    bool release_stuck_close() override { return release_dead_jack_server(); }

private:
    std::string input_;
    std::string output_;
};

}  // namespace olympus::lane
