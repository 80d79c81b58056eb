// Records the seed corpora of the fuzz targets from real traffic: a gateway client and a voice
// stream talk to the emulator through the fault proxy, whose taps copy every WebSocket frame
// in both directions. Writes fuzz/corpus/<target>/ files; run once by hand when the protocol
// changes (`build-fuzz/fuzz/record_corpus fuzz/corpus`). Main thread plus the io threads of
// the client, proxy and emulator.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "olympus/audio/opus_encoder.hpp"
#include "olympus/client.hpp"
#include "olympus/emulator/emulator.hpp"

#include "frame_records.hpp"
#include "support/fault_proxy.hpp"
#include "support/test_env.hpp"
#include "support/ws_test_client.hpp"

namespace {

using namespace std::chrono_literals;
using olympus::test::Direction;

struct WireFrame {
    bool binary;
    std::string payload;
};

// Splits one direction of one connection into WebSocket frames (masked or not).
class FrameSplitter {
public:
    void feed(std::string_view bytes, std::vector<WireFrame>& out) {
        buffer_.append(bytes);
        if (!upgraded_) {
            auto end = buffer_.find("\r\n\r\n");
            if (end == std::string::npos) {
                return;
            }
            buffer_.erase(0, end + 4);
            upgraded_ = true;
        }
        while (buffer_.size() >= 2) {
            auto byte = [&](std::size_t i) { return static_cast<unsigned char>(buffer_[i]); };
            int opcode = byte(0) & 0x0f;
            bool masked = (byte(1) & 0x80) != 0;
            std::uint64_t length = byte(1) & 0x7f;
            std::size_t header = 2;
            if (length >= 126) {
                std::size_t n = length == 126 ? 2 : 8;
                if (buffer_.size() < 2 + n) {
                    return;
                }
                length = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    length = (length << 8) | byte(2 + i);
                }
                header += n;
            }
            std::size_t mask_at = header;
            header += masked ? 4 : 0;
            if (buffer_.size() < header + length) {
                return;
            }
            std::string payload = buffer_.substr(header, static_cast<std::size_t>(length));
            if (masked) {
                for (std::size_t i = 0; i < payload.size(); ++i) {
                    payload[i] = static_cast<char>(payload[i] ^ buffer_[mask_at + (i % 4)]);
                }
            }
            if (opcode == 1 || opcode == 2) {
                out.push_back({opcode == 2, std::move(payload)});
            }
            buffer_.erase(0, header + static_cast<std::size_t>(length));
        }
    }

private:
    bool upgraded_ = false;
    std::string buffer_;
};

// Every frame of every proxied connection, by direction.
class Recording {
public:
    void feed(Direction d, std::uint64_t connection, std::string_view bytes) {
        std::lock_guard lock(mutex_);
        auto key = std::make_pair(connection, d == Direction::to_server);
        splitters_[key].feed(bytes, frames_[key]);
    }
    // Frames of `connection` in one direction.
    std::vector<WireFrame> frames(std::uint64_t connection, bool to_server) {
        std::lock_guard lock(mutex_);
        return frames_[{connection, to_server}];
    }

private:
    std::mutex mutex_;
    std::map<std::pair<std::uint64_t, bool>, FrameSplitter> splitters_;
    std::map<std::pair<std::uint64_t, bool>, std::vector<WireFrame>> frames_;
};

void write(const std::filesystem::path& path, const std::string& bytes) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
}

// Records as [kind][len][payload], at most `per_file` frames per file.
void write_records(const std::filesystem::path& dir, const std::string& stem, char prefix,
                   const std::vector<WireFrame>& frames, std::size_t per_file) {
    for (std::size_t start = 0, n = 0; start < frames.size(); start += per_file, ++n) {
        std::string bytes;
        if (prefix != 0) {
            bytes += prefix;
        }
        for (std::size_t i = start; i < std::min(frames.size(), start + per_file); ++i) {
            olympus::fuzz::append_record(bytes, frames[i].binary, frames[i].payload);
        }
        write(dir / (stem + "-" + std::to_string(n)), bytes);
    }
}

