// libFuzzer target: the gateway client's inbound path (Connection's frame parser and
// dispatcher, then Client's events, responses and errors) fed through a transport without a
// socket. Each input is a sequence of frames (frame_records.hpp) delivered after a real
// authentication and subscription. Fuzzer thread plus the client's io thread.
#include <memory>

#include "olympus/client.hpp"
#include "olympus/log.hpp"

#include "fake_transport.hpp"
#include "frame_records.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    olympus::log::set_level("off");
    olympus::fuzz::FakeTransport::install();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    olympus::ClientOptions options;
    options.connection.url = "ws://127.0.0.1:9/v1";
    options.connection.token_provider = std::make_shared<olympus::FixedTokenProvider>("a.b.c");
    olympus::Client client(options);
    client.subscribe("orders", nullptr, [](const olympus::Event&) {});
    client.request({{"type", "unsubscribe"}, {"subscription_id", "sub-x"}}, {});
    client.start();

    // A real handshake first, so that the fuzzed frames reach a connected, subscribed client.
    auto* transport = olympus::fuzz::FakeTransport::current();
    transport->run_on_io([] {});
    transport->run_on_io([transport] {
        transport->deliver(false, R"({"type":"auth_success","user_id":"u",)"
                                  R"("expires_at":"2030-01-01T00:00:00Z"})");
        transport->deliver(false, R"({"type":"response","id":"req-1","success":true,)"
                                  R"("subscription_id":"sub-1","channel":"orders"})");
    });

    // Then every fuzzed frame, in order, on the io thread.
    auto records = olympus::fuzz::split_records(data, size);
    transport->run_on_io([&] {
        for (const auto& r : records) {
            transport->deliver(r.binary, std::string(r.payload));
        }
    });
    return 0;
}
