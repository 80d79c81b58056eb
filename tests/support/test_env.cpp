// Shared test helpers; see test_env.hpp.
#include "support/test_env.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <vector>

namespace olympus::test {

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return condition();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

std::chrono::milliseconds scaled(std::chrono::milliseconds deadline) {
    const char* text = std::getenv("OLYMPUS_TEST_TIME_SCALE");
    double scale = text != nullptr ? std::atof(text) : 1.0;
    return std::chrono::milliseconds(
        static_cast<long>(static_cast<double>(deadline.count()) * std::max(scale, 1.0)));
}

std::string make_temp_dir(const std::string& prefix) {
    auto pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed for " + pattern);
    }
    return buffer.data();
}

}  // namespace olympus::test
