// Callbacks handed to a Connection (or any longer-lived object) that reach their owner only
// while it lives: they hold a weak_ptr, so a callback that fires after the owner is gone does
// nothing and returns a default value.
#pragma once

#include <functional>
#include <memory>
#include <utility>

namespace olympus::detail {

/// `member` of `owner`, called while the owner lives.
template <class Owner, class Result, class... Args>
std::function<Result(Args...)> while_alive(std::weak_ptr<Owner> owner,
                                           Result (Owner::*member)(Args...)) {
    return [owner = std::move(owner), member](Args... args) -> Result {
        if (auto self = owner.lock()) {
            return ((*self).*member)(std::forward<Args>(args)...);
        }
        return Result();
    };
}

}  // namespace olympus::detail
