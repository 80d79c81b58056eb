// The transport core; see connection.hpp. Everything below Impl's public entry points runs on
// the io thread, which Impl owns or shares with other Connections (ConnectionOptions::io_thread);
// other threads only post to it.
#include "olympus/connection.hpp"

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "olympus/error.hpp"
#include "olympus/io_thread.hpp"
#include "olympus/log.hpp"

#include "ws_transport.hpp"

namespace olympus {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char* to_string(ConnectionState state) {
    switch (state) {
        case ConnectionState::connecting:
            return "connecting";
        case ConnectionState::authenticating:
            return "authenticating";
        case ConnectionState::connected:
            return "connected";
        case ConnectionState::reconnecting:
            return "reconnecting";
        case ConnectionState::disconnected:
            return "disconnected";
    }
    return "unknown";
}

namespace {

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

std::string percent_encode(std::string_view text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

void require_positive(milliseconds value, const char* name) {
    if (value.count() <= 0) {
        throw std::invalid_argument(std::string(name) + " must be positive (got " +
                                    std::to_string(value.count()) + " ms)");
    }
}

}  // namespace

void ConnectionOptions::validate() const {
    // The URL: a ws or wss scheme and a host.
    bool secure = starts_with(url, "wss://");
    if (!secure && !starts_with(url, "ws://")) {
        throw std::invalid_argument("URL '" + log::redact_url(url) +
                                    "' must start with ws:// or wss://");
    }
    auto host_start = url.find("://") + 3;
    if (host_start >= url.size() || url.find_first_of("/:?", host_start) == host_start) {
        throw std::invalid_argument("URL '" + log::redact_url(url) + "' has no host");
    }
    if (!token_provider) {
        throw std::invalid_argument("a token provider is required");
    }

    // Intervals: zero only where it means "off".
    require_positive(heartbeat.server_ping_interval, "heartbeat.server_ping_interval");
    require_positive(heartbeat.pong_timeout, "heartbeat.pong_timeout");
    require_positive(connect_timeout, "connect_timeout");
    require_positive(auth_timeout, "auth_timeout");
    if (heartbeat.dead_link_slack.count() < 0 || heartbeat.client_ping_idle.count() < 0 ||
        reauth_margin.count() < 0) {
        throw std::invalid_argument(
            "heartbeat.dead_link_slack, heartbeat.client_ping_idle and reauth_margin must not be "
            "negative");
    }
    reconnect.validate();

    // Limits and TLS files.
    if (max_message_bytes == 0 || inbound_hard_limit < max_message_bytes) {
        throw std::invalid_argument(
            "max_message_bytes must be positive and at most inbound_hard_limit");
    }
    if (!tls.ca_file.empty() && !std::ifstream(tls.ca_file)) {
        throw std::invalid_argument("CA file '" + tls.ca_file + "' is unreadable");
    }
}

std::string format_timestamp(std::chrono::system_clock::time_point time) {
    auto ms = std::chrono::duration_cast<milliseconds>(time.time_since_epoch()).count();
    std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[96];
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(ms % 1000));
    return buffer;
}

std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text) {
    // Date and time; fractions of a second are ignored, offsets other than UTC rejected.
    std::tm utc{};
    int consumed = 0;
    std::string copy(text);
    if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &utc.tm_year, &utc.tm_mon,
                    &utc.tm_mday, &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &consumed) != 6) {
        return std::nullopt;
    }
    // Out-of-range fields are refused: a year far from now would overflow the nanosecond
    // clock in from_time_t (found by client_inbound_fuzz with "1406-12-04T03:42:05Z").
    if (utc.tm_year < 1970 || utc.tm_year > 2200 || utc.tm_mon < 1 || utc.tm_mon > 12 ||
        utc.tm_mday < 1 || utc.tm_mday > 31 || utc.tm_hour < 0 || utc.tm_hour > 23 ||
        utc.tm_min < 0 || utc.tm_min > 59 || utc.tm_sec < 0 || utc.tm_sec > 60) {
        return std::nullopt;
    }
    auto rest = std::string_view(copy).substr(static_cast<std::size_t>(consumed));
    while (!rest.empty() &&
           (rest.front() == '.' || std::isdigit(static_cast<unsigned char>(rest.front())))) {
        rest.remove_prefix(1);
    }
    if (rest != "Z" && rest != "+00:00" && rest != "z") {
        return std::nullopt;
    }
    utc.tm_year -= 1900;
    utc.tm_mon -= 1;
    return std::chrono::system_clock::from_time_t(timegm(&utc));
}

