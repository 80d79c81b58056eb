// Starting and stopping a private JACK dummy server for the device tests; see jack_server.hpp.
#include "jack_server.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

#include "olympus/audio/device.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace olympus::audio::test {
namespace {

pid_t private_server = 0;

void stop_private_server() {
    if (private_server > 0) {
        kill(private_server, SIGTERM);
        waitpid(private_server, nullptr, 0);
        private_server = 0;
    }
}

// JACK's own tools can hang in jack_client_close() when the server is busy (seen on a loaded
// 2-core machine); every one of them runs under a deadline so that a test fails instead.
std::string bounded(const std::string& command, int seconds = 10) {
    return "timeout -k 2 " + std::to_string(seconds) + " " + command;
}

bool server_reachable(int wait_seconds) {
    // `jack_wait -c` exits 0 either way; `jack_lsp` fails when there is no server.
    const std::string command =
        wait_seconds > 0
            ? bounded("jack_wait -w -t " + std::to_string(wait_seconds), wait_seconds + 5)
            : bounded("jack_lsp");
    return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace

JackTool::JackTool(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& arg : argv) {
        args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
        if (freopen("/dev/null", "w", stdout) == nullptr) {
            _exit(126);
        }
        execvp(args[0], args.data());
        _exit(127);
    }
}

JackTool::~JackTool() {
    if (pid_ > 0) {
        kill(pid_, SIGTERM);
        wait();
    }
}

int JackTool::wait() {
    int status = -1;
    if (pid_ > 0) {
        waitpid(pid_, &status, 0);
        pid_ = 0;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string find_jack_port(const std::string& suffix) {
    FILE* pipe = popen(bounded("jack_lsp 2>/dev/null").c_str(), "r");
    if (pipe == nullptr) {
        return {};
    }
    std::string found;
    char line[512];
    while (fgets(line, sizeof(line), pipe) != nullptr) {
        std::string port(line);
        while (!port.empty() && (port.back() == '\n' || port.back() == ' ')) {
            port.pop_back();
        }
        if (found.empty() && port.size() >= suffix.size() &&
            port.compare(port.size() - suffix.size(), suffix.size(), suffix) == 0) {
            found = port;
        }
    }
    pclose(pipe);
    return found;
}

bool jack_command(const std::string& arguments) {
    return std::system((bounded(arguments) + " >/dev/null 2>&1").c_str()) == 0;
}

// ALSA, which PortAudio loads next to JACK, leaks a few kB in Pa_Initialize and unloads the
// plugin that allocated them in Pa_Terminate. Keep PortAudio initialised for the whole test
// process, with that first initialisation hidden from LeakSanitizer, so the report stays
// about this project's code.
void keep_portaudio_loaded() {
#if defined(__SANITIZE_ADDRESS__)
    __lsan_disable();
#endif
    static auto* library =
        new olympus::audio::Result<PortAudioLibrary>(PortAudioLibrary::acquire());
    (void)library;
#if defined(__SANITIZE_ADDRESS__)
    __lsan_enable();
#endif
}

std::string ensure_jack_server(bool portaudio_here) {
    static std::string problem = [] {
        // No session D-Bus device reservation on a headless machine.
        setenv("JACK_NO_AUDIO_RESERVATION", "1", 1);

        // A server from the ctest fixture (or left by an earlier test in this process). A
        // busy machine may answer slowly; a second server next to it would only add load.
        const char* name = std::getenv("JACK_DEFAULT_SERVER");
        if (name != nullptr) {
            return server_reachable(10) ? std::string()
                                        : "JACK server \"" + std::string(name) +
                                              "\" (JACK_DEFAULT_SERVER) did not answer within 10 s";
        }

        // Otherwise start one under a name only this process uses.
        const std::string own = "olympus-test-" + std::to_string(getpid());
        setenv("JACK_DEFAULT_SERVER", own.c_str(), 1);
        const pid_t child = fork();
        if (child == 0) {
            if (freopen("/dev/null", "w", stdout) == nullptr ||
                freopen("/dev/null", "w", stderr) == nullptr) {
                _exit(126);
            }
            execlp("jackd", "jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "480",
                   static_cast<char*>(nullptr));
            _exit(127);
        }
        if (child < 0) {
            return std::string("fork failed");
        }
        private_server = child;
        std::atexit(stop_private_server);
        if (!server_reachable(10)) {
            stop_private_server();
            return std::string("jackd -d dummy did not start within 10 s (is jackd2 installed?)");
        }
        return std::string();
    }();
    if (problem.empty() && portaudio_here) {
        keep_portaudio_loaded();
    }
    return problem;
}

}  // namespace olympus::audio::test
