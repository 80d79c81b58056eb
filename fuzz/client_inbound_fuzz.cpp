// libFuzzer target: the gateway client's inbound path (Connection's frame parser and
// dispatcher, then Client's events, responses and errors) fed through a transport without a
// socket. Each input is a sequence of frames (frame_records.hpp) delivered after a real
// authentication and subscription. Fuzzer thread plus the client's io thread.
#include <future>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "olympus/client.hpp"
#include "olympus/log.hpp"

#include "frame_records.hpp"
#include "ws_transport.hpp"

namespace {

// Opens at once, swallows what the client sends, and hands the fuzzer the events to call.
class FakeTransport final : public olympus::detail::WsTransport {
public:
    explicit FakeTransport(asio::io_context& io) : io_(io) {}

    std::error_code connect(const olympus::detail::TransportRequest&,
                            olympus::detail::TransportEvents events) override {
        events_ = std::move(events);
        open_ = true;
        asio::post(io_, [this] {
            if (open_) {
                events_.on_open();
            }
        });
        return {};
    }
    std::error_code send(bool, const std::string&) override {
        return open_ ? std::error_code() : make_error_code(olympus::errc::closed);
    }
    void close(int code, const std::string&) override {
        if (open_) {
            open_ = false;
            events_.on_close(code, {});
        }
    }
    void abort() override { open_ = false; }

    // io thread.
    void deliver(bool binary, std::string payload) {
        if (open_) {
            events_.on_message(binary, std::move(payload));
        }
    }

private:
    asio::io_context& io_;
    olympus::detail::TransportEvents events_;
    bool open_ = false;
};

FakeTransport* g_transport = nullptr;  // the current client's; set and read on its io thread

// Runs `fn` on the client's io thread and waits for it.
template <typename Fn>
void on_io(olympus::Client& client, Fn fn) {
    std::promise<void> done;
    client.connection().post([&] {
        fn();
        done.set_value();
    });
    done.get_future().wait();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    olympus::log::set_level("off");
    olympus::detail::set_transport_factory([](asio::io_context& io, bool) {
        auto transport = std::make_unique<FakeTransport>(io);
        g_transport = transport.get();
        return transport;
    });
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
    on_io(client, [] {});
    on_io(client, [] {
        g_transport->deliver(false, R"({"type":"auth_success","user_id":"u",)"
                                    R"("expires_at":"2030-01-01T00:00:00Z"})");
        g_transport->deliver(false, R"({"type":"response","id":"req-1","success":true,)"
                                    R"("subscription_id":"sub-1","channel":"orders"})");
    });

    // Then every fuzzed frame, in order, on the io thread.
    auto records = olympus::fuzz::split_records(data, size);
    on_io(client, [&] {
        for (const auto& r : records) {
            g_transport->deliver(r.binary, std::string(r.payload));
        }
    });
    return 0;
}
