// The fault-injecting proxy; see fault_proxy.hpp. Everything inside Impl and Link runs on the
// proxy's io thread; public methods post to it and wait.
#include "support/fault_proxy.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <future>
#include <list>
#include <random>
#include <thread>

#include <asio/connect.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

namespace olympus::test {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using tcp = asio::ip::tcp;

namespace {

// The faults of one direction; io thread only.
struct DirectionFaults {
    milliseconds latency{0};
    milliseconds jitter{0};
    std::size_t bytes_per_second = 0;
};

// The settings every connection reads; io thread only.
struct Faults {
    DirectionFaults dir[2];
    std::array<FaultProxy::Tap, 2> tap;
    bool stalled = false;
    bool split = false;
    std::optional<std::uint64_t> close_after;
};

int index_of(Direction d) {
    return d == Direction::to_server ? 0 : 1;
}

}  // namespace

class FaultProxy::Impl : public std::enable_shared_from_this<FaultProxy::Impl> {
public:
    Impl(std::string host, std::uint16_t port, std::size_t cap, std::uint64_t seed)
        : target_host_(std::move(host)),
          target_port_(port),
          cap_(cap),
          work_(asio::make_work_guard(io_)),
          acceptor_(io_),
          rng_(seed) {}

    class Link;

    void start() {
        tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }

    void stop() {
        run([this] {
            asio::error_code ec;
            acceptor_.close(ec);
            close_everything();
        });
        work_.reset();
        io_.stop();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    // Runs `fn` on the io thread and waits for it.
    template <typename Fn>
    void run(Fn fn) {
        std::promise<void> done;
        asio::post(io_, [&] {
            fn();
            done.set_value();
        });
        done.get_future().wait();
    }

    void accept();
    void close_everything();
    void for_each_link(const std::function<void(Link&)>& fn);

    milliseconds draw_jitter(milliseconds jitter) {
        if (jitter.count() <= 0) {
            return milliseconds(0);
        }
        std::uniform_int_distribution<long> pick(0, jitter.count());
        return milliseconds(pick(rng_));
    }

    const std::string target_host_;
    const std::uint16_t target_port_;
    const std::size_t cap_;
    std::uint16_t port_ = 0;

    // Any thread: counters.
    struct {
        std::atomic<std::uint64_t> accepted{0}, open{0}, upstream_failures{0}, bytes_to_server{0},
            bytes_to_client{0}, writes_to_server{0}, writes_to_client{0}, resets{0},
            closed_after_limit{0}, peak_buffered{0}, buffered{0};
    } stats_;

    // io thread only.
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    tcp::acceptor acceptor_;
    std::thread thread_;
    Faults faults_;
    std::list<std::shared_ptr<Link>> links_;
    std::uint64_t next_link_ = 0;
    std::mt19937_64 rng_;
};

/*
 * One proxied connection: the client socket, the target socket, and a pump per direction.
 *
 *   connecting ──target up──► forwarding ──reset / limit / EOF both ways──► closed
 *                                  └──cut──► frozen (sockets open, nothing moves)
 */
class FaultProxy::Impl::Link : public std::enable_shared_from_this<Link> {
public:
    Link(Impl& proxy, std::uint64_t id)
        : proxy_(proxy),
          id_(id),
          client_(proxy.io_),
          server_(proxy.io_),
          pumps_{Pump(proxy.io_, Direction::to_server), Pump(proxy.io_, Direction::to_client)} {}

    tcp::socket& client() { return client_; }

    void connect_upstream() {
        auto self = shared_from_this();
        auto resolver = std::make_shared<tcp::resolver>(proxy_.io_);
        resolver->async_resolve(
            proxy_.target_host_, std::to_string(proxy_.target_port_),
            [self, resolver](const asio::error_code& ec, tcp::resolver::results_type results) {
                if (ec || self->closed_) {
                    self->upstream_failed();
                    return;
                }
                asio::async_connect(self->server_, results,
                                    [self](const asio::error_code& cec, const tcp::endpoint&) {
                                        if (cec || self->closed_) {
                                            self->upstream_failed();
                                            return;
                                        }
                                        self->on_upstream();
                                    });
            });
    }

    // Nudges both pumps after a setting changed.
    void kick() {
        for (auto& pump : pumps_) {
            read(pump);
            write(pump);
        }
    }