/*
 * The link's state machine. Each arrow is one function below.
 *
 *   start() ─► connecting ──on_open──► authenticating ──auth_success──► connected
 *                  ▲    │ fail/timeout       │ auth_error/timeout/close     │ close/dead link
 *                  │    ▼                    ▼                              ▼
 *                  └── reconnecting ◄────────┴──────────────────────────────┘
 *                        (backoff)
 *   any state ──close()/rejected token/retries exhausted──► disconnected (terminal reason)
 *
 * Timers, all on the io thread: connect deadline, auth deadline, heartbeat check (dead link and
 * idle client pings), re-auth before expires_at, stability (resets the attempt counter), and
 * the backoff wait. Each belongs to one link generation; a timer of an older link is ignored.
 */
class Connection::Impl : public std::enable_shared_from_this<Connection::Impl> {
public:
    Impl(ConnectionOptions options, Hooks hooks)
        : options_(without_io_thread(options)),
          hooks_(std::move(hooks)),
          logger_(log::get(options_.logger)),
          shared_thread_(std::move(options.io_thread)),
          own_io_(shared_thread_ ? nullptr : std::make_unique<asio::io_context>()),
          io_(shared_thread_ ? shared_thread_->context() : *own_io_),
          work_(asio::make_work_guard(io_)),
          connect_deadline_(io_),
          auth_deadline_(io_),
          heartbeat_(io_),
          reauth_(io_),
          stable_(io_),
          backoff_(io_),
          bad_frame_log_(std::chrono::seconds(5)) {
        rng_.seed(options_.reconnect.seed != 0 ? options_.reconnect.seed : std::random_device{}());
        transport_ = detail::make_ws_transport(io_, starts_with(options_.url, "wss://"));
    }

    // Any thread: the thread is started separately so that shared_from_this() works.
    void launch() {
        if (shared_thread_) {
            io_thread_id_ = shared_thread_->id();
            return;
        }
        thread_ = std::thread([this] {
            // `this` is safe: the owner joins this thread before Impl can be destroyed.
            io_.run();
            std::lock_guard lock(finish_mutex_);
            finished_ = true;
            finish_cv_.notify_all();
        });
        io_thread_id_ = thread_.get_id();
    }

