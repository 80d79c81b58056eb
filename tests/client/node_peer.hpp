// Runs tests/node/gateway_server.js as a child process for a test: starts it on an ephemeral
// port, sends it commands on stdin and reads its answers from stdout. Test thread only.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

namespace olympus::test {

class NodePeer {
public:
    /// Starts the server with extra `args`; ok() tells whether it printed its port.
    explicit NodePeer(const std::vector<std::string>& args = {}) {
        int in[2];
        int out[2];
        if (pipe(in) != 0 || pipe(out) != 0) {
            return;
        }
        pid_ = fork();
        if (pid_ == 0) {
            dup2(in[0], 0);
            dup2(out[1], 1);
            close(in[1]);
            close(out[0]);
            std::vector<std::string> argv_s{OLYMPUS_NODE_EXECUTABLE,
                                            std::string(OLYMPUS_NODE_DIR) + "/gateway_server.js"};
            argv_s.insert(argv_s.end(), args.begin(), args.end());
            std::vector<char*> argv;
            for (auto& a : argv_s) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        to_child_ = fdopen(in[1], "w");
        from_child_ = fdopen(out[0], "r");
        auto line = read_line();
        if (line && line->rfind("PORT ", 0) == 0) {
            port_ = std::stoi(line->substr(5));
        }
    }

    ~NodePeer() {
        if (to_child_) {
            std::fclose(to_child_);  // the server exits when stdin closes
        }
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            int status = 0;
            waitpid(pid_, &status, 0);
        }
        if (from_child_) {
            std::fclose(from_child_);
        }
    }

    NodePeer(const NodePeer&) = delete;
    NodePeer& operator=(const NodePeer&) = delete;

    static bool available() {
        return std::filesystem::exists(OLYMPUS_NODE_EXECUTABLE) &&
               std::filesystem::exists(std::string(OLYMPUS_NODE_DIR) + "/node_modules/ws");
    }

    bool ok() const { return port_ > 0; }
    std::string url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/v1"; }

    /// Ends every connection without a close frame; returns once the server did it.
    bool drop() { return command("drop").value_or("") == "DROPPED"; }

    nlohmann::json stats() {
        auto line = command("stats").value_or("");
        if (line.rfind("STATS ", 0) != 0) {
            return {};
        }
        return nlohmann::json::parse(line.substr(6), nullptr, false);
    }

private:
    std::optional<std::string> command(const std::string& text) {
        std::fprintf(to_child_, "%s\n", text.c_str());
        std::fflush(to_child_);
        return read_line();
    }

    std::optional<std::string> read_line() {
        std::string line;
        int c;
        while ((c = std::fgetc(from_child_)) != EOF && c != '\n') {
            line += static_cast<char>(c);
        }
        if (c == EOF && line.empty()) {
            return std::nullopt;
        }
        return line;
    }

    pid_t pid_ = -1;
    int port_ = 0;
    std::FILE* to_child_ = nullptr;
    std::FILE* from_child_ = nullptr;
};

}  // namespace olympus::test