    void reset() {
        if (closed_ || frozen_) {
            return;
        }
        asio::error_code ec;
        client_.set_option(asio::socket_base::linger(true, 0), ec);
        server_.set_option(asio::socket_base::linger(true, 0), ec);
        proxy_.stats_.resets.fetch_add(1, std::memory_order_relaxed);
        close();
    }

    void freeze() {
        if (closed_) {
            return;
        }
        frozen_ = true;
        for (auto& pump : pumps_) {
            pump.timer.cancel();
        }
    }

    void close() {
        if (closed_) {
            return;
        }
        closed_ = true;
        asio::error_code ec;
        client_.close(ec);
        server_.close(ec);
        for (auto& pump : pumps_) {
            pump.timer.cancel();
            release(pump, pump.buffered);
            pump.queue.clear();
        }
        proxy_.stats_.open.fetch_sub(1, std::memory_order_relaxed);
    }

    bool closed() const { return closed_; }

private:
    struct Chunk {
        Clock::time_point due;
        std::string bytes;
        std::size_t offset = 0;
    };
    struct Pump {
        Pump(asio::io_context& io, Direction d) : direction(d), timer(io) {}
        Direction direction;
        asio::steady_timer timer;
        std::deque<Chunk> queue;
        std::size_t buffered = 0;
        Clock::time_point last_due{};
        Clock::time_point next_send{};  // bandwidth pacing
        std::array<char, 16 * 1024> buffer{};
        bool reading = false;
        bool writing = false;
        bool waiting = false;  // the timer is armed
        bool source_done = false;
        bool sink_shut = false;
    };

    tcp::socket& source(const Pump& p) {
        return p.direction == Direction::to_server ? client_ : server_;
    }
    tcp::socket& sink(const Pump& p) {
        return p.direction == Direction::to_server ? server_ : client_;
    }
    DirectionFaults& faults(const Pump& p) { return proxy_.faults_.dir[index_of(p.direction)]; }

    void upstream_failed() {
        proxy_.stats_.upstream_failures.fetch_add(1, std::memory_order_relaxed);
        close();
    }

    void on_upstream() {
        // Small writes must leave at once, above all in split mode.
        connected_ = true;
        asio::error_code ec;
        client_.set_option(tcp::no_delay(true), ec);
        server_.set_option(tcp::no_delay(true), ec);
        kick();
    }

    void read(Pump& p) {
        if (closed_ || frozen_ || !connected_ || p.reading || p.source_done ||
            p.buffered >= proxy_.cap_) {
            return;
        }
        p.reading = true;
        auto self = shared_from_this();
        auto max = std::min(p.buffer.size(), proxy_.cap_ - p.buffered);
        source(p).async_read_some(asio::buffer(p.buffer.data(), max),
                                  [self, &p](const asio::error_code& ec, std::size_t n) {
                                      p.reading = false;
                                      self->on_read(p, ec, n);
                                  });
    }

    void on_read(Pump& p, const asio::error_code& ec, std::size_t n) {
        if (closed_ || frozen_) {
            return;
        }
        if (ec) {
            // EOF or error: pass the end on once everything queued has gone out.
            p.source_done = true;
            write(p);
            return;
        }

        // The tap sees the bytes as the source sent them.
        if (auto& tap = proxy_.faults_.tap[index_of(p.direction)]) {
            tap(id_, std::string_view(p.buffer.data(), n));
        }

        // Stamp the chunk with its due time; never earlier than the one before it.
        auto& f = faults(p);
        auto due = Clock::now() + f.latency + proxy_.draw_jitter(f.jitter);
        due = std::max(due, p.last_due);
        p.last_due = due;
        p.queue.push_back(Chunk{due, std::string(p.buffer.data(), n)});
        hold(p, n);

        write(p);
        read(p);
    }

