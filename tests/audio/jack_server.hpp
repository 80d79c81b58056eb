// A JACK server with the dummy driver (48 kHz, 480-sample periods) for the device tests, so the
// real PortAudio path runs without sound hardware. Test main thread only.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace olympus::audio::test {

/// Makes sure a JACK dummy server is reachable through JACK_DEFAULT_SERVER: uses the one the
/// ctest fixture started (jackd-fixture), or starts a private one for this process and stops
/// it at exit. With `portaudio_here`, PortAudio is also initialised in this process for the
/// rest of its life (see keep_portaudio_loaded in jack_server.cpp); a test whose PortAudio runs
/// in a child process passes false. Returns an empty string on success, else why no server
/// could be had.
std::string ensure_jack_server(bool portaudio_here = true);

/// A JACK tool (jack_metro, jack_rec) running as a child process; terminated on destruction.
class JackTool {
public:
    explicit JackTool(const std::vector<std::string>& argv);
    ~JackTool();
    JackTool(const JackTool&) = delete;
    JackTool& operator=(const JackTool&) = delete;

    /// Waits for the tool to exit by itself; returns its exit status (-1 if killed).
    int wait();

private:
    pid_t pid_ = 0;
};

/// The full name of the first JACK port whose name ends with `suffix` (e.g. ":in_0"), or "".
std::string find_jack_port(const std::string& suffix);

/// Runs a JACK command-line tool (jack_connect, ...) against the test server; true on exit 0.
bool jack_command(const std::string& arguments);

}  // namespace olympus::audio::test

/// Skips the current test, with the reason, when no JACK server can be had.
#define OLYMPUS_REQUIRE_JACK() OLYMPUS_REQUIRE_JACK_FOR(true)
/// The same for a test whose PortAudio runs in a child process (a CLI command).
#define OLYMPUS_REQUIRE_JACK_SERVER() OLYMPUS_REQUIRE_JACK_FOR(false)

#define OLYMPUS_REQUIRE_JACK_FOR(portaudio_here)                         \
    do {                                                                 \
        const std::string jack_problem =                                 \
            ::olympus::audio::test::ensure_jack_server(portaudio_here);  \
        if (!jack_problem.empty()) {                                     \
            GTEST_SKIP() << "no virtual audio device: " << jack_problem; \
        }                                                                \
    } while (false)