    // Owner's thread: a graceful close, then the thread ends once nothing is pending.
    void shutdown() {
        if (shared_thread_) {
            shutdown_shared();
            return;
        }
        post([this] { stop(make_error_code(errc::closed_by_application)); });
        work_.reset();
        std::unique_lock lock(finish_mutex_);
        if (!finish_cv_.wait_for(lock, std::chrono::seconds(3), [this] { return finished_; })) {
            io_.stop();  // a close handshake that hangs must not hang the application
        }
        lock.unlock();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    // Owner's thread, shared io thread: stop and fall silent on the io thread, then leave the
    // Impl to the IoThread until the close handshake and any cancelled operation are done
    // with it. The owner may be gone once this returns, so no hook runs after it.
    void shutdown_shared() {
        auto silence = [](Impl& self) {
            self.stop(make_error_code(errc::closed_by_application));
            self.detached_ = true;
        };
        if (shared_thread_->on_thread()) {
            silence(*this);
        } else {
            auto done = std::make_shared<std::promise<void>>();
            auto finished = done->get_future();
            asio::post(io_, [self = shared_from_this(), done, silence] {
                silence(*self);
                done->set_value();
            });
            finished.wait_for(std::chrono::seconds(3));  // a stopped IoThread is a misuse
        }
        work_.reset();

        // Retired, the Impl must not own its IoThread: released on that thread as the last
        // owner, the IoThread would join itself. The owner keeps it alive past ~Connection.
        auto thread = std::move(shared_thread_);
        auto linger = options_.connect_timeout + std::chrono::seconds(2);
        thread->retire(shared_from_this(), static_cast<long>(linger.count()));
    }

    // The options as kept by the Impl: the shared IoThread is held in shared_thread_ alone.
    static ConnectionOptions without_io_thread(const ConnectionOptions& options) {
        ConnectionOptions copy = options;
        copy.io_thread.reset();
        return copy;
    }

    // Any thread.
    void post(std::function<void()> task) {
        asio::post(io_, [weak = weak_from_this(), task = std::move(task)] {
            if (auto self = weak.lock(); self && !self->detached_) {
                task();
            }
        });
    }

    bool on_io_thread() const { return std::this_thread::get_id() == io_thread_id_; }

    // ---- io thread: transitions ----

    void begin_connect() {
        if (stopped_) {
            return;
        }

        // A token: the replacement for a rejected one, else a fresh one from the provider.
        std::string token = std::move(pending_token_);
        pending_token_.clear();
        if (token.empty()) {
            token = ask_token(TokenRequest::connect);
        }
        if (token.empty()) {
            stop(make_error_code(errc::no_token));
            return;
        }
        token_ = token;

        // The upgrade request, with the token where the auth mode wants it.
        detail::TransportRequest request;
        request.url = options_.url;
        request.tls = options_.tls;
        request.max_frame_bytes = options_.inbound_hard_limit;
        request.connect_timeout = options_.connect_timeout;
        request.headers.emplace_back("User-Agent", options_.user_agent);
        if (options_.auth_mode == AuthMode::header) {
            request.headers.emplace_back("Authorization", "Bearer " + token);
        } else if (options_.auth_mode == AuthMode::query) {
            request.url += (request.url.find('?') == std::string::npos ? "?" : "&");
            request.url += "token=" + percent_encode(token);
        }

        // Start the link; a new generation silences every timer of the previous one.
        ++generation_;
        transition(ConnectionState::connecting, {});
        logger_->info("connecting url={} attempt={}", log::redact_url(options_.url), attempt_);
        auto ec = transport_->connect(request, transport_events());
        if (ec) {
            link_lost(make_error_code(errc::transport), "bad URL: " + ec.message());
            return;
        }
        arm(connect_deadline_, options_.connect_timeout, [](Impl& self) {
            self.link_lost(make_error_code(errc::timeout), "connect timed out");
        });
    }

    void on_open() {
        // The link is up: start watching it.
        stats_.connects.fetch_add(1, std::memory_order_relaxed);
        connect_deadline_.cancel();
        last_close_code_ = 0;
        last_rx_ = Clock::now();
        last_ping_ = {};
        reauth_pending_ = false;
        ping_sent_at_.reset();
        arm_heartbeat();
        transition(ConnectionState::authenticating, {});

        // Header and query modes presented the token in the upgrade: the open link is the
        // server's acceptance. A later auth_success still sets expires_at.
        // TODO: wait for auth_success when the server sends one; a server that accepts the
        // upgrade and rejects the token afterwards gets the subscriptions before the rejection.
        if (options_.auth_mode != AuthMode::first_message) {
            authenticated(std::nullopt);
            return;
        }

        // First-message mode: present the token, and give the server auth_timeout to answer.
        auto frame = hooks_.opening_frame
                         ? hooks_.opening_frame(token_)
                         : nlohmann::json{{"type", "auth"}, {"token", token_}}.dump();
        send_now(false, frame);
        arm(auth_deadline_, options_.auth_timeout, [](Impl& self) {
            self.link_lost(make_error_code(errc::timeout), "no auth reply in time");
        });
    }

    void authenticated(std::optional<std::chrono::system_clock::time_point> expires_at) {
        auth_deadline_.cancel();
        bool first = !ever_connected_;
        ever_connected_ = true;
        transition(ConnectionState::connected, {});
        logger_->info("connected url={} reconnect={}", log::redact_url(options_.url), !first);

        // The backoff resets only once the link proved stable; the attempt failures at once.
        failed_attempts_ = 0;
        arm(stable_, options_.reconnect.stable_after, [](Impl& self) { self.attempt_ = 0; });
        schedule_reauth(expires_at);
        if (hooks_.on_connected) {
            hooks_.on_connected(first);
        }
    }

    // The link is gone (or must go): tell the owner and schedule the next attempt.
    void link_lost(std::error_code reason, const std::string& detail) {
        if (stopped_) {
            return;
        }
        bool was_open =
            state_ == ConnectionState::authenticating || state_ == ConnectionState::connected;
        ++generation_;
        cancel_link_timers();
        transport_->abort();
        logger_->warn("link lost reason={} detail=\"{}\" attempt={}", reason.message(), detail,
                      attempt_);
        if (was_open && hooks_.on_link_down) {
            hooks_.on_link_down(reason);
        }

        // Give up after max_attempts attempts in a row that never authenticated (a link that
        // connected and dropped later was no failed attempt); else wait out a jittered delay.
        if (options_.reconnect.max_attempts != 0 &&
            failed_attempts_ >= options_.reconnect.max_attempts) {
            stop(make_error_code(errc::retries_exhausted));
            return;
        }
        ++failed_attempts_;
        auto delay = options_.reconnect.delay(attempt_, rng_);
        std::uint32_t attempt = attempt_++;
        last_delay_ = delay;
        for (const auto& observer : copy_of(backoff_observers_)) {
            observer(attempt, delay);
        }
        transition(ConnectionState::reconnecting, reason);
        arm(backoff_, delay, [](Impl& self) {
            self.stats_.reconnects.fetch_add(1, std::memory_order_relaxed);
            self.begin_connect();
        });
    }

    // Terminal: no more links. The application's close() ends here too.
    void stop(std::error_code reason) {
        if (stopped_) {
            return;
        }
        stopped_ = true;
        bool was_open =
            state_ == ConnectionState::authenticating || state_ == ConnectionState::connected;
        ++generation_;
        cancel_link_timers();
        backoff_.cancel();
        timers_.clear();
        transport_->close(1000, "client closing");

        // The state goes first: whoever sees the terminal reason also sees `disconnected`.
        const auto from = state_.exchange(ConnectionState::disconnected, std::memory_order_acq_rel);
        {
            std::lock_guard lock(mutex_);
            terminal_ = reason;
        }
        if (reason != errc::closed_by_application) {
            logger_->error("stopped reason=\"{}\"", reason.message());
        }
        if (was_open && hooks_.on_link_down) {
            hooks_.on_link_down(reason);
        }
        notify(from, ConnectionState::disconnected, reason);
    }

    void transition(ConnectionState to, std::error_code reason) {
        notify(state_.exchange(to, std::memory_order_acq_rel), to, reason);
    }

    void notify(ConnectionState from, ConnectionState to, std::error_code reason) {
        logger_->debug("state from={} to={}", to_string(from), to_string(to));
        StateChange change{from, to, reason, attempt_};
        for (const auto& observer : copy_of(state_observers_)) {
            observer(change);
        }
    }

    // ---- io thread: inbound ----

    void on_message(bool binary, std::string payload) {
        // Count and check size before anything else: an oversize frame is dropped unread.
        stats_.messages_received.fetch_add(1, std::memory_order_relaxed);
        stats_.bytes_received.fetch_add(payload.size(), std::memory_order_relaxed);
        last_rx_ = Clock::now();
        if (payload.size() > options_.max_message_bytes) {
            stats_.dropped_frames.fetch_add(1, std::memory_order_relaxed);
            log_bad("frame over the size limit bytes=" + std::to_string(payload.size()));
            return;
        }
        if (binary) {
            if (hooks_.on_binary) {
                hooks_.on_binary(payload);
            } else {
                report_bad("binary frame on a text-only endpoint");
            }
            return;
        }

        // Parse without exceptions; the type decides who handles it.
        auto message = nlohmann::json::parse(payload, nullptr, false);
        if (message.is_discarded() || !message.is_object()) {
            report_bad("frame is not a JSON object");
            return;
        }
        auto type = message.find("type");
        if (type == message.end() || !type->is_string()) {
            report_bad("frame has no string type");
            return;
        }
        dispatch(type->get_ref<const std::string&>(), message);
    }

    void dispatch(const std::string& type, const nlohmann::json& message) {
        if (type == "ping") {
            // Echo the server's timestamp verbatim, whatever its form.
            nlohmann::json pong{{"type", "pong"}};
            if (auto ts = message.find("timestamp"); ts != message.end()) {
                pong["timestamp"] = *ts;
            }
            send_now(false, pong.dump());
            stats_.pings_answered.fetch_add(1, std::memory_order_relaxed);
        } else if (type == "pong") {
            if (ping_sent_at_) {
                auto rtt = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                                                 *ping_sent_at_);
                last_rtt_us_.store(rtt.count(), std::memory_order_relaxed);
                ping_sent_at_.reset();
            }
        } else if (type == "auth_success") {
            on_auth_success(message);
        } else if (type == "auth_error" ||
                   (type == "error" && message.value("code", "") == "invalid_token" &&
                    !message.contains("id"))) {
            on_rejected(message);
        } else if (hooks_.on_message) {
            hooks_.on_message(message);
        }
    }