    void write(Pump& p) {
        if (closed_ || frozen_ || p.writing || p.waiting || proxy_.faults_.stalled) {
            return;
        }
        if (p.queue.empty()) {
            finish_direction(p);
            return;
        }

        // Wait for the chunk's due time, then for the bandwidth budget.
        auto now = Clock::now();
        auto when = std::max(p.queue.front().due, p.next_send);
        if (when > now) {
            p.waiting = true;
            p.timer.expires_at(when);
            p.timer.async_wait([self = shared_from_this(), &p](const asio::error_code& ec) {
                p.waiting = false;
                if (!ec) {
                    self->write(p);
                }
            });
            return;
        }

        // How much goes in this write: one byte when splitting, a slice when throttled, and
        // never past the connection's byte limit.
        auto& chunk = p.queue.front();
        std::size_t n = chunk.bytes.size() - chunk.offset;
        if (proxy_.faults_.split) {
            n = 1;
        }
        auto rate = faults(p).bytes_per_second;
        if (rate > 0) {
            n = std::min(n, std::max<std::size_t>(1, rate / 50));
        }
        if (auto limit = proxy_.faults_.close_after) {
            if (forwarded_ >= *limit) {
                proxy_.stats_.closed_after_limit.fetch_add(1, std::memory_order_relaxed);
                graceful_close();
                return;
            }
            n = static_cast<std::size_t>(std::min<std::uint64_t>(n, *limit - forwarded_));
        }

        p.writing = true;
        asio::async_write(
            sink(p), asio::buffer(chunk.bytes.data() + chunk.offset, n),
            [self = shared_from_this(), &p](const asio::error_code& ec, std::size_t written) {
                p.writing = false;
                self->on_written(p, ec, written);
            });
    }

    void on_written(Pump& p, const asio::error_code& ec, std::size_t n) {
        if (closed_ || frozen_) {
            return;
        }
        if (ec) {
            close();
            return;
        }

        // Account for the bytes, pace the next write, and make room to read again.
        bool up = p.direction == Direction::to_server;
        (up ? proxy_.stats_.bytes_to_server : proxy_.stats_.bytes_to_client)
            .fetch_add(n, std::memory_order_relaxed);
        (up ? proxy_.stats_.writes_to_server : proxy_.stats_.writes_to_client)
            .fetch_add(1, std::memory_order_relaxed);
        forwarded_ += n;
        auto& chunk = p.queue.front();
        chunk.offset += n;
        if (chunk.offset == chunk.bytes.size()) {
            p.queue.pop_front();
        }
        release(p, n);
        if (auto rate = faults(p).bytes_per_second; rate > 0) {
            auto cost = std::chrono::microseconds(n * 1'000'000 / rate);
            p.next_send = std::max(p.next_send, Clock::now() - milliseconds(20)) + cost;
        }
        if (proxy_.faults_.close_after && forwarded_ >= *proxy_.faults_.close_after) {
            proxy_.stats_.closed_after_limit.fetch_add(1, std::memory_order_relaxed);
            graceful_close();
            return;
        }

        write(p);
        read(p);
    }

    // The source ended and its queue is empty: send FIN onwards; close when both ended.
    void finish_direction(Pump& p) {
        if (!p.source_done || p.sink_shut) {
            return;
        }
        p.sink_shut = true;
        asio::error_code ec;
        sink(p).shutdown(tcp::socket::shutdown_send, ec);
        if (pumps_[0].sink_shut && pumps_[1].sink_shut) {
            close();
        }
    }

    void graceful_close() {
        asio::error_code ec;
        client_.shutdown(tcp::socket::shutdown_both, ec);
        server_.shutdown(tcp::socket::shutdown_both, ec);
        close();
    }

    void hold(Pump& p, std::size_t n) {
        p.buffered += n;
        proxy_.stats_.buffered.fetch_add(n, std::memory_order_relaxed);
        auto peak = proxy_.stats_.peak_buffered.load(std::memory_order_relaxed);
        while (p.buffered > peak &&
               !proxy_.stats_.peak_buffered.compare_exchange_weak(peak, p.buffered)) {
        }
    }

    void release(Pump& p, std::size_t n) {
        p.buffered -= n;
        proxy_.stats_.buffered.fetch_sub(n, std::memory_order_relaxed);
    }

