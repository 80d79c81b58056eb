// The socket-free transport of the fuzz targets that drive a Connection's owner (the gateway
// client, the voice session): it opens at once, swallows what is sent, and lets the fuzzer hand
// frames to the connection on its io thread. Installed with detail::set_transport_factory();
// the newest transport is published in current(). Fuzzer thread plus the connection's io thread.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <string>

// A standard header comes first (see emulator_inbound_fuzz.cpp): Asio picks its aligned
// allocator from libstdc++'s configuration.
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "olympus/error.hpp"

#include "ws_transport.hpp"

namespace olympus::fuzz {

class FakeTransport final : public detail::WsTransport {
public:
    explicit FakeTransport(asio::io_context& io) : io_(io) {}

    /// Makes every new Connection use a FakeTransport.
    static void install() {
        detail::set_transport_factory([](asio::io_context& io, bool) {
            auto transport = std::make_unique<FakeTransport>(io);
            current_slot().store(transport.get(), std::memory_order_release);
            return transport;
        });
    }

    /// The transport of the newest Connection; null until one connected.
    static FakeTransport* current() { return current_slot().load(std::memory_order_acquire); }
    /// Forgets it, before the Connection that owns it goes away.
    static void forget() { current_slot().store(nullptr, std::memory_order_release); }

    std::error_code connect(const detail::TransportRequest&,
                            detail::TransportEvents events) override {
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
        return open_ ? std::error_code() : make_error_code(errc::closed);
    }
    void close(int code, const std::string&) override {
        if (open_) {
            open_ = false;
            events_.on_close(code, {});
        }
    }
    void abort() override { open_ = false; }

    /// io thread: one inbound frame, as the WebSocket layer would hand it over.
    void deliver(bool binary, std::string payload) {
        if (open_) {
            events_.on_message(binary, std::move(payload));
        }
    }

    /// Fuzzer thread: runs `fn` on the io thread (after everything posted before) and waits.
    template <typename Fn>
    void run_on_io(Fn fn) {
        std::promise<void> done;
        asio::post(io_, [&] {
            fn();
            done.set_value();
        });
        done.get_future().wait();
    }

private:
    static std::atomic<FakeTransport*>& current_slot() {
        static std::atomic<FakeTransport*> slot{nullptr};
        return slot;
    }

    asio::io_context& io_;
    detail::TransportEvents events_;
    bool open_ = false;
};

}  // namespace olympus::fuzz
