// LoadSession; see load_session.hpp. Every function below the constructor runs on the
// session's io thread.
#include "load_session.hpp"

#include <future>

#include <asio/post.hpp>

namespace olympus::cli {

namespace {

std::int64_t micros(LoadSession::Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

}  // namespace

LoadSession::LoadSession(LoadSessionConfig config, const LoadAudio& audio, LoadTally& tally)
    : config_(std::move(config)), audio_(audio), tally_(tally) {
    // Live mode owns a codec pair, made here so that the io thread never allocates for it.
    if (config_.live_encode) {
        auto encoder = audio::OpusEncoder::create(audio_.encoder);
        if (!encoder) {
            throw std::invalid_argument(encoder.error().what());
        }
        encoder_.emplace(std::move(encoder).value());
        audio::JitterBufferConfig jitter;
        jitter.sample_rate = audio_.sample_rate;
        jitter.frame_ms = audio_.frame_ms;
        jitter.queue_capacity = 16;  // loopback: a few frames in flight at most
        auto buffer = audio::JitterBuffer::create(jitter);
        if (!buffer) {
            throw std::invalid_argument(buffer.error().what());
        }
        jitter_ = std::move(buffer).value();
        playout_frame_.assign(jitter_->frame_samples(), 0.0f);
    }

    // The hooks capture `this`: ~LoadSession destroys the connection first, and a shared-thread
    // Connection runs no hook once its destructor has returned.
    Connection::Hooks hooks;
    hooks.opening_frame = [this](const std::string& token) {
        nlohmann::json start = {{"type", "start_session"},
                                {"id", "load-start"},
                                {"location_id", config_.location_id},
                                {"channel", "drive_thru"},
                                {"access_token", token},
                                {"audio",
                                 {{"encoding", "opus"},
                                  {"sample_rate", audio_.sample_rate},
                                  {"channels", 1},
                                  {"frame_ms", audio_.frame_ms}}}};
        return start.dump();
    };
    hooks.on_message = [this](const nlohmann::json& message) { on_message(message); };
    hooks.on_binary = [this](std::string_view bytes) { on_binary(bytes); };
    hooks.on_link_down = [this](std::error_code) {
        if (active_.exchange(false, std::memory_order_acq_rel)) {
            ++tally_.sessions_lost;
        }
    };
    connection_ = std::make_unique<Connection>(config_.connection, std::move(hooks));
    link_ = connection_.get();
}

LoadSession::~LoadSession() {
    // The link goes first (no more hooks), then the timer, on the thread that owns it.
    connection_.reset();
    auto& io = config_.connection.io_thread->context();
    std::promise<void> done;
    asio::post(io, [this, &done] {
        pacer_.reset();
        done.set_value();
    });
    done.get_future().wait();
}

void LoadSession::start() {
    connection_->start();
}

void LoadSession::finish() {
    link_->post([this] {
        if (finished_) {
            return;
        }
        finished_ = true;
        if (pacer_) {
            pacer_->cancel();
        }
        if (link_->state() == ConnectionState::connected) {
            (void)link_->send_text(R"({"type":"end_session","reason":"completed"})");
        }
    });
}

void LoadSession::on_message(const nlohmann::json& message) {
    auto type = message.value("type", std::string());
    if (type == "session_started") {
        link_->complete_authentication();
        on_started();
    } else if (type == "final_transcript") {
        transcript_at_ = Clock::now();
    } else if (type == "final_response") {
        ++tally_.replies;
    } else if (type == "session_ended") {
        active_.store(false, std::memory_order_release);
    }
}

void LoadSession::on_started() {
    // A resume after a drop keeps the frame clock: frames due meanwhile count as dropped.
    ++tally_.sessions_started;
    active_.store(true, std::memory_order_release);
    if (pacer_ || config_.idle) {
        return;
    }
    pacer_ = std::make_unique<asio::steady_timer>(config_.connection.io_thread->context());
    first_due_ = Clock::now();
    tick();
}

void LoadSession::schedule_tick() {
    auto due = first_due_ + std::chrono::milliseconds(audio_.frame_ms) * next_frame_;
    pacer_->expires_at(due);
    pacer_->async_wait([this](const asio::error_code& ec) {
        if (!ec) {  // checked first: a cancelled wait may outlive the session
            tick();
        }
    });
}

void LoadSession::tick() {
    if (finished_) {
        return;
    }

    // Every frame that is due goes now; under overload a late frame is sent late and counted,
    // never skipped, so the backlog shows in the figures.
    auto now = Clock::now();
    const auto period = std::chrono::milliseconds(audio_.frame_ms);
    while (first_due_ + period * next_frame_ <= now) {
        auto due = first_due_ + period * next_frame_;
        send_frame(static_cast<std::size_t>(next_frame_ % audio_.packets.size()), due);
        ++next_frame_;
    }

    // Live mode plays replies out on the same clock.
    if (jitter_) {
        play_out(now);
    }
    schedule_tick();
}

void LoadSession::send_frame(std::size_t index, Clock::time_point due) {
    // Pre-encoded frames are copied into the message; live frames are encoded first.
    // TODO: send from a shared buffer: this copy and websocketpp's own (message and frame
    // header) cost three allocations per frame, most of the client's CPU per session.
    std::string packet;
    if (encoder_) {
        audio::EncodedFrame frame;
        const auto& pcm = audio_.pcm[index];
        if (encoder_->encode(audio::Span<const float>(pcm.data(), pcm.size()), frame)) {
            ++tally_.encode_errors;
            return;
        }
        packet.assign(reinterpret_cast<const char*>(frame.bytes.data()), frame.size);
    } else {
        packet = audio_.packets[index];
    }

    if (!active() || link_->send_binary(std::move(packet))) {
        ++tally_.frames_dropped;
        return;
    }
    auto latency = Clock::now() - due;
    ++tally_.frames_sent;
    tally_.send_latency.record(micros(latency));
    if (latency > std::chrono::milliseconds(audio_.frame_ms)) {
        ++tally_.frames_late;
    }
}

void LoadSession::on_binary(std::string_view bytes) {
    // The first frame after a transcript is the reply's time to first audio.
    auto now = Clock::now();
    ++tally_.reply_frames;
    if (transcript_at_) {
        tally_.reply_first_audio.record(micros(now - *transcript_at_));
        transcript_at_.reset();
    }
    if (!jitter_) {
        return;
    }
    audio::Span<const std::uint8_t> packet(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                           bytes.size());
    if (jitter_->push(reply_sequence_++, packet, now) && arrivals_size_ < arrivals_.size()) {
        arrivals_[(arrivals_head_ + arrivals_size_++) % arrivals_.size()] = now;
    }
}

void LoadSession::play_out(Clock::time_point now) {
    // One pull per frame period; a pull that decoded a packet ends that packet's wait.
    jitter_->pull(audio::Span<float>(playout_frame_.data(), playout_frame_.size()), now);
    auto played = jitter_->stats().frames_decoded;
    for (; decoded_seen_ < played && arrivals_size_ > 0; ++decoded_seen_) {
        tally_.receive_to_playout.record(micros(now - arrivals_[arrivals_head_]));
        arrivals_head_ = (arrivals_head_ + 1) % arrivals_.size();
        --arrivals_size_;
    }
    decoded_seen_ = played;
}

}  // namespace olympus::cli