    Impl& proxy_;
    const std::uint64_t id_;
    tcp::socket client_;
    tcp::socket server_;
    Pump pumps_[2];
    std::uint64_t forwarded_ = 0;  // both directions
    bool connected_ = false;       // the target accepted
    bool closed_ = false;
    bool frozen_ = false;
};

void FaultProxy::Impl::accept() {
    auto link = std::make_shared<Link>(*this, ++next_link_);
    acceptor_.async_accept(link->client(), [this, link](const asio::error_code& ec) {
        if (ec) {
            return;  // the acceptor closed
        }

        // Forget links that ended, then connect this one to the target.
        links_.remove_if([](const std::shared_ptr<Link>& l) { return l->closed(); });
        stats_.accepted.fetch_add(1, std::memory_order_relaxed);
        stats_.open.fetch_add(1, std::memory_order_relaxed);
        links_.push_back(link);
        link->connect_upstream();
        accept();
    });
}

void FaultProxy::Impl::close_everything() {
    for (auto& link : links_) {
        link->close();
    }
    links_.clear();
}

void FaultProxy::Impl::for_each_link(const std::function<void(Link&)>& fn) {
    for (auto& link : links_) {
        fn(*link);
    }
}

FaultProxy::FaultProxy(std::string target_host, std::uint16_t target_port,
                       std::size_t max_buffered_bytes, std::uint64_t seed)
    : impl_(std::make_shared<Impl>(std::move(target_host), target_port, max_buffered_bytes, seed)) {
    impl_->start();
}

FaultProxy::~FaultProxy() {
    impl_->stop();
}

std::uint16_t FaultProxy::port() const {
    return impl_->port_;
}

std::string FaultProxy::ws_url(const std::string& path) const {
    return "ws://127.0.0.1:" + std::to_string(port()) + path;
}

void FaultProxy::set_latency(Direction direction, milliseconds latency, milliseconds jitter) {
    impl_->run([&] {
        impl_->faults_.dir[index_of(direction)].latency = latency;
        impl_->faults_.dir[index_of(direction)].jitter = jitter;
    });
}

void FaultProxy::set_bandwidth(Direction direction, std::size_t bytes_per_second) {
    impl_->run([&] {
        impl_->faults_.dir[index_of(direction)].bytes_per_second = bytes_per_second;
        impl_->for_each_link([](Impl::Link& l) { l.kick(); });
    });
}

void FaultProxy::set_stalled(bool stalled) {
    impl_->run([&] {
        impl_->faults_.stalled = stalled;
        impl_->for_each_link([](Impl::Link& l) { l.kick(); });
    });
}

void FaultProxy::set_split_bytes(bool split) {
    impl_->run([&] { impl_->faults_.split = split; });
}

void FaultProxy::set_close_after_bytes(std::optional<std::uint64_t> bytes) {
    impl_->run([&] { impl_->faults_.close_after = bytes; });
}

void FaultProxy::set_tap(Direction direction, Tap tap) {
    impl_->run([&] { impl_->faults_.tap[index_of(direction)] = std::move(tap); });
}

void FaultProxy::reset_all() {
    impl_->run([&] { impl_->for_each_link([](Impl::Link& l) { l.reset(); }); });
}

void FaultProxy::cut_all() {
    impl_->run([&] { impl_->for_each_link([](Impl::Link& l) { l.freeze(); }); });
}

void FaultProxy::clear_faults() {
    impl_->run([&] {
        auto taps = std::move(impl_->faults_.tap);
        impl_->faults_ = Faults{};
        impl_->faults_.tap = std::move(taps);
        impl_->for_each_link([](Impl::Link& l) { l.kick(); });
    });
}

FaultProxyStats FaultProxy::stats() const {
    const auto& s = impl_->stats_;
    auto get = [](const std::atomic<std::uint64_t>& v) {
        return v.load(std::memory_order_relaxed);
    };
    FaultProxyStats out;
    out.accepted = get(s.accepted);
    out.open = get(s.open);
    out.upstream_failures = get(s.upstream_failures);
    out.bytes_to_server = get(s.bytes_to_server);
    out.bytes_to_client = get(s.bytes_to_client);
    out.writes_to_server = get(s.writes_to_server);
    out.writes_to_client = get(s.writes_to_client);
    out.resets = get(s.resets);
    out.closed_after_limit = get(s.closed_after_limit);
    out.peak_buffered = get(s.peak_buffered);
    return out;
}

std::uint64_t FaultProxy::buffered_bytes() const {
    return impl_->stats_.buffered.load(std::memory_order_relaxed);
}

}  // namespace olympus::test
