// IoThread and IoThreadPool; see io_thread.hpp. The retired-object list is the only state
// shared between the owner's thread and the io thread, under a mutex.
#include "olympus/io_thread.hpp"

#include <map>
#include <mutex>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

namespace olympus {

struct IoThread::State {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{asio::make_work_guard(io)};
    std::thread thread;
    std::mutex mutex;  // guards retired and next_retired
    std::map<std::uint64_t, std::shared_ptr<void>> retired;
    std::uint64_t next_retired = 0;
};

IoThread::IoThread() : state_(std::make_unique<State>()) {
    state_->thread = std::thread([state = state_.get()] { state->io.run(); });
    id_ = state_->thread.get_id();
}

IoThread::~IoThread() {
    // Stop first so that no handler runs while the retired objects go; they must go before
    // the io_context, whose services their sockets and timers use.
    state_->work.reset();
    state_->io.stop();
    if (state_->thread.joinable()) {
        state_->thread.join();
    }
    std::map<std::uint64_t, std::shared_ptr<void>> retired;
    {
        std::lock_guard lock(state_->mutex);
        retired.swap(state_->retired);
    }
    retired.clear();
}

asio::io_context& IoThread::context() {
    return state_->io;
}

void IoThread::retire(std::shared_ptr<void> object, long linger_ms) {
    std::uint64_t key = 0;
    {
        std::lock_guard lock(state_->mutex);
        key = state_->next_retired++;
        state_->retired.emplace(key, std::move(object));
    }

    // The timer owns itself through its handler; the object is dropped on the io thread.
    auto timer = std::make_shared<asio::steady_timer>(state_->io);
    timer->expires_after(std::chrono::milliseconds(linger_ms));
    timer->async_wait([state = state_.get(), key, timer](const asio::error_code&) {
        // Released outside the lock: the object's destructor may take time.
        std::shared_ptr<void> released;
        {
            std::lock_guard lock(state->mutex);
            auto it = state->retired.find(key);
            if (it == state->retired.end()) {
                return;
            }
            released = std::move(it->second);
            state->retired.erase(it);
        }
    });
}

IoThreadPool::IoThreadPool(std::size_t threads) {
    for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i) {
        threads_.push_back(std::make_shared<IoThread>());
    }
}

std::shared_ptr<IoThread> IoThreadPool::next() {
    auto thread = threads_[next_];
    next_ = (next_ + 1) % threads_.size();
    return thread;
}

}  // namespace olympus
