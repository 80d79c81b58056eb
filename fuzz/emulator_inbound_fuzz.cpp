// libFuzzer target: the emulator's inbound dispatch of both endpoints, the gateway (`/v1`) and
// the voice stream (`/stream`), driven in-process through a Transport that records nothing.
// Input: one selector byte ('g'/'v': authenticate first; 'G'/'V': do not), then frames
// (frame_records.hpp). Single thread: the fuzzer runs the io_context itself.
#include <memory>
#include <string>

// A standard header first: Asio picks its aligned allocator from libstdc++'s configuration,
// and must see the same choice in every translation unit.
#include <asio/io_context.hpp>

#include "olympus/emulator/emulator.hpp"
#include "olympus/emulator/jwt.hpp"
#include "olympus/log.hpp"

#include "frame_records.hpp"
#include "gateway_connection.hpp"
#include "server_context.hpp"
#include "voice_connection.hpp"

namespace {

using namespace olympus::emulator;

class NullTransport final : public Transport {
public:
    void send_text(const std::string&) override {}
    void send_binary(const std::string&) override {}
    void close(int, const std::string&) override {}
    void abort() override {}
    std::size_t buffered_bytes() const override { return 0; }
};

const JwtKey& key() {
    static const JwtKey k = JwtKey::generate();
    return k;
}

const std::string& token() {
    static const std::string t =
        key().mint("user-fuzz", "tenant-fuzz", default_permissions(), std::chrono::hours(24));
    return t;
}

EmulatorOptions options() {
    EmulatorOptions o;
    o.greeting_duration = std::chrono::milliseconds(0);
    o.max_recorded_seconds = 2;
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    olympus::log::set_level("off");
    token();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    char selector = static_cast<char>(data[0]);
    bool voice = selector == 'v' || selector == 'V';
    bool authenticate = selector == 'g' || selector == 'v';

    static const EmulatorOptions opts = options();
    asio::io_context io;
    ServerContext context(opts, key(), io);

    // The session, as the server makes it for each accepted connection.
    std::shared_ptr<EmulatedConnection> session;
    if (voice) {
        auto v = std::make_shared<VoiceConnection>(context, std::make_unique<NullTransport>(),
                                                   "http://127.0.0.1:9");
        v->start();
        session = v;
        if (authenticate) {
            session->on_text(nlohmann::json{
                {"type", "start_session"},
                {"id", "req-1"},
                {"location_id", "loc-1"},
                {"channel", "drive_thru"},
                {"access_token",
                 token()}}.dump());
        }
    } else {
        auto g = std::make_shared<GatewayConnection>(context, std::make_unique<NullTransport>(),
                                                     std::nullopt);
        g->start();
        session = g;
        if (authenticate) {
            session->on_text(nlohmann::json{{"type", "auth"}, {"token", token()}}.dump());
        }
    }
    io.poll();

    // The fuzzed frames, then the end of the connection.
    for (const auto& r : olympus::fuzz::split_records(data + 1, size - 1)) {
        if (r.binary) {
            session->on_binary(std::string(r.payload));
        } else {
            session->on_text(std::string(r.payload));
        }
        io.poll();
    }
    session->on_closed();
    io.poll();
    return 0;
}