    void on_auth_success(const nlohmann::json& message) {
        std::optional<std::chrono::system_clock::time_point> expires_at;
        if (auto e = message.find("expires_at"); e != message.end() && e->is_string()) {
            expires_at = parse_timestamp(e->get_ref<const std::string&>());
        }
        if (state_ == ConnectionState::authenticating) {
            authenticated(expires_at);
        } else if (state_ == ConnectionState::connected) {
            if (reauth_pending_) {
                logger_->info("re-authenticated");
            }
            reauth_pending_ = false;
            schedule_reauth(expires_at);
        }
    }

    // The server refused the token. Try once more with a different one; the same token again
    // would only be refused again, so that is terminal.
    void on_rejected(const nlohmann::json& message) {
        auto code = message.value("code", std::string("invalid_token"));
        logger_->warn("token rejected code={}", code);
        auto rejected = token_;
        auto fresh = ask_token(TokenRequest::rejected);
        if (fresh.empty() || fresh == rejected) {
            stop(make_error_code(errc::invalid_token));
            return;
        }
        pending_token_ = std::move(fresh);
        link_lost(make_error_code(errc::invalid_token), "retrying with a fresh token");
    }

    void on_fail(std::error_code ec, int http_status) {
        // 401 and 403 on the upgrade are how header and query auth refuse a token.
        if (http_status == 401 || http_status == 403) {
            on_rejected(nlohmann::json{{"code", "invalid_token"}});
            return;
        }
        link_lost(make_error_code(errc::transport),
                  ec.message() + (http_status ? " http=" + std::to_string(http_status) : ""));
    }

