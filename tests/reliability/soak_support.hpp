// What the soak programs (gateway_soak, voice_soak) share: the CLI as a child process with its
// stdout on a pipe, samples of its RSS and open descriptors, and the trend between the window
// after warm-up (20-40 % of the run) and the end (80-100 %). Main thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <optional>
#include <signal.h>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>
#include <vector>

namespace olympus::soak {

/// What both soak programs take: `<name> <olympus-voice> [--seconds N] [--seed S] [--assert]`.
struct Args {
    std::string cli;
    double seconds = 120;
    std::uint64_t seed = 1;
    bool assert_trends = false;  ///< exit non-zero when the run is not clean
};

/// The arguments, or nothing after printing the usage line for anything it does not know.
inline std::optional<Args> parse_args(int argc, char** argv, const char* name) {
    Args args;
    bool ok = argc >= 2;
    if (ok) {
        args.cli = argv[1];
    }
    for (int i = 2; ok && i < argc; ++i) {
        std::string arg = argv[i];
        char* end = nullptr;
        if (arg == "--seconds" && i + 1 < argc) {
            args.seconds = std::strtod(argv[++i], &end);
            ok = *end == '\0' && args.seconds > 0;
        } else if (arg == "--seed" && i + 1 < argc) {
            args.seed = std::strtoull(argv[++i], &end, 10);
            ok = *end == '\0';
        } else if (arg == "--assert") {
            args.assert_trends = true;
        } else {
            ok = false;
        }
    }
    if (!ok) {
        std::fprintf(stderr, "usage: %s <olympus-voice> [--seconds N] [--seed S] [--assert]\n",
                     name);
        return std::nullopt;
    }
    return args;
}

inline long rss_kib_of(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string key;
    while (status >> key) {
        if (key == "VmRSS:") {
            long value = 0;
            status >> value;
            return value;
        }
        status.ignore(1 << 12, '\n');
    }
    return -1;
}

inline long fds_of(pid_t pid) {
    long n = -2;  // "." and ".."
    if (DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
        while (readdir(d) != nullptr) {
            ++n;
        }
        closedir(d);
    }
    return n;
}

/// The CLI under soak: its pid and the read end of its stdout.
struct Child {
    pid_t pid = -1;
    int out = -1;
};

/// Runs `argv` (argv[0] is the program) with stdout on a pipe and stderr into `log_path`. The
/// child dies with the soak.
inline Child spawn(const std::vector<std::string>& argv, const std::string& log_path) {
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        return {};
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(pipefd[1], STDOUT_FILENO);
        if (FILE* log = std::fopen(log_path.c_str(), "w")) {
            dup2(fileno(log), STDERR_FILENO);
        }
        close(pipefd[0]);
        close(pipefd[1]);
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));
        }
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    close(pipefd[1]);
    return {pid, pipefd[0]};
}

/// One sample of the child's resources.
struct Sample {
    double t_s;
    long rss_kib;
    long fds;
};

/// RSS and descriptor trends over a run of `seconds`.
struct Trend {
    double rss_early = 0, rss_late = 0;  ///< medians, KiB
    long fds_early = 0, fds_late = 0;    ///< maxima
};

inline Trend trend(const std::vector<Sample>& samples, double seconds) {
    auto window = [&](double from, double to, long Sample::*field) {
        std::vector<long> out;
        for (const auto& s : samples) {
            if (s.t_s >= seconds * from && s.t_s < seconds * to) {
                out.push_back(s.*field);
            }
        }
        std::sort(out.begin(), out.end());
        return out;
    };
    auto median = [](const std::vector<long>& v) {
        return v.empty() ? 0.0 : static_cast<double>(v[v.size() / 2]);
    };
    auto max = [](const std::vector<long>& v) { return v.empty() ? 0L : v.back(); };
    Trend t;
    t.rss_early = median(window(0.2, 0.4, &Sample::rss_kib));
    t.rss_late = median(window(0.8, 1.01, &Sample::rss_kib));
    t.fds_early = max(window(0.2, 0.4, &Sample::fds));
    t.fds_late = max(window(0.8, 1.01, &Sample::fds));
    return t;
}

}  // namespace olympus::soak
