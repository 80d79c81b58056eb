// Session recordings: stereo WAV and control JSONL, written on the recorder's own thread; see
// session_recorder.hpp.
#include "olympus/lane/session_recorder.hpp"

#include <cerrno>
#include <cstring>

#include "olympus/connection.hpp"
#include "olympus/log.hpp"

namespace olympus::lane {
namespace {

constexpr std::size_t kRingSamples = 1 << 17;  // 4 s of stereo at 16 kHz
constexpr auto kWritePeriod = std::chrono::milliseconds(100);

}  // namespace

audio::Result<std::unique_ptr<SessionRecorder>> SessionRecorder::create(
    const std::string& directory, const std::string& name, int rate, nlohmann::json header,
    Counter& errors) {
    // Both files first; without them there is nothing to record into.
    const std::string base = directory + "/" + name;
    auto wav = audio::WavSink::create(base + ".wav", rate, 2);
    if (!wav) {
        return wav.error();
    }
    (void)wav.value().set_tags(kRecordingSoftware, kRecordingComment);
    std::ofstream jsonl(base + ".jsonl", std::ios::trunc);
    if (!jsonl) {
        return audio::Error{audio::make_error_code(audio::errc::file_write_failed),
                            "file=" + base + ".jsonl (" + std::strerror(errno) + ")"};
    }

    // The header says what the WAV holds, so a replay can pick the customer's channel.
    header["type"] = "recording";
    header["wav"] = name + ".wav";
    header["sample_rate"] = rate;
    header["channels"] = {{"1", "customer"}, {"2", "agent"}};
    header["t"] = format_timestamp(std::chrono::system_clock::now());
    jsonl << header.dump() << '\n';
    std::unique_ptr<SessionRecorder> recorder(new SessionRecorder(
        std::move(wav).value(), std::move(jsonl), base + ".wav", base + ".jsonl", errors));
    recorder->writer_ = std::thread([r = recorder.get()] { r->run_writer(); });
    return recorder;
}

SessionRecorder::SessionRecorder(audio::WavSink wav, std::ofstream jsonl, std::string wav_path,
                                 std::string jsonl_path, Counter& errors)
    : wav_path_(std::move(wav_path)),
      jsonl_path_(std::move(jsonl_path)),
      errors_(errors),
      started_(std::chrono::steady_clock::now()),
      ring_(kRingSamples),
      wav_(std::move(wav)),
      jsonl_(std::move(jsonl)),
      block_(8192) {}

SessionRecorder::~SessionRecorder() {
    finish();
}

void SessionRecorder::push_audio(audio::Span<const float> customer,
                                 audio::Span<const float> agent) noexcept {
    // Interleave into the ring only when the whole block fits: channels never slip.
    const std::size_t n = std::min(customer.size(), agent.size());
    if (failed() || ring_.capacity() - ring_.size() < 2 * n) {
        dropped_.fetch_add(n, std::memory_order_relaxed);
        return;
    }
    float pair[2];
    for (std::size_t i = 0; i < n; ++i) {
        pair[0] = customer[i];
        pair[1] = agent[i];
        (void)ring_.try_push_bulk(audio::Span<const float>(pair, 2));
    }
}

void SessionRecorder::push_message(bool sent, const nlohmann::json& message) {
    // Timestamps both as wall clock and as the offset into the WAV's timeline.
    const auto offset = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started_);
    nlohmann::json line = {{"t", format_timestamp(std::chrono::system_clock::now())},
                           {"offset_ms", offset.count()},
                           {"dir", sent ? "sent" : "received"},
                           {"message", message}};
    {
        std::lock_guard lock(mutex_);
        if (lines_.size() < 10'000) {
            lines_.push_back(line.dump());
        }
    }
    wake_.notify_one();
}

void SessionRecorder::run_writer() {
    // Every write period, or when asked to finish; the final pass writes everything left.
    std::unique_lock lock(mutex_);
    while (!finishing_) {
        wake_.wait_for(lock, kWritePeriod);
        lock.unlock();
        write_pending(false);
        lock.lock();
    }
    lock.unlock();
    write_pending(true);
}

void SessionRecorder::write_pending(bool final) {
    // Control messages, in order.
    std::deque<std::string> lines;
    {
        std::lock_guard lock(mutex_);
        lines.swap(lines_);
    }
    for (const auto& line : lines) {
        if (failed() || !jsonl_.is_open()) {
            break;
        }
        if (!(jsonl_ << line << '\n') || !jsonl_.flush()) {
            stop_recording(jsonl_path_, std::strerror(errno));
        }
    }

    // Audio, in whole stereo frames.
    while (!failed() && wav_) {
        std::size_t got = ring_.try_pop_bulk(audio::Span<float>(block_.data(), block_.size()));
        if (got == 0) {
            break;
        }
        if (wav_->write(audio::Span<const float>(block_.data(), got))) {
            stop_recording(wav_path_, wav_->last_error());
            break;
        }
        frames_.fetch_add(got / 2, std::memory_order_relaxed);
    }

    // At the end, or after a failure, the files are finalised (the WAV header gets its size).
    if (final || failed()) {
        if (wav_) {
            (void)wav_->close();
            wav_.reset();
        }
        if (jsonl_.is_open()) {
            jsonl_.close();
        }
    }
}

void SessionRecorder::stop_recording(const std::string& file, const std::string& why) {
    // One line and one count per recording; the lane itself carries on.
    if (failed_.exchange(true, std::memory_order_acq_rel)) {
        return;
    }
    errors_.inc();
    log::get("lane")->error(
        "recording stopped file={} error=\"{}\": the session goes on unrecorded", file, why);
}

void SessionRecorder::finish() {
    if (finished_) {
        return;
    }
    finished_ = true;
    {
        std::lock_guard lock(mutex_);
        finishing_ = true;
    }
    wake_.notify_one();
    if (writer_.joinable()) {
        writer_.join();
    }
    log::get("lane")->info("recording finished wav={} frames={} dropped={} complete={}", wav_path_,
                           frames_.load(), dropped_.load(), !failed());
}

}  // namespace olympus::lane