    void on_close(int code, std::error_code ec) {
        last_close_code_ = code;
        if (code == 1009) {
            stats_.dropped_frames.fetch_add(1, std::memory_order_relaxed);
        }
        link_lost(make_error_code(code == 1009 ? errc::too_large : errc::closed),
                  "close code=" + std::to_string(code) + (ec ? " " + ec.message() : ""));
    }

    // ---- io thread: outbound ----

    std::error_code send_now(bool binary, const std::string& payload) {
        if (payload.size() > options_.max_message_bytes) {
            return make_error_code(errc::too_large);
        }
        auto ec = transport_->send(binary, payload);
        if (ec) {
            return ec == errc::closed ? ec : make_error_code(errc::closed);
        }
        stats_.messages_sent.fetch_add(1, std::memory_order_relaxed);
        stats_.bytes_sent.fetch_add(payload.size(), std::memory_order_relaxed);
        return {};
    }

    // ---- io thread: heartbeat and re-auth ----

    void arm_heartbeat() {
        auto period = options_.heartbeat.dead_after() / 5;
        if (options_.heartbeat.client_ping_idle.count() > 0) {
            period = std::min(period, options_.heartbeat.client_ping_idle / 4);
        }
        period = std::max(period, milliseconds(2));
        arm(heartbeat_, period, [](Impl& self) { self.on_heartbeat(); });
    }

