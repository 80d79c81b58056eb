// The input format shared by the fuzz targets that take several WebSocket frames at once, and
// by the corpus recorder: a sequence of records [kind:1]['len' big-endian:2][payload:len],
// where kind 'b' marks a binary frame and anything else a text frame. A truncated last record
// is cut to the bytes present. Plain functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace olympus::fuzz {

struct FrameRecord {
    bool binary = false;
    std::string_view payload;
};

inline std::vector<FrameRecord> split_records(const std::uint8_t* data, std::size_t size) {
    std::vector<FrameRecord> out;
    std::size_t pos = 0;
    while (pos + 3 <= size) {
        bool binary = data[pos] == 'b';
        std::size_t len = (static_cast<std::size_t>(data[pos + 1]) << 8) | data[pos + 2];
        pos += 3;
        len = std::min(len, size - pos);
        out.push_back({binary, std::string_view(reinterpret_cast<const char*>(data) + pos, len)});
        pos += len;
    }
    return out;
}

inline void append_record(std::string& out, bool binary, std::string_view payload) {
    auto len = std::min<std::size_t>(payload.size(), 0xffff);
    out += binary ? 'b' : 't';
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(len & 0xff);
    out.append(payload.substr(0, len));
}

}  // namespace olympus::fuzz
