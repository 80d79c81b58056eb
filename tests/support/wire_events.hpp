// Reads one direction of proxied WebSocket connections (a FaultProxy tap) and keeps the id of
// every event frame per channel, and the number of binary frames: what that side really put on
// the wire, replays and re-sent audio included. feed() runs on the proxy's io thread; ids() and
// binary_frames() on any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace olympus::test {

class WireEvents {
public:
    void feed(std::uint64_t connection, std::string_view bytes) {
        std::lock_guard lock(mutex_);
        auto& stream = streams_[connection];
        stream.buffer.append(bytes);
        parse(stream);
    }

    std::map<std::string, std::multiset<std::string>> ids() {
        std::lock_guard lock(mutex_);
        return ids_;
    }

    std::uint64_t binary_frames() {
        std::lock_guard lock(mutex_);
        return binary_frames_;
    }

private:
    struct Stream {
        bool upgraded = false;  // past the HTTP 101 response
        std::string buffer;
    };

    void parse(Stream& s) {
        if (!s.upgraded) {
            auto end = s.buffer.find("\r\n\r\n");
            if (end == std::string::npos) {
                return;
            }
            s.buffer.erase(0, end + 4);
            s.upgraded = true;
        }
        while (true) {
            // Header: opcode, then a 7-, 16- or 64-bit length, then a mask (client frames).
            if (s.buffer.size() < 2) {
                return;
            }
            auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s.buffer[i]); };
            int opcode = byte(0) & 0x0f;
            std::uint64_t length = byte(1) & 0x7f;
            std::size_t header = 2;
            if (length == 126 || length == 127) {
                std::size_t n = length == 126 ? 2 : 8;
                if (s.buffer.size() < 2 + n) {
                    return;
                }
                length = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    length = (length << 8) | byte(2 + i);
                }
                header += n;
            }
            if ((byte(1) & 0x80) != 0) {
                header += 4;
            }
            if (s.buffer.size() < header + length) {
                return;
            }
            if (opcode == 1) {
                record(s.buffer.substr(header, static_cast<std::size_t>(length)));
            } else if (opcode == 2) {
                ++binary_frames_;
            }
            s.buffer.erase(0, header + static_cast<std::size_t>(length));
        }
    }

    void record(const std::string& text) {
        auto frame = nlohmann::json::parse(text, nullptr, false);
        if (frame.is_object() && frame.value("type", "") == "event") {
            ids_[frame.value("channel", "")].insert(frame.value("id", ""));
        }
    }

    std::mutex mutex_;
    std::map<std::uint64_t, Stream> streams_;
    std::map<std::string, std::multiset<std::string>> ids_;
    std::uint64_t binary_frames_ = 0;
};

}  // namespace olympus::test