    void on_heartbeat() {
        // Silence past the protocol's allowance means the link is dead, whatever TCP says.
        auto now = Clock::now();
        auto idle = now - last_rx_;
        if (idle >= options_.heartbeat.dead_after()) {
            link_lost(make_error_code(errc::dead_link),
                      "silent for " +
                          std::to_string(std::chrono::duration_cast<milliseconds>(idle).count()) +
                          " ms");
            return;
        }

        // A quiet link gets a client ping, at most one per idle period.
        auto ping_idle = options_.heartbeat.client_ping_idle;
        if (ping_idle.count() > 0 && state_ == ConnectionState::connected && idle >= ping_idle &&
            now - last_ping_ >= ping_idle) {
            last_ping_ = now;
            ping_sent_at_ = now;
            nlohmann::json ping{{"type", "ping"},
                                {"timestamp", format_timestamp(std::chrono::system_clock::now())}};
            if (!send_now(false, ping.dump())) {
                stats_.pings_sent.fetch_add(1, std::memory_order_relaxed);
            }
        }
        arm_heartbeat();
    }

    void schedule_reauth(std::optional<std::chrono::system_clock::time_point> expires_at) {
        reauth_.cancel();
        if (!expires_at || options_.reauth_margin.count() == 0) {
            return;
        }
        // Re-authenticate a margin before expiry, or halfway there for short-lived tokens.
        auto left = std::chrono::duration_cast<milliseconds>(*expires_at -
                                                             std::chrono::system_clock::now());
        auto wait = left - options_.reauth_margin;
        if (wait.count() <= 0) {
            wait = left / 2;
        }
        if (wait.count() <= 0) {
            return;
        }
        arm(reauth_, wait, [](Impl& self) { self.reauthenticate(); });
    }

    void reauthenticate() {
        auto token = ask_token(TokenRequest::refresh);
        if (token.empty()) {
            logger_->warn("no fresh token for re-authentication; the link ends at expiry");
            return;
        }
        token_ = token;
        reauth_pending_ = true;
        send_now(false, nlohmann::json{{"type", "auth"}, {"token", token}}.dump());
        stats_.reauths.fetch_add(1, std::memory_order_relaxed);
    }

    // ---- io thread: helpers ----

    std::string ask_token(TokenRequest why) {
        try {
            return options_.token_provider->token(why);
        } catch (const std::exception& e) {
            logger_->error("token provider failed: {}", e.what());
            return {};
        }
    }

    void report_bad(const std::string& what) {
        stats_.bad_frames.fetch_add(1, std::memory_order_relaxed);
        log_bad(what);
    }

    void log_bad(const std::string& what) {
        std::size_t suppressed = 0;
        if (bad_frame_log_.allow(suppressed)) {
            logger_->warn("bad inbound frame dropped: {} (suppressed since last={})", what,
                          suppressed);
        }
    }

    template <typename Fn>
    void arm(asio::steady_timer& timer, milliseconds delay, Fn fn) {
        timer.expires_after(delay);
        timer.async_wait(
            [weak = weak_from_this(), gen = generation_, fn](const asio::error_code& ec) {
                auto self = weak.lock();
                if (!self || ec || gen != self->generation_) {
                    return;
                }
                fn(*self);
            });
    }

