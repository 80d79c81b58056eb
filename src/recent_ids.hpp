// A bounded set of recently seen ids: the client's memory of delivered event ids, so that an
// event re-sent across a reconnect reaches the application once. io thread only.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <unordered_set>

namespace olympus::detail {

class RecentIds {
public:
    explicit RecentIds(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

    /// True when `id` is new (and now remembered); false when it is among the last
    /// `capacity` ids. The oldest id is forgotten when the window is full.
    bool insert(const std::string& id) {
        if (!seen_.insert(id).second) {
            return false;
        }
        order_.push_back(id);
        if (order_.size() > capacity_) {
            seen_.erase(order_.front());
            order_.pop_front();
        }
        return true;
    }

    std::size_t size() const { return order_.size(); }

private:
    std::size_t capacity_;
    std::deque<std::string> order_;
    std::unordered_set<std::string> seen_;
};

}  // namespace olympus::detail
