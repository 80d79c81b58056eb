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
// them once it has made sure the server is gone (a new client finds no server, or one that does
// not know PortAudio's client), and they report the cleanup calls on a dead server's clients as
// successful without making them: the ports and clients went away with the server. They run on
// the lane's device thread or its closing thread (wherever PortAudio calls them), never on an
// audio callback. Since a client's libjack thread may then still be running (a dead server's
// client is never closed; a server that dropped a slow client fails its cleanup calls), the
// process callback goes through a gate: once jack_deactivate() or jack_client_close() returns,
// PortAudio's callback is not running and does not run again, so PortAudio can free the memory
// it uses.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <future>
#include <jack/jack.h>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "olympus/lane/post_devices.hpp"

namespace {

template <typename Fn>
Fn real(const char* name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// The server's request socket as libjack 1.9 names it (/dev/shm/jack_<server>_<uid>_0), and
// its inode at the time a client registered: a server that died removes it, a new one makes
// another. Not found (another layout): the server is probed by connecting instead.
struct ServerSocket {
    bool known = false;
    dev_t device = 0;
    ino_t inode = 0;
};

std::string server_socket_path() {
    const char* name = std::getenv("JACK_DEFAULT_SERVER");
    return "/dev/shm/jack_" + std::string(name != nullptr && *name != '\0' ? name : "default") +
           "_" + std::to_string(getuid()) + "_0";
}

ServerSocket server_socket() {
    struct stat info {};
    ServerSocket socket;
    if (stat(server_socket_path().c_str(), &info) == 0 && S_ISSOCK(info.st_mode)) {
        socket = {true, info.st_dev, info.st_ino};
    }
    return socket;
}

struct ShutdownHook {
    jack_client_t* client;
    JackShutdownCallback callback;
    void* arg;
    ServerSocket server;  // the server the client connected to
};

// The process callback behind its gate. `inside` counts calls in progress; closing the gate
// and then waiting for none inside is a handshake with the audio thread (all seq_cst: a call
// either is counted before the gate closed, or sees it closed).
struct ProcessGate {
    jack_client_t* client;
    JackProcessCallback callback;
    void* arg;
    std::atomic<bool> closed{false};
    std::atomic<int> inside{0};
};

int through_gate(jack_nframes_t frames, void* arg) {
    auto* gate = static_cast<ProcessGate*>(arg);
    gate->inside.fetch_add(1);
    const int result = gate->closed.load() ? 0 : gate->callback(frames, gate->arg);
    gate->inside.fetch_sub(1);
    return result;
}

struct Registry {
    std::mutex mutex;                                 // guards the containers
    std::vector<std::unique_ptr<ProcessGate>> gates;  // freed once the client closed for real
    std::vector<ShutdownHook> hooks;
    std::set<jack_client_t*> dead;  // clients of a server that died
    std::atomic<std::uint64_t> survived{0};
};

// Never destroyed: a libjack thread that outlives its client may still pass a gate while the
// process exits.
Registry& registry() {
    static Registry& instance = *new Registry;
    return instance;
}

bool is_dead(jack_client_t* client) {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    return r.dead.count(client) != 0;
}

// Opens or closes the gates of `client`; closing returns once no callback is inside (bounded:
// a thread stuck in a callback for a second is left to it).
void set_gates(jack_client_t* client, bool closed) {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto& gate : r.gates) {
        if (gate->client != client) {
            continue;
        }
        gate->closed.store(closed);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        while (closed && gate->inside.load() != 0 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
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

// The client's name as a regular expression that matches it literally.
std::string escaped(const char* name) {
    std::string out;
    for (const char* c = name; c != nullptr && *c != '\0'; ++c) {
        if (std::strchr("\\()[]{}*+?|$^.", *c) != nullptr) {
            out += '\\';
        }
        out += *c;
    }
    return out;
}

// Whether the server `hook`'s client talks to is gone: its socket went away or belongs to a new
// server; without a known socket, a new client cannot connect, or connects to a server (of the
// same name, started since) that does not know the client's ports. Bounded, since
// a stopped server (SIGSTOP) never answers; that counts as "not known to be gone". One probe at
// a time: on a stopped server it waits until the server runs again, and a new one per retry
// would pile up threads.
bool server_gone(const ShutdownHook& hook) {
    // The server's socket tells at once: gone, or replaced by a new server's.
    if (hook.server.known) {
        const ServerSocket now = server_socket();
        return !now.known || now.device != hook.server.device || now.inode != hook.server.inode;
    }
    jack_client_t* const client = hook.client;
    using Open = jack_client_t* (*)(const char*, jack_options_t, jack_status_t*, ...);
    static const auto open = real<Open>("jack_client_open");
    static const auto close = real<int (*)(jack_client_t*)>("jack_client_close");
    static std::atomic<bool> in_flight{false};
    if (open == nullptr || close == nullptr || in_flight.exchange(true)) {
        return false;
    }
    auto answer = std::make_shared<std::promise<bool>>();
    auto gone = answer->get_future();
    const std::string pattern = "^" + escaped(jack_get_client_name(client)) + ":";
    std::thread([answer, pattern] {
        jack_status_t status{};
        jack_client_t* probe = open("olympus-lane-probe", JackNoStartServer, &status);
        bool unknown = probe == nullptr;
        if (probe != nullptr) {
            const char** ports = jack_get_ports(probe, pattern.c_str(), nullptr, 0);
            unknown = ports == nullptr;
            jack_free(ports);
            close(probe);
        }
        in_flight.store(false);
        answer->set_value(unknown);
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
        r.hooks.push_back({client, callback, arg, server_socket()});
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

__attribute__((visibility("default"))) int jack_set_process_callback(jack_client_t* client,
                                                                     JackProcessCallback callback,
                                                                     void* arg) {
    static const auto next =
        real<int (*)(jack_client_t*, JackProcessCallback, void*)>("jack_set_process_callback");
    if (next == nullptr) {
        return -1;
    }
    auto gate = std::make_unique<ProcessGate>();
    gate->client = client;
    gate->callback = callback;
    gate->arg = arg;
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    const int result = next(client, &through_gate, gate.get());
    if (result == 0) {
        r.gates.push_back(std::move(gate));
    }
    return result;
}

__attribute__((visibility("default"))) int jack_activate(jack_client_t* client) {
    static const auto next = real<int (*)(jack_client_t*)>("jack_activate");
    set_gates(client, false);
    return next == nullptr ? -1 : next(client);
}

__attribute__((visibility("default"))) int jack_deactivate(jack_client_t* client) {
    static const auto next = real<int (*)(jack_client_t*)>("jack_deactivate");
    const int result = unless_dead(client, [&] { return next == nullptr ? 0 : next(client); });
    set_gates(client, true);
    return result;
}

__attribute__((visibility("default"))) int jack_client_close(jack_client_t* client) {
    // TODO: a dead server's client is never closed: its libjack threads and memory stay until
    // the process exits (closing it hangs in libjack). One per sound-server restart.
    static const auto next = real<int (*)(jack_client_t*)>("jack_client_close");
    set_gates(client, true);
    bool closed = false;
    const int result = unless_dead(client, [&] {
        const int real_result = next == nullptr ? 0 : next(client);
        closed = real_result == 0;
        return real_result;
    });
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto it = r.hooks.begin(); it != r.hooks.end();) {
        it = it->client == client ? r.hooks.erase(it) : it + 1;
    }
    // Closed for real, its thread is joined: the gate can go. Otherwise the thread may live on.
    for (auto it = r.gates.begin(); closed && it != r.gates.end();) {
        it = (*it)->client == client ? r.gates.erase(it) : it + 1;
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
    for (const auto& hook : hooks) {
        if (!is_dead(hook.client) && !server_gone(hook)) {
            return false;
        }
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
