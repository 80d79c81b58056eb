// Helpers shared by the client tests: options with intervals shrunk to milliseconds, and a
// thread-safe recorder of what the client's callbacks saw. Test thread plus the client's io
// thread (the recorder locks).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "olympus/client.hpp"

#include "support/test_env.hpp"

namespace olympus::test {

using namespace std::chrono_literals;

/// Client options for tests: fast backoff, short request timeout, fixed seed.
inline ClientOptions fast_options(const std::string& url, const std::string& token,
                                  AuthMode mode = AuthMode::first_message) {
    ClientOptions options;
    options.connection.url = url;
    options.connection.auth_mode = mode;
    options.connection.token_provider = std::make_shared<FixedTokenProvider>(token);
    options.connection.reconnect.base = 5ms;
    options.connection.reconnect.cap = 40ms;
    options.connection.reconnect.stable_after = 10s;
    options.connection.reconnect.seed = 42;
    options.connection.connect_timeout = 3s;
    options.connection.auth_timeout = 3s;
    options.request_timeout = 3s;
    return options;
}

/// Collects states, backoff delays, events and results from the io thread.
class Recorder {
public:
    void watch(Client& client) {
        client.add_state_observer([this](const StateChange& change) {
            std::lock_guard lock(mutex_);
            states_.push_back(change);
        });
        client.add_backoff_observer([this](std::uint32_t attempt, std::chrono::milliseconds d) {
            std::lock_guard lock(mutex_);
            delays_.emplace_back(attempt, d);
        });
    }

    Client::EventHandler events() {
        return [this](const Event& event) {
            std::lock_guard lock(mutex_);
            events_.push_back(event);
        };
    }

    Client::ResultHandler result(const std::string& tag) {
        return [this, tag](std::error_code ec, const nlohmann::json&) {
            std::lock_guard lock(mutex_);
            results_.emplace_back(tag, ec);
        };
    }

    std::size_t count_state(ConnectionState state) {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (const auto& s : states_) {
            n += s.to == state ? 1 : 0;
        }
        return n;
    }
    std::vector<StateChange> states() {
        std::lock_guard lock(mutex_);
        return states_;
    }
    std::vector<std::pair<std::uint32_t, std::chrono::milliseconds>> delays() {
        std::lock_guard lock(mutex_);
        return delays_;
    }
    std::vector<Event> events_seen() {
        std::lock_guard lock(mutex_);
        return events_;
    }
    std::size_t event_count() {
        std::lock_guard lock(mutex_);
        return events_.size();
    }
    std::vector<std::pair<std::string, std::error_code>> results() {
        std::lock_guard lock(mutex_);
        return results_;
    }
    std::size_t result_count() {
        std::lock_guard lock(mutex_);
        return results_.size();
    }

private:
    std::mutex mutex_;
    std::vector<StateChange> states_;
    std::vector<std::pair<std::uint32_t, std::chrono::milliseconds>> delays_;
    std::vector<Event> events_;
    std::vector<std::pair<std::string, std::error_code>> results_;
};

/// Waits until `client` is connected.
inline bool wait_connected(Client& client, std::chrono::milliseconds timeout = 5s) {
    return eventually([&] { return client.state() == ConnectionState::connected; }, timeout);
}

}  // namespace olympus::test
