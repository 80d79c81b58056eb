// Token providers; see token_provider.hpp. Each instance is used by one io thread at a time.
#include "olympus/token_provider.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

extern char** environ;

namespace olympus {
namespace {

std::string trimmed(const std::string& text) {
    const char* space = " \t\r\n";
    auto first = text.find_first_not_of(space);
    if (first == std::string::npos) {
        return {};
    }
    auto last = text.find_last_not_of(space);
    return text.substr(first, last - first + 1);
}

}  // namespace

FixedTokenProvider::FixedTokenProvider(std::string token) : token_(std::move(token)) {}

std::string FixedTokenProvider::token(TokenRequest) {
    return token_;
}

FileTokenProvider::FileTokenProvider(std::filesystem::path path) : path_(std::move(path)) {
    reload();
    if (token_.empty()) {
        throw std::invalid_argument("token file '" + path_.string() + "' is unreadable or empty");
    }
}

std::string FileTokenProvider::token(TokenRequest) {
    // Re-read only when the file changed, so a reconnect storm does not hammer the disk.
    std::error_code ec;
    auto mtime = std::filesystem::last_write_time(path_, ec);
    auto size = ec ? 0 : std::filesystem::file_size(path_, ec);
    if (!ec && (mtime != mtime_ || size != size_)) {
        reload();
    }
    return token_;
}

void FileTokenProvider::reload() {
    std::error_code ec;
    mtime_ = std::filesystem::last_write_time(path_, ec);
    size_ = ec ? 0 : std::filesystem::file_size(path_, ec);
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
        return;  // keep the last good token; the server decides whether it is still valid
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto token = trimmed(text.str());
    if (!token.empty()) {
        token_ = std::move(token);
    }
}

CommandTokenProvider::CommandTokenProvider(std::vector<std::string> argv,
                                           std::chrono::milliseconds timeout)
    : argv_(std::move(argv)), timeout_(timeout) {
    if (argv_.empty() || argv_.front().empty()) {
        throw std::invalid_argument("CommandTokenProvider needs a program to run");
    }
}

namespace {

// Reads `fd` until end of file or `deadline`; false on timeout. At most 64 KB are kept.
bool read_until(int fd, std::chrono::steady_clock::time_point deadline, std::string& out) {
    char buffer[4096];
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            continue;  // timeout (checked above) or EINTR
        }
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return true;  // end of output (or a broken pipe: the exit status tells)
        }
        if (out.size() < 65536) {
            out.append(buffer, static_cast<std::size_t>(n));
        }
    }
}

}  // namespace

std::string CommandTokenProvider::token(TokenRequest) {
    // The program's standard output comes back through a pipe; no shell is involved.
    error_.clear();
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
        error_ = std::string("pipe: ") + std::strerror(errno);
        return {};
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
    std::vector<char*> args;
    for (auto& arg : argv_) {
        args.push_back(arg.data());
    }
    args.push_back(nullptr);
    pid_t pid = 0;
    const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (spawned != 0) {
        close(pipe_fds[0]);
        error_ = "cannot run " + argv_.front() + ": " + std::strerror(spawned);
        return {};
    }

    // Read with a deadline; a program that hangs is killed.
    std::string output;
    const bool finished =
        read_until(pipe_fds[0], std::chrono::steady_clock::now() + timeout_, output);
    close(pipe_fds[0]);
    if (!finished) {
        kill(pid, SIGKILL);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!finished) {
        error_ = argv_.front() + " did not finish within " + std::to_string(timeout_.count()) +
                 " ms (killed)";
        return {};
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        error_ = argv_.front() + " failed (exit status " +
                 std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) +
                 ")";
        return {};
    }
    auto token = trimmed(output);
    if (token.empty()) {
        error_ = argv_.front() + " printed no token";
    }
    return token;
}

CallbackTokenProvider::CallbackTokenProvider(Function function) : function_(std::move(function)) {
    if (!function_) {
        throw std::invalid_argument("CallbackTokenProvider needs a function");
    }
}

std::string CallbackTokenProvider::token(TokenRequest why) {
    return function_(why);
}

}  // namespace olympus
