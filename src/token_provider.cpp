// Token providers; see token_provider.hpp. Each instance is used by one io thread at a time.
#include "olympus/token_provider.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

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

CallbackTokenProvider::CallbackTokenProvider(Function function) : function_(std::move(function)) {
    if (!function_) {
        throw std::invalid_argument("CallbackTokenProvider needs a function");
    }
}

std::string CallbackTokenProvider::token(TokenRequest why) {
    return function_(why);
}

}  // namespace olympus