    void cancel_link_timers() {
        connect_deadline_.cancel();
        auth_deadline_.cancel();
        heartbeat_.cancel();
        reauth_.cancel();
        stable_.cancel();
    }

    detail::TransportEvents transport_events() {
        std::weak_ptr<Impl> weak = weak_from_this();
        detail::TransportEvents events;
        events.on_open = [weak] {
            if (auto self = weak.lock(); self && !self->detached_)
                self->on_open();
        };
        events.on_fail = [weak](std::error_code ec, int status) {
            if (auto self = weak.lock(); self && !self->detached_)
                self->on_fail(ec, status);
        };
        events.on_close = [weak](int code, std::error_code ec) {
            if (auto self = weak.lock(); self && !self->detached_)
                self->on_close(code, ec);
        };
        events.on_message = [weak](bool binary, std::string payload) {
            if (auto self = weak.lock(); self && !self->detached_)
                self->on_message(binary, std::move(payload));
        };
        return events;
    }

    template <typename T>
    std::vector<T> copy_of(const std::vector<T>& list) {
        std::lock_guard lock(mutex_);
        return list;
    }

    // Fixed at construction; read by any thread.
    const ConnectionOptions options_;
    const Hooks hooks_;
    const std::shared_ptr<spdlog::logger> logger_;

    // The io machinery; io_ is declared first so that it outlives the transport and timers.
    // With a shared io thread, io_ is the IoThread's, and the Impl outlives its Connection
    // (IoThread::retire) until the io thread is done with it.
    std::shared_ptr<IoThread> shared_thread_;
    std::unique_ptr<asio::io_context> own_io_;
    asio::io_context& io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
    std::atomic<std::thread::id> io_thread_id_{};
    std::mutex finish_mutex_;
    std::condition_variable finish_cv_;
    bool finished_ = false;  // guarded by finish_mutex_

    // Shared with other threads.
    std::atomic<ConnectionState> state_{ConnectionState::disconnected};
    mutable std::mutex mutex_;  // guards terminal_ and the observer lists
    std::error_code terminal_;
    std::vector<StateObserver> state_observers_;
    std::vector<BackoffObserver> backoff_observers_;
    struct {
        std::atomic<std::uint64_t> messages_sent{0}, messages_received{0}, bytes_sent{0},
            bytes_received{0}, connects{0}, reconnects{0}, dropped_frames{0}, bad_frames{0},
            pings_answered{0}, pings_sent{0}, reauths{0};
    } stats_;  // relaxed: counters, no ordering with other data
    std::atomic<std::int64_t> last_rtt_us_{-1};
    std::atomic<bool> started_{false};

    // io thread only.
    std::unique_ptr<detail::WsTransport> transport_;
    asio::steady_timer connect_deadline_, auth_deadline_, heartbeat_, reauth_, stable_, backoff_;
    std::map<TimerId, std::unique_ptr<asio::steady_timer>> timers_;
    TimerId next_timer_ = 1;
    std::uint64_t generation_ = 0;
    std::uint32_t attempt_ = 0;          // backoff exponent: reset after a stable link
    std::uint32_t failed_attempts_ = 0;  // attempts since the last authentication
    milliseconds last_delay_{0};
    std::mt19937_64 rng_;
    std::string token_;          // the token of the current link
    std::string pending_token_;  // the replacement for a rejected token
    bool stopped_ = false;
    bool detached_ = false;  // the Connection is gone: no more hooks or owner tasks
    bool ever_connected_ = false;
    bool reauth_pending_ = false;  // an auth frame went out on the open link
    int last_close_code_ = 0;      // the peer's close code of the last link that closed
    Clock::time_point last_rx_{};
    Clock::time_point last_ping_{};
    std::optional<Clock::time_point> ping_sent_at_;
    log::RateLimit bad_frame_log_;

    friend class Connection;
};

Connection::Connection(ConnectionOptions options, Hooks hooks) {
    options.validate();
    impl_ = std::make_shared<Impl>(std::move(options), std::move(hooks));
    impl_->launch();
}

Connection::~Connection() {
    impl_->shutdown();
}