// `frames` 20 ms Opus frames at real-time pace, as a microphone would send them: a 1 s tone,
// then silence, which ends one utterance.
void send_tone(olympus::test::WsTestClient& voice, int frames) {
    auto encoder = olympus::audio::OpusEncoder::create({});
    std::vector<float> pcm(960);
    olympus::audio::EncodedFrame frame;
    for (int i = 0; i < frames; ++i) {
        for (std::size_t s = 0; s < pcm.size(); ++s) {
            double t = static_cast<double>(i * 960 + static_cast<int>(s)) / 48000.0;
            pcm[s] = i < 50 ? static_cast<float>(0.3 * std::sin(2 * M_PI * 220 * t)) : 0.0f;
        }
        encoder.value().encode({pcm.data(), pcm.size()}, frame);
        voice.send_binary(
            std::string(reinterpret_cast<const char*>(frame.bytes.data()), frame.size));
        std::this_thread::sleep_for(20ms);
    }
}

}  // namespace

int main(int argc, char** argv) {
    namespace fs = std::filesystem;
    fs::path out = argc > 1 ? argv[1] : "fuzz/corpus";
    olympus::emulator::EmulatorOptions options;
    options.events_per_second = 20;
    options.replay_recent_events = 4;
    options.ping_interval = 100ms;
    options.greeting_duration = 400ms;
    olympus::emulator::Emulator emu(options);
    emu.start();
    Recording rec;  // before the proxy: its taps write here until it stops
    olympus::test::FaultProxy proxy("127.0.0.1", emu.port());
    for (auto d : {Direction::to_server, Direction::to_client}) {
        proxy.set_tap(d, [&rec, d](std::uint64_t c, std::string_view b) { rec.feed(d, c, b); });
    }

    // Connection 1: a gateway client with every channel, a failing request, a server drop and
    // the replay after it (connection 2).
    {
        olympus::ClientOptions copts;
        copts.connection.url = proxy.ws_url("/v1");
        copts.connection.token_provider =
            std::make_shared<olympus::FixedTokenProvider>(emu.mint_token());
        olympus::Client client(copts);
        for (const char* channel : {"orders", "kds", "inventory", "tables", "analytics", "voice"}) {
            client.subscribe(channel, {{"location_id", "loc-1"}}, [](const olympus::Event&) {});
        }
        client.start();
        olympus::test::eventually([&] { return client.stats().events_delivered >= 30; });
        client.request({{"type", "unsubscribe"}, {"subscription_id", "sub-x"}}, {});
        client.request({{"type", "no_such_type"}}, {});
        emu.drop_all_connections();
        olympus::test::eventually([&] { return client.stats().connects >= 2; });
        olympus::test::eventually([&] { return client.stats().events_delivered >= 60; });
    }

    // Next: a rejected token.
    const auto gateway_links = proxy.stats().accepted;
    {
        olympus::ClientOptions copts;
        copts.connection.url = proxy.ws_url("/v1");
        copts.connection.token_provider = std::make_shared<olympus::FixedTokenProvider>("x.y.z");
        olympus::Client client(copts);
        client.start();
        olympus::test::eventually(
            [&] { return client.state() == olympus::ConnectionState::disconnected; });
    }

    // Last: a voice session: start, 1 s of a tone then silence (one utterance), the streamed
    // reply, a barge-in and the end.
    const auto voice_link = proxy.stats().accepted + 1;
    {
        olympus::test::WsTestClient voice;
        if (!voice.connect(proxy.ws_url("/stream"))) {
            std::fprintf(stderr, "record_corpus: voice connect failed\n");
            return 1;
        }
        voice.send_json(
            {{"type", "start_session"},
             {"id", "req-1"},
             {"location_id", "loc-1"},
             {"channel", "drive_thru"},
             {"access_token", emu.mint_token()},
             {"audio",
              {{"encoding", "opus"}, {"sample_rate", 48000}, {"channels", 1}, {"frame_ms", 20}}}});
        auto started = voice.next_of_type("session_started");
        send_tone(voice, 90);
        auto response = voice.next_of_type("final_response", 5s);
        if (response) {
            voice.send_json({{"type", "barge_in"},
                             {"session_id", (*started)["session_id"]},
                             {"response_id", (*response)["response_id"]},
                             {"played_ms", 120}});
        }
        std::this_thread::sleep_for(300ms);
        voice.send_json({{"type", "end_session"},
                         {"session_id", started ? (*started)["session_id"] : ""},
                         {"reason", "completed"}});
        voice.next_of_type("session_ended", 2s);
    }

    // Then a voice session whose reply is an audio_url, resumed after a server drop (the
    // resumed session_started with frames_received), an error answer and the end.
    emu.set_reply_mode(olympus::emulator::ReplyMode::audio_url);
    const auto url_link = proxy.stats().accepted + 1;
    {
        auto start = [&](const std::string& resume) {
            nlohmann::json frame = {{"type", "start_session"},
                                    {"id", "req-1"},
                                    {"location_id", "loc-1"},
                                    {"channel", "drive_thru"},
                                    {"access_token", emu.mint_token()}};
            if (!resume.empty()) {
                frame["resume_session_id"] = resume;
            }
            return frame;
        };
        olympus::test::WsTestClient voice;
        if (!voice.connect(proxy.ws_url("/stream"))) {
            std::fprintf(stderr, "record_corpus: voice connect failed\n");
            return 1;
        }
        voice.send_json(start(""));
        auto started = voice.next_of_type("session_started");
        auto id = started ? (*started)["session_id"].get<std::string>() : std::string();
        send_tone(voice, 90);
        voice.next_of_type("final_response", 5s);
        emu.drop_all_connections();
        voice.wait_closed(2s);
        olympus::test::WsTestClient again;
        if (again.connect(proxy.ws_url("/stream"))) {
            again.send_json(start(id));
            again.next_of_type("session_started");
            again.send_json({{"type", "no_such_type"}});
            again.next_of_type("error");
            again.send_json({{"type", "end_session"}, {"session_id", id}, {"reason", "completed"}});
            again.next_of_type("session_ended", 2s);
        }
    }

    // Corpora: what the client and the emulator each received, per connection; the voice
    // sessions' server frames also seed the voice session's own target.
    for (std::uint64_t c = url_link; c <= proxy.stats().accepted; ++c) {
        write_records(out / "voice_inbound", "url" + std::to_string(c), 0, rec.frames(c, false),
                      40);
    }
    write_records(out / "voice_inbound", "voice" + std::to_string(voice_link), 0,
                  rec.frames(voice_link, false), 40);
    for (std::uint64_t c = 1; c <= voice_link; ++c) {
        auto name = (c == voice_link     ? "voice"
                     : c > gateway_links ? "rejected"
                                         : "gateway") +
                    std::to_string(c);
        write_records(out / "client_inbound", name, 0, rec.frames(c, false), 40);
        write_records(out / "emulator_inbound", name, c == voice_link ? 'v' : 'g',
                      rec.frames(c, true), 40);
    }

    // Opus packets the emulator streamed (greeting and reply), 20 ms apart, in the
    // [seq delta][ms delta][len][packet] records of opus_jitter_fuzz; 50 per file.
    std::vector<std::string> files(1);
    std::size_t count = 0;
    for (const auto& f : rec.frames(voice_link, false)) {
        if (!f.binary || f.payload.size() > 255) {
            continue;
        }
        if (count > 0 && count % 50 == 0) {
            files.emplace_back();
        }
        ++count;
        auto& file = files.back();
        file += '\x01';
        file += '\x14';
        file += static_cast<char>(f.payload.size());
        file += f.payload;
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
        write(out / "opus_jitter" / ("reply-" + std::to_string(i)), files[i]);
    }

    // Tokens: genuine, expired, foreign.
    write(out / "jwt" / "genuine", emu.mint_token());
    olympus::emulator::TokenClaims expired;
    expired.issued_at = std::chrono::system_clock::now() - 2h;
    expired.expires_at = std::chrono::system_clock::now() - 1h;
    write(out / "jwt" / "expired", emu.key().sign(expired));
    write(out / "jwt" / "foreign",
          olympus::emulator::JwtKey::generate().mint("user-x", "tenant-x", {}, 1h));
    std::printf("record_corpus: wrote %s\n", out.c_str());
    return 0;
}
