// Uplink frame accounting for the reliability tests and the soak; see frame_audit.hpp.
#include "frame_audit.hpp"

#include <map>
#include <random>
#include <stdexcept>

#include "olympus/audio/opus_encoder.hpp"
#include "olympus/audio/wav_sink.hpp"
#include "olympus/emulator/emulator.hpp"

#include "audio/speech.hpp"
#include "support/test_env.hpp"

namespace olympus::test {

void DeliveredFrames::add(audio::Span<const float> frame) {
    std::lock_guard lock(mutex_);
    frames_.emplace_back(frame.begin(), frame.end());
}

std::vector<std::vector<float>> DeliveredFrames::frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
}

SourceRead RecordingVoiceSource::read(audio::Span<float> frame, Clock::time_point& captured) {
    auto result = inner_->read(frame, captured);
    if (result == SourceRead::frame) {
        delivered_->add(audio::Span<const float>(frame.data(), frame.size()));
    }
    return result;
}

const std::string& noisy_order_wav() {
    static const std::string path = [] {
        // Room noise from a fixed seed: quiet, but never the same frame twice.
        constexpr int kRate = 48000;
        std::mt19937 rng(42);
        std::uniform_real_distribution<float> noise(-0.0017f, 0.0017f);
        auto room = [&](int ms) {
            std::vector<float> out(static_cast<std::size_t>(kRate / 1000 * ms));
            for (auto& x : out) {
                x = noise(rng);
            }
            return out;
        };

        // Lead-in, speech with the room under it, tail.
        auto pcm = room(1500);
        auto speech = audio::test::speech(kRate);
        auto under = room(static_cast<int>(speech.size() * 1000 / kRate) + 1);
        for (std::size_t i = 0; i < speech.size(); ++i) {
            pcm.push_back(speech[i] + under[i]);
        }
        auto tail = room(1000);
        pcm.insert(pcm.end(), tail.begin(), tail.end());

        auto file = make_temp_dir("olympus-noisy-order") + "/order.wav";
        auto sink = audio::WavSink::create(file, kRate);
        if (!sink || sink.value().write(pcm) || sink.value().close()) {
            throw std::runtime_error("cannot write " + file);
        }
        return file;
    }();
    return path;
}

std::vector<std::uint64_t> uplink_digests(const std::vector<std::vector<float>>& frames,
                                          const VoiceSessionOptions& options) {
    // The session's encoder settings; libopus is deterministic, so the packets are the same.
    if (options.audio.encoding != AudioFormat::Encoding::opus) {
        throw std::invalid_argument("uplink_digests: only Opus sessions are supported");
    }
    audio::EncoderConfig config;
    config.sample_rate = options.audio.sample_rate;
    config.frame_ms = options.audio.frame_ms;
    config.bitrate = options.opus_bitrate;
    auto encoder = audio::OpusEncoder::create(config);
    if (!encoder) {
        throw std::runtime_error(encoder.error().what());
    }
    std::vector<std::uint64_t> out;
    audio::EncodedFrame packet;
    for (const auto& frame : frames) {
        if (encoder.value().encode(audio::Span<const float>(frame.data(), frame.size()), packet)) {
            throw std::runtime_error("uplink_digests: encode failed");
        }
        out.push_back(emulator::frame_digest(
            std::string_view(reinterpret_cast<const char*>(packet.bytes.data()), packet.size)));
    }
    return out;
}

std::vector<std::vector<float>> file_frames(const std::string& path,
                                            const VoiceSessionOptions& options,
                                            std::chrono::milliseconds trailing_silence) {
    auto source = FileVoiceSource::open(path, options.audio.sample_rate, options.audio.frame_ms,
                                        false, trailing_silence);
    if (!source) {
        throw std::runtime_error(source.error().what());
    }
    std::vector<std::vector<float>> frames;
    std::vector<float> frame(static_cast<std::size_t>(options.audio.frame_samples()));
    VoiceSource::Clock::time_point captured;
    while (source.value()->read(frame, captured) == SourceRead::frame) {
        frames.push_back(frame);
    }
    return frames;
}

FrameAudit audit_frames(const std::vector<std::uint64_t>& expected,
                        const std::vector<std::uint64_t>& received) {
    // Where each produced frame sits; equal packets would make the counts ambiguous.
    FrameAudit audit;
    audit.expected = expected.size();
    audit.received = received.size();
    std::map<std::uint64_t, std::size_t> index;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        audit.distinct = index.emplace(expected[i], i).second && audit.distinct;
    }
    auto note = [&](const std::string& what) {
        if (audit.detail.size() < 400) {
            audit.detail += what + "; ";
        }
    };

    // Each received frame: foreign, a repeat, out of order, or the next one expected.
    std::vector<bool> seen(expected.size(), false);
    std::size_t highest = 0;
    bool any = false;
    for (std::size_t at = 0; at < received.size(); ++at) {
        auto it = index.find(received[at]);
        if (it == index.end()) {
            ++audit.foreign;
            note("received frame " + std::to_string(at) + " was never produced");
            continue;
        }
        auto i = it->second;
        if (seen[i]) {
            ++audit.duplicated;
            note("frame " + std::to_string(i) + " again at " + std::to_string(at));
            continue;
        }
        seen[i] = true;
        if (any && i < highest) {
            ++audit.reordered;
            note("frame " + std::to_string(i) + " after frame " + std::to_string(highest));
        }
        highest = any ? std::max(highest, i) : i;
        any = true;
    }

    // What never came, in runs.
    for (std::size_t i = 0; i < expected.size(); ++i) {
        if (seen[i]) {
            continue;
        }
        ++audit.lost;
        if (i == 0 || seen[i - 1]) {
            ++audit.lost_runs;
            auto end = i;
            while (end + 1 < expected.size() && !seen[end + 1]) {
                ++end;
            }
            note("lost frames " + std::to_string(i) + ".." + std::to_string(end));
        }
    }
    return audit;
}

}  // namespace olympus::test
