// An io thread that several Connections can share, so that one process can hold thousands of
// links without a thread each. Created and destroyed on the owner's thread; the io thread it
// runs is the one on which every hook of the Connections that use it runs.
#pragma once

#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

namespace asio {
class io_context;
}

namespace olympus {

/// One thread running one io_context. Pass it in ConnectionOptions::io_thread; every
/// Connection using it then runs its handlers on this thread, one at a time, so a slow hook
/// delays every link on the thread. Destroy the Connections before the IoThread.
class IoThread {
public:
    /// Starts the thread. Throws std::system_error when no thread can be started.
    IoThread();
    /// Stops the io_context and joins the thread; Connections still using it are a misuse.
    ~IoThread();
    IoThread(const IoThread&) = delete;
    IoThread& operator=(const IoThread&) = delete;

    bool on_thread() const { return std::this_thread::get_id() == id_; }
    std::thread::id id() const { return id_; }
    /// The io_context; for the transport core and for owners' own timers on this thread.
    asio::io_context& context();

    /// Keeps `object` alive until the io thread has finished with it (Connection teardown):
    /// released after `linger_ms` on this thread, or when the IoThread is destroyed.
    void retire(std::shared_ptr<void> object, long linger_ms);

private:
    struct State;
    std::unique_ptr<State> state_;
    std::thread::id id_;
};

/// A fixed set of IoThreads handed out round robin: the shape a load generator wants (one
/// thread per core). Owner's thread only.
class IoThreadPool {
public:
    explicit IoThreadPool(std::size_t threads);
    std::shared_ptr<IoThread> next();
    std::shared_ptr<IoThread> at(std::size_t index) const { return threads_.at(index); }
    std::size_t size() const { return threads_.size(); }

private:
    std::vector<std::shared_ptr<IoThread>> threads_;
    std::size_t next_ = 0;
};

}  // namespace olympus
