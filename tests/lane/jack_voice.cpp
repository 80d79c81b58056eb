// lane_jack_voice: a small JACK client for the lane tests that plays a customer's speech into a
// capture port, the way a microphone would. It registers one output port, prints "ready" once
// active, then takes commands on standard input: "play <n>" plays the n-th file (from 0) once,
// "quit" (or end of input) exits. Between plays it outputs silence. The files must be mono WAV
// at the server's rate. Main thread for commands, JACK's thread for the process callback.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <jack/jack.h>
#include <string>
#include <vector>

#include <sndfile.h>

namespace {

struct Player {
    std::vector<std::vector<float>> files;  // set before activation, then read-only
    jack_port_t* port = nullptr;
    std::atomic<int> playing{-1};          // main -> process callback
    std::atomic<std::size_t> position{0};  // process callback (reset by main before playing)
};

// The process callback: the current file's next samples, else silence. No allocation or locks.
int process(jack_nframes_t frames, void* arg) {
    auto* player = static_cast<Player*>(arg);
    auto* out = static_cast<float*>(jack_port_get_buffer(player->port, frames));
    std::memset(out, 0, sizeof(float) * frames);
    const int index = player->playing.load(std::memory_order_acquire);
    if (index < 0) {
        return 0;
    }
    const auto& file = player->files[static_cast<std::size_t>(index)];
    std::size_t at = player->position.load(std::memory_order_relaxed);
    for (jack_nframes_t i = 0; i < frames && at < file.size(); ++i) {
        out[i] = file[at++];
    }
    player->position.store(at, std::memory_order_relaxed);
    if (at >= file.size()) {
        player->playing.store(-1, std::memory_order_release);
    }
    return 0;
}

bool load(const char* path, unsigned rate, std::vector<float>& pcm) {
    SF_INFO info{};
    SNDFILE* file = sf_open(path, SFM_READ, &info);
    if (file == nullptr || info.channels != 1 || static_cast<unsigned>(info.samplerate) != rate) {
        std::fprintf(stderr, "lane_jack_voice: %s must be mono WAV at %u Hz\n", path, rate);
        if (file != nullptr) {
            sf_close(file);
        }
        return false;
    }
    pcm.resize(static_cast<std::size_t>(info.frames));
    sf_readf_float(file, pcm.data(), info.frames);
    sf_close(file);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: lane_jack_voice <client-name> <file.wav>...\n");
        return 2;
    }
    jack_status_t status{};
    jack_client_t* client = jack_client_open(argv[1], JackNoStartServer, &status);
    if (client == nullptr) {
        std::fprintf(stderr, "lane_jack_voice: no JACK server (status %d)\n", status);
        return 1;
    }
    Player player;
    for (int i = 2; i < argc; ++i) {
        player.files.emplace_back();
        if (!load(argv[i], jack_get_sample_rate(client), player.files.back())) {
            return 2;
        }
    }
    player.port = jack_port_register(client, "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    jack_set_process_callback(client, process, &player);
    if (player.port == nullptr || jack_activate(client) != 0) {
        std::fprintf(stderr, "lane_jack_voice: cannot activate\n");
        return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);

    for (std::string line; std::getline(std::cin, line) && line != "quit";) {
        if (line.rfind("play ", 0) == 0) {
            const int index = std::stoi(line.substr(5));
            if (index >= 0 && static_cast<std::size_t>(index) < player.files.size()) {
                player.position.store(0, std::memory_order_relaxed);
                player.playing.store(index, std::memory_order_release);
            }
        }
    }
    jack_client_close(client);
    return 0;
}
