// A minimal non-owning view of contiguous elements (C++17 has no std::span). Any thread; it is
// as thread-safe as the memory it points at.
#pragma once

#include <cstddef>
#include <vector>

namespace olympus::audio {

/// A pointer and a count of elements. Copying a Span never copies the elements.
template <typename T>
class Span {
public:
    constexpr Span() noexcept = default;
    constexpr Span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <typename U>
    Span(std::vector<U>& v) noexcept : data_(v.data()), size_(v.size()) {}
    template <typename U>
    Span(const std::vector<U>& v) noexcept : data_(v.data()), size_(v.size()) {}
    template <typename U>
    constexpr Span(const Span<U>& other) noexcept : data_(other.data()), size_(other.size()) {}

    constexpr T* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
    constexpr T* begin() const noexcept { return data_; }
    constexpr T* end() const noexcept { return data_ + size_; }

    /// The `count` elements starting at `offset`; the caller keeps them inside the view.
    constexpr Span subspan(std::size_t offset, std::size_t count) const noexcept {
        return Span(data_ + offset, count);
    }
    constexpr Span first(std::size_t count) const noexcept { return Span(data_, count); }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace olympus::audio
