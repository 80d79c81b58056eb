// The warm voice stream; see voice_stream.hpp and voice_stream_impl.hpp. The protocol runs on
// the connection's io thread; other threads read the mode under a mutex.
#include "olympus/voice_stream.hpp"

#include "olympus/error.hpp"

#include "voice_stream_impl.hpp"
#include "while_alive.hpp"

namespace olympus {

using Json = nlohmann::json;

const char* to_string(StreamMode mode) {
    switch (mode) {
        case StreamMode::probing:
            return "probing";
        case StreamMode::warm:
            return "warm";
        case StreamMode::per_session:
            return "per_session";
    }
    return "unknown";
}

VoiceStream::Impl::Impl(ConnectionOptions options)
    : options_(std::move(options)), logger_(log::get("voice")) {}

void VoiceStream::Impl::init() {
    auto connection_options = options_;
    connection_options.auth_mode = AuthMode::first_message;
    connection_options.logger = "voice";
    std::weak_ptr<Impl> weak = weak_from_this();
    Connection::Hooks hooks;
    hooks.opening_frame = detail::while_alive(weak, &Impl::opening_frame);
    hooks.on_connected = detail::while_alive(weak, &Impl::on_connected);
    hooks.on_link_down = detail::while_alive(weak, &Impl::on_link_down);
    hooks.on_message = detail::while_alive(weak, &Impl::on_message);
    hooks.on_binary = detail::while_alive(weak, &Impl::on_binary);
    connection_ = std::make_unique<Connection>(connection_options, std::move(hooks));
    connection_->add_state_observer(detail::while_alive(weak, &Impl::on_state));
}

// ---- any thread ----

StreamMode VoiceStream::Impl::mode() const {
    std::lock_guard lock(mutex_);
    return mode_;
}

bool VoiceStream::Impl::idle() const {
    std::lock_guard lock(mutex_);
    return mode_ == StreamMode::warm && authenticated_shared_ && !attached_shared_;
}

StreamMode VoiceStream::Impl::wait_ready(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    ready_cv_.wait_for(lock, timeout, [this] {
        return mode_ == StreamMode::per_session ||
               (mode_ == StreamMode::warm && authenticated_shared_);
    });
    return mode_;
}

void VoiceStream::Impl::add_mode_observer(ModeObserver observer) {
    std::lock_guard lock(mutex_);
    mode_observers_.push_back(std::move(observer));
}

// ---- io thread: tenants ----

bool VoiceStream::Impl::attach(std::weak_ptr<detail::StreamTenant> tenant) {
    if (attached_ && tenant_.lock()) {
        return false;
    }
    tenant_ = std::move(tenant);
    attached_ = true;
    std::lock_guard lock(mutex_);
    attached_shared_ = true;
    return true;
}

void VoiceStream::Impl::detach(const detail::StreamTenant* tenant) {
    auto current = tenant_.lock();
    if (current && current.get() != tenant) {
        return;
    }
    tenant_.reset();
    attached_ = false;
    std::lock_guard lock(mutex_);
    attached_shared_ = false;
}

// ---- io thread: the link ----

std::string VoiceStream::Impl::opening_frame(const std::string& token) {
    // [ours] The voice stream takes the gateway's first-message auth before any session.
    token_ = token;
    return Json{{"type", "auth"}, {"token", token}}.dump();
}

void VoiceStream::Impl::on_connected(bool /*first*/) {
    // auth_success: the server keeps connections, and this one is ready for a session.
    authenticated_ = true;
    sessions_on_link_ = 0;
    {
        std::lock_guard lock(mutex_);
        authenticated_shared_ = true;
    }
    decide(StreamMode::warm, "auth accepted on the voice stream");
    ready_cv_.notify_all();
    if (auto t = tenant()) {
        t->on_stream_ready(token_);
    }
}

void VoiceStream::Impl::on_link_down(std::error_code reason) {
    const bool was_authenticated = authenticated_;
    authenticated_ = false;
    {
        std::lock_guard lock(mutex_);
        authenticated_shared_ = false;
    }

    // A server that never answers `auth` (it ignores unknown types, or its auth timeout closes
    // the link) does not keep connections between sessions.
    if (!was_authenticated && decided_ == StreamMode::probing &&
        (reason == errc::timeout || reason == errc::closed)) {
        decide(StreamMode::per_session, "no answer to auth on the voice stream (" +
                                            reason.message() + ", close code " +
                                            std::to_string(connection_->last_close_code()) + ")");
        return;
    }

    // Nor does one that hangs up normally once a session is over and nobody rides the link.
    if (was_authenticated && !attached_ && sessions_on_link_ > 0 &&
        connection_->last_close_code() == 1000) {
        decide(StreamMode::per_session, "the server closed the voice stream after the session");
        return;
    }
    if (auto t = tenant()) {
        t->on_stream_down(reason);
    }
}

void VoiceStream::Impl::on_message(const Json& message) {
    const auto& type = message["type"].get_ref<const std::string&>();

    // An error answering the first auth: the server does not take auth on the voice stream.
    if (type == "error" && !authenticated_ && decided_ == StreamMode::probing) {
        decide(StreamMode::per_session, "the server answered auth on the voice stream with " +
                                            message.value("code", std::string("an error")));
        return;
    }
    if (type == "session_ended") {
        ++sessions_on_link_;
    }
    if (auto t = tenant()) {
        t->on_stream_message(message);
        return;
    }
    logger_->debug("voice stream message outside a session type={} dropped", type);
}

void VoiceStream::Impl::on_binary(std::string_view bytes) {
    // Reply frames still in flight after a session ended are dropped quietly.
    if (auto t = tenant()) {
        t->on_stream_binary(bytes);
    }
}

void VoiceStream::Impl::on_state(const StateChange& change) {
    if (change.to != ConnectionState::disconnected) {
        return;
    }
    ready_cv_.notify_all();
    if (auto t = tenant()) {
        t->on_stream_failed(change.reason, "the voice stream stopped");
    }
}

void VoiceStream::Impl::decide(StreamMode mode, const std::string& why) {
    // Decided on the io thread: once, and a warm stream may still turn per-session later.
    if (decided_ == mode || decided_ == StreamMode::per_session) {
        return;
    }
    decided_ = mode;
    if (mode == StreamMode::warm) {
        logger_->info("voice stream warm url={}: sessions share one connection",
                      log::redact_url(options_.url));
    } else {
        logger_->warn(
            "voice stream per-session url={} reason=\"{}\": each session opens its own "
            "connection",
            log::redact_url(options_.url), why);
        connection_->close();
    }

    // Observers hear of it before waiters wake, so that a waiter sees what they recorded.
    std::vector<ModeObserver> observers;
    {
        std::lock_guard lock(mutex_);
        observers = mode_observers_;
    }
    for (const auto& observer : observers) {
        observer(mode, why);
    }
    {
        std::lock_guard lock(mutex_);
        mode_ = mode;
    }
    ready_cv_.notify_all();
    if (auto t = tenant(); t && mode == StreamMode::per_session) {
        t->on_stream_failed(make_error_code(errc::session_lost), why);
    }
}

// ---- VoiceStream ----

VoiceStream::VoiceStream(ConnectionOptions options) {
    options.validate();
    impl_ = std::make_shared<Impl>(std::move(options));
    impl_->init();
}

VoiceStream::~VoiceStream() {
    impl_->connection().close();
}

void VoiceStream::start() {
    impl_->connection().start();
}

void VoiceStream::close() {
    impl_->connection().close();
}

StreamMode VoiceStream::mode() const {
    return impl_->mode();
}

bool VoiceStream::idle() const {
    return impl_->idle();
}

StreamMode VoiceStream::wait_ready(std::chrono::milliseconds timeout) const {
    return impl_->wait_ready(timeout);
}

const Connection& VoiceStream::connection() const {
    return impl_->connection();
}

const ConnectionOptions& VoiceStream::options() const {
    return impl_->options_;
}

void VoiceStream::add_mode_observer(ModeObserver observer) {
    impl_->add_mode_observer(std::move(observer));
}

void VoiceStream::add_state_observer(Connection::StateObserver observer) {
    impl_->connection().add_state_observer(std::move(observer));
}

}  // namespace olympus