void Connection::start() {
    if (impl_->started_.exchange(true)) {
        return;
    }
    impl_->post([impl = impl_.get()] { impl->begin_connect(); });
}

void Connection::close() {
    impl_->post([impl = impl_.get()] { impl->stop(make_error_code(errc::closed_by_application)); });
}

ConnectionState Connection::state() const {
    return impl_->state_.load(std::memory_order_acquire);
}

std::error_code Connection::terminal_reason() const {
    std::lock_guard lock(impl_->mutex_);
    return impl_->terminal_;
}

ConnectionStats Connection::stats() const {
    const auto& s = impl_->stats_;
    auto get = [](const std::atomic<std::uint64_t>& v) {
        return v.load(std::memory_order_relaxed);
    };
    ConnectionStats out;
    out.messages_sent = get(s.messages_sent);
    out.messages_received = get(s.messages_received);
    out.bytes_sent = get(s.bytes_sent);
    out.bytes_received = get(s.bytes_received);
    out.connects = get(s.connects);
    out.reconnects = get(s.reconnects);
    out.dropped_frames = get(s.dropped_frames);
    out.bad_frames = get(s.bad_frames);
    out.pings_answered = get(s.pings_answered);
    out.pings_sent = get(s.pings_sent);
    out.reauths = get(s.reauths);
    if (auto rtt = impl_->last_rtt_us_.load(std::memory_order_relaxed); rtt >= 0) {
        out.last_rtt = std::chrono::microseconds(rtt);
    }
    return out;
}

const ConnectionOptions& Connection::options() const {
    return impl_->options_;
}

void Connection::add_state_observer(StateObserver observer) {
    std::lock_guard lock(impl_->mutex_);
    impl_->state_observers_.push_back(std::move(observer));
}

void Connection::add_backoff_observer(BackoffObserver observer) {
    std::lock_guard lock(impl_->mutex_);
    impl_->backoff_observers_.push_back(std::move(observer));
}

void Connection::post(std::function<void()> task) {
    impl_->post(std::move(task));
}

bool Connection::on_io_thread() const {
    return impl_->on_io_thread();
}

std::error_code Connection::send_text(std::string text) {
    if (text.size() > impl_->options_.max_message_bytes) {
        return make_error_code(errc::too_large);
    }
    if (impl_->on_io_thread()) {
        return impl_->send_now(false, text);
    }
    impl_->post([impl = impl_.get(), text = std::move(text)] { impl->send_now(false, text); });
    return {};
}

std::error_code Connection::send_binary(std::string bytes) {
    if (bytes.size() > impl_->options_.max_message_bytes) {
        return make_error_code(errc::too_large);
    }
    if (impl_->on_io_thread()) {
        return impl_->send_now(true, bytes);
    }
    impl_->post([impl = impl_.get(), bytes = std::move(bytes)] { impl->send_now(true, bytes); });
    return {};
}

Connection::TimerId Connection::call_after(milliseconds delay, std::function<void()> task) {
    auto& impl = *impl_;
    auto id = impl.next_timer_++;
    auto timer = std::make_unique<asio::steady_timer>(impl.io_, delay);
    timer->async_wait(
        [weak = impl.weak_from_this(), id, task = std::move(task)](const asio::error_code& ec) {
            auto self = weak.lock();
            if (!self || ec || self->timers_.erase(id) == 0) {
                return;
            }
            task();
        });
    impl.timers_.emplace(id, std::move(timer));
    return id;
}

void Connection::cancel(TimerId id) {
    impl_->timers_.erase(id);
}

void Connection::complete_authentication(
    std::optional<std::chrono::system_clock::time_point> expires_at) {
    if (impl_->state_ == ConnectionState::authenticating) {
        impl_->authenticated(expires_at);
    }
}

void Connection::report_bad_frame(std::string_view what) {
    impl_->report_bad(std::string(what));
}

int Connection::last_close_code() const {
    return impl_->last_close_code_;
}

}  // namespace olympus
