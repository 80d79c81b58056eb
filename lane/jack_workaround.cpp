// Lets the lane outlive the death and restart of its JACK sound server, which PortAudio 19.6's
// JACK host (Debian 12) does not survive by itself:
//   * closing a stream waits (up to 10 minutes) for the JACK process thread or for the client's
//     shutdown callback; when the server died, libjack 1.9.21 did not call that callback here,
//     so the close hangs;
//   * its cleanup asserts that jack_port_unregister(), jack_deactivate() and
//     jack_client_close() return 0; on a dead server they fail, and the assertion aborts the
//     whole process.
// The definitions below come first in symbol lookup (a program's own symbols interpose a shared
// library's). They record the shutdown callbacks PortAudio registers, so that the lane can call
// them once it has made sure the server is gone (a fresh client cannot connect), and they report
// the cleanup calls on a dead server's clients as successful without making them: the ports
// and clients went away with the server. They run on the lane's device thread or its closing
// thread (wherever PortAudio calls them), never on an audio callback.
#include <atomic>
#include <chrono>
#include <dlfcn.h>
#include <future>
#include <jack/jack.h>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "olympus/lane/post_devices.hpp"

namespace {

template <typename Fn>
Fn real(const char* name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

struct ShutdownHook {
    jack_client_t* client;
    JackShutdownCallback callback;
    void* arg;
};

struct Registry {
    std::mutex mutex;  // guards the containers
    std::vector<ShutdownHook> hooks;
    std::set<jack_client_t*> dead;  // clients of a server that died
    std::atomic<std::uint64_t> survived{0};
};

Registry& registry() {
    static Registry instance;
    return instance;
}

bool is_dead(jack_client_t* client) {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    return r.dead.count(client) != 0;
}

// A cleanup call on a dead server's client is not made, and counts as survived.
template <typename Call>
int unless_dead(jack_client_t* client, Call call) {
    if (is_dead(client)) {
        registry().survived.fetch_add(1, std::memory_order_relaxed);
        return 0;
    }
    const int result = call();
    if (result != 0) {
        registry().survived.fetch_add(1, std::memory_order_relaxed);
    }
    return 0;
}

// Whether the server is gone: a new client cannot connect. Bounded, since a stopped server
// (SIGSTOP) accepts the connection and never answers; that counts as "not known to be gone".
bool server_gone() {
    using Open = jack_client_t* (*)(const char*, jack_options_t, jack_status_t*, ...);
    static const auto open = real<Open>("jack_client_open");
    static const auto close = real<int (*)(jack_client_t*)>("jack_client_close");
    if (open == nullptr || close == nullptr) {
        return false;
    }
    auto answer = std::make_shared<std::promise<bool>>();
    auto gone = answer->get_future();
    std::thread([answer] {
        jack_status_t status{};
        jack_client_t* probe = open("olympus-lane-probe", JackNoStartServer, &status);
        if (probe != nullptr) {
            close(probe);
        }
        answer->set_value(probe == nullptr);
    }).detach();
    return gone.wait_for(std::chrono::seconds(1)) == std::future_status::ready && gone.get();
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void jack_on_shutdown(jack_client_t* client,
                                                             JackShutdownCallback callback,
                                                             void* arg) {
    static const auto next =
        real<void (*)(jack_client_t*, JackShutdownCallback, void*)>("jack_on_shutdown");
    {
        auto& r = registry();
        std::lock_guard lock(r.mutex);
        r.hooks.push_back({client, callback, arg});
    }
    if (next != nullptr) {
        next(client, callback, arg);
    }
}

__attribute__((visibility("default"))) int jack_port_unregister(jack_client_t* client,
                                                                jack_port_t* port) {
    static const auto next = real<int (*)(jack_client_t*, jack_port_t*)>("jack_port_unregister");
    return unless_dead(client, [&] { return next == nullptr ? 0 : next(client, port); });
}

__attribute__((visibility("default"))) int jack_deactivate(jack_client_t* client) {
    static const auto next = real<int (*)(jack_client_t*)>("jack_deactivate");
    return unless_dead(client, [&] { return next == nullptr ? 0 : next(client); });
}

__attribute__((visibility("default"))) int jack_client_close(jack_client_t* client) {
    // TODO: a dead server's client is never closed: its libjack threads and memory stay until
    // the process exits (closing it hangs in libjack). One per sound-server restart.
    static const auto next = real<int (*)(jack_client_t*)>("jack_client_close");
    const int result = unless_dead(client, [&] { return next == nullptr ? 0 : next(client); });
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto it = r.hooks.begin(); it != r.hooks.end();) {
        it = it->client == client ? r.hooks.erase(it) : it + 1;
    }
    return result;
}

}  // extern "C"

namespace olympus::lane {

std::uint64_t jack_failures_survived() {
    return registry().survived.load(std::memory_order_relaxed);
}

bool release_dead_jack_server() {
    // Only a server known to be gone: its process thread will never run again, so telling
    // PortAudio it shut down cannot race with its callback. PortAudio waits once per stream
    // it stops and closes, so the callbacks may be called again while a close is still stuck.
    std::vector<ShutdownHook> hooks;
    {
        auto& r = registry();
        std::lock_guard lock(r.mutex);
        hooks = r.hooks;
    }
    if (hooks.empty()) {
        return false;
    }
    bool known = true;
    for (const auto& hook : hooks) {
        known = known && is_dead(hook.client);
    }
    if (!known && !server_gone()) {
        return false;
    }
    {
        auto& r = registry();
        std::lock_guard lock(r.mutex);
        for (const auto& hook : hooks) {
            r.dead.insert(hook.client);
        }
    }
    for (const auto& hook : hooks) {
        hook.callback(hook.arg);
    }
    return true;
}

}  // namespace olympus::lane
