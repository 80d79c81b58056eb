// libFuzzer target: the voice session's inbound path (Connection's frame parser, then
// VoiceSession's dispatcher: session_started and resume, transcripts, final_response with an
// audio_url, interrupt, session_ended, error, and binary reply audio into the jitter buffer or
// the PCM ring) fed through a transport without a socket. Each input is the sequence of frames
// a voice server sends (frame_records.hpp), from the first; the seeds are a real session's.
// audio_url replies are never fetched (the grace period outlasts the run), so nothing leaves the
// process. Fuzzer thread plus the session's io, source, playout and fetch threads.
#include <chrono>
#include <memory>
#include <thread>

#include "olympus/log.hpp"
#include "olympus/voice_session.hpp"

#include "fake_transport.hpp"
#include "frame_records.hpp"

namespace {

// A few frames of quiet from memory, so that the uplink (outage buffer, resume re-sends) runs.
class QuietSource final : public olympus::VoiceSource {
public:
    olympus::SourceRead read(olympus::audio::Span<float> frame,
                             Clock::time_point& captured) override {
        if (left_ == 0 || stopped_.load()) {
            return olympus::SourceRead::end;
        }
        --left_;
        std::fill(frame.begin(), frame.end(), 0.001f);
        captured = Clock::now();
        return olympus::SourceRead::frame;
    }
    bool realtime() const override { return false; }
    void stop() override { stopped_.store(true); }

private:
    int left_ = 5;
    std::atomic<bool> stopped_{false};
};

olympus::VoiceSessionOptions options() {
    olympus::VoiceSessionOptions o;
    o.connection.url = "ws://127.0.0.1:9/stream";
    o.connection.token_provider = std::make_shared<olympus::FixedTokenProvider>("a.b.c");
    o.audio_url_grace = std::chrono::hours(1);
    o.outage_buffer = std::chrono::milliseconds(100);
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    olympus::log::set_level("off");
    olympus::fuzz::FakeTransport::install();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto opts = options();
    olympus::VoiceSession session(opts, std::make_unique<QuietSource>(), nullptr, nullptr);
    session.start();

    // The link opens and start_session goes out before the first fuzzed frame.
    auto* transport = olympus::fuzz::FakeTransport::current();
    transport->run_on_io([] {});

    // Every frame in order on the io thread; a second pass lets posted work (uplink drains,
    // barge-in reports from the playout thread) interleave with a second half.
    auto records = olympus::fuzz::split_records(data, size);
    auto half = records.size() / 2;
    transport->run_on_io([&] {
        for (std::size_t i = 0; i < half; ++i) {
            transport->deliver(records[i].binary, std::string(records[i].payload));
        }
    });
    transport->run_on_io([&] {
        for (std::size_t i = half; i < records.size(); ++i) {
            transport->deliver(records[i].binary, std::string(records[i].payload));
        }
    });
    (void)session.stats();
    return 0;
}
