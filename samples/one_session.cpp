// The smallest complete use of olympus::VoiceSession: streams one recorded order to the voice
// stream and writes the agent's reply to a WAV file. With no URL in $OLYMPUS_URL it starts the
// bundled emulator. Main thread; the session's events arrive on its io thread.
//
//   one_session samples/orders/double-cheeseburger.wav reply.wav
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "olympus/emulator/emulator.hpp"
#include "olympus/voice_session.hpp"

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s ORDER.wav REPLY.wav\n", argv[0]);
        return 2;
    }

    // Where to connect: $OLYMPUS_URL and $OLYMPUS_TOKEN, else a local emulator.
    std::unique_ptr<olympus::emulator::Emulator> emulator;
    olympus::VoiceSessionOptions options;
    const char* url = std::getenv("OLYMPUS_URL");
    const char* token = std::getenv("OLYMPUS_TOKEN");
    if (url == nullptr || token == nullptr) {
        emulator = std::make_unique<olympus::emulator::Emulator>();
        emulator->start();
        options.connection.url = emulator->voice_url();
        options.connection.token_provider =
            std::make_shared<olympus::FixedTokenProvider>(emulator->mint_token());
    } else {
        options.connection.url = url;
        options.connection.token_provider = std::make_shared<olympus::FixedTokenProvider>(token);
    }

    // The customer lets the greeting finish before speaking.
    options.greeting_wait = std::chrono::seconds(10);

    // The order, paced in real time, and a WAV file for the reply; both fail before connecting.
    auto source = olympus::FileVoiceSource::open(argv[1], options.audio.sample_rate,
                                                 options.audio.frame_ms, true);
    auto sink = olympus::WavVoiceSink::create(argv[2], options.audio.sample_rate);
    if (!source || !sink) {
        std::fprintf(stderr, "%s\n", (!source ? source.error() : sink.error()).what().c_str());
        return 2;
    }

    // Print what the customer and the agent said.
    auto on_event = [](const olympus::VoiceEvent& event) {
        if (event.kind == olympus::VoiceEvent::Kind::final_transcript ||
            event.kind == olympus::VoiceEvent::Kind::final_response) {
            std::printf("%s: %s\n", olympus::to_string(event.kind), event.text.c_str());
        }
    };

    // Run the session: stream the order, let the reply play out, end it.
    olympus::VoiceSession session(options, std::move(source).value(), std::move(sink).value(),
                                  on_event);
    session.start();
    session.wait_source_done(60s);
    session.wait_replies_done(1500ms, 20s);
    session.end();
    session.wait_for(olympus::VoiceState::ended, 3s);
    auto stats = session.stats();
    std::printf("sent %llu frames; played %llu reply frames; error: %s\n",
                static_cast<unsigned long long>(stats.frames_sent),
                static_cast<unsigned long long>(stats.frames_played),
                stats.error ? stats.error.message().c_str() : "none");
    return stats.error ? 1 : 0;
}
