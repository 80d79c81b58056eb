// Runs olympus-voice as a child process for the command tests, with stdout and stderr captured
// in files. Test main thread only.
#pragma once

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace olympus::test {

class CliProcess {
public:
    /// Starts `olympus-voice args...`; output goes to `dir`/stdout.txt and stderr.txt.
    CliProcess(const std::vector<std::string>& args, const std::string& dir) : dir_(dir) {
        pid_ = fork();
        if (pid_ == 0) {
            int out = open((dir + "/stdout.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            int err = open((dir + "/stderr.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(out, 1);
            dup2(err, 2);
            std::vector<std::string> argv_s{OLYMPUS_VOICE_CLI};
            argv_s.insert(argv_s.end(), args.begin(), args.end());
            std::vector<char*> argv;
            for (auto& a : argv_s) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
    }

    ~CliProcess() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }

    void signal(int sig) { kill(pid_, sig); }

    /// The exit code, or -1 when it did not exit within `timeout` (then it is killed).
    int wait(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return -1;
    }

    std::string stderr_text() const { return read(dir_ + "/stderr.txt"); }
    std::string stdout_text() const { return read(dir_ + "/stdout.txt"); }

private:
    static std::string read(const std::string& path) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

    std::string dir_;
    pid_t pid_ = -1;
    bool exited_ = false;
};

}  // namespace olympus::test
