// The software post of the lane tests; see simulated_post.hpp. One pacing thread per opened
// device pair plays the part of the sound card's callbacks.
#include "simulated_post.hpp"

#include <cmath>
#include <random>
#include <thread>

#include "olympus/audio/spsc_ring.hpp"

namespace olympus::lane::test {
namespace {

using Clock = std::chrono::steady_clock;

double block_dbfs(const float* x, std::size_t n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
        sum += double{x[i]} * double{x[i]};
    }
    return 10.0 * std::log10(std::max(sum / static_cast<double>(n), 1e-12));
}

}  // namespace

void PostControl::say(const std::vector<float>& pcm) {
    std::lock_guard lock(mutex_);
    customer_.insert(customer_.end(), pcm.begin(), pcm.end());
}

bool PostControl::speaking() const {
    std::lock_guard lock(mutex_);
    return !customer_.empty();
}

std::vector<float> PostControl::speaker() const {
    std::lock_guard lock(mutex_);
    return speaker_log_;
}

std::vector<float> PostControl::microphone() const {
    std::lock_guard lock(mutex_);
    return mic_log_;
}

std::size_t PostControl::loud_speaker_samples(std::size_t from) const {
    std::lock_guard lock(mutex_);
    std::size_t loud = 0;
    for (std::size_t i = from; i + 160 <= speaker_log_.size(); i += 160) {
        loud += block_dbfs(speaker_log_.data() + i, 160) > -50 ? 160 : 0;
    }
    return loud;
}

// One opened pair: a capture ring, a playback ring and the thread that moves 10 ms at a time
// between them through the box.
class SimulatedIo final : public PostIo {
public:
    SimulatedIo(std::shared_ptr<PostControl> control, int rate, audio::PlaybackTap tap)
        : control_(std::move(control)),
          rate_(rate),
          tap_(tap),
          capture_(1 << 16),
          playback_(1 << 16),
          echo_(make_echo(control_->box(), rate)) {
        thread_ = std::thread([this] { run(); });
    }

    ~SimulatedIo() override {
        stop_.store(true);
        thread_.join();
    }

    std::size_t read_frame(audio::Span<float> out, std::chrono::milliseconds timeout) override {
        const auto deadline = Clock::now() + timeout;
        std::size_t got = capture_.try_pop_bulk(out);
        while (got < out.size() && Clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            got += capture_.try_pop_bulk(out.subspan(got, out.size() - got));
        }
        return got;
    }

    std::size_t write(audio::Span<const float> pcm) noexcept override {
        return playback_.try_push_bulk(pcm);
    }

    void fade_out_and_flush() noexcept override {
        flushed_.store(false);
        fade_.store(true);
    }
    bool flush_done() const noexcept override { return flushed_.load(); }
    std::uint64_t played_samples() const noexcept override { return played_.load(); }
    std::uint64_t queued_samples() const noexcept override { return playback_.size(); }

    audio::StreamStats capture_stats() const noexcept override {
        audio::StreamStats s;
        s.callbacks = callbacks_.load();
        s.device_rate = rate_;
        return s;
    }
    audio::StreamStats playback_stats() const noexcept override { return capture_stats(); }
    int far_end_rate() const noexcept override { return rate_; }
    double reported_delay_ms() const noexcept override { return 0; }
    std::string describe() const override { return "input=simulated output=simulated"; }

private:
    static audio::EchoPath make_echo(const PostControl::Box& box, int rate) {
        audio::EchoPathConfig config;
        config.sample_rate = rate;
        config.delay_ms = box.delay_ms;
        config.gain_db = box.gain_db;
        std::vector<float> taps(static_cast<std::size_t>(rate / 200), 0.0f);  // 5 ms of box
        taps[0] = 1.0f;
        taps[taps.size() / 3] = 0.35f;
        taps.back() = -0.2f;
        config.impulse_response = taps;
        return audio::EchoPath::create(config).value();
    }

    void run() {
        // Ten milliseconds per tick on absolute deadlines, like a sound card's clock.
        const std::size_t n = static_cast<std::size_t>(rate_ / 100);
        std::vector<float> speaker(n), mic(n);
        std::mt19937 random(5);
        std::normal_distribution<float> noise(0.0f, 3e-4f);
        auto next = Clock::now();
        while (!stop_.load()) {
            next += std::chrono::milliseconds(10);
            std::this_thread::sleep_until(next);
            if (control_->stalled_.load()) {
                continue;  // a stalled driver: no callbacks at all
            }
            play(speaker);
            {
                std::lock_guard lock(control_->mutex_);
                for (std::size_t i = 0; i < n; ++i) {
                    mic[i] = noise(random);
                    if (!control_->customer_.empty()) {
                        mic[i] += control_->customer_.front();
                        control_->customer_.pop_front();
                    }
                }
                if (control_->box().echo) {
                    echo_.couple(speaker, mic);
                }
                control_->speaker_log_.insert(control_->speaker_log_.end(), speaker.begin(),
                                              speaker.end());
                control_->mic_log_.insert(control_->mic_log_.end(), mic.begin(), mic.end());
            }
            (void)capture_.try_push_bulk(audio::Span<const float>(mic));
            callbacks_.fetch_add(1);
        }
    }

    void play(std::vector<float>& speaker) {
        // The speaker's 10 ms, faded and flushed on a barge-in, then handed to the tap.
        const std::size_t got = playback_.try_pop_bulk(audio::Span<float>(speaker));
        std::fill(speaker.begin() + static_cast<std::ptrdiff_t>(got), speaker.end(), 0.0f);
        if (fade_.exchange(false)) {
            for (std::size_t i = 0; i < speaker.size(); ++i) {
                speaker[i] *= 1.0f - static_cast<float>(i) / static_cast<float>(speaker.size());
            }
            auto rest = playback_.read_regions(playback_.capacity());
            playback_.commit_read(rest.size());
            flushed_.store(true);
        }
        played_.fetch_add(got);
        if (tap_.fn != nullptr) {
            tap_.fn(tap_.context, speaker.data(), speaker.size());
        }
    }

    std::shared_ptr<PostControl> control_;
    const int rate_;
    const audio::PlaybackTap tap_;
    audio::SpscRing<float> capture_;   // pacing thread -> audio worker
    audio::SpscRing<float> playback_;  // sink -> pacing thread
    audio::EchoPath echo_;             // pacing thread
    std::atomic<bool> fade_{false}, flushed_{false}, stop_{false};
    std::atomic<std::uint64_t> played_{0}, callbacks_{0};
    std::thread thread_;
};

audio::Result<std::unique_ptr<PostIo>> SimulatedPost::open(int rate, audio::PlaybackTap far_end) {
    control_->opens_.fetch_add(1);
    if (control_->unplugged_.load()) {
        return audio::Error{audio::make_error_code(audio::errc::device_not_found),
                            "capture device=\"simulated\" (unplugged)"};
    }
    return std::unique_ptr<PostIo>(new SimulatedIo(control_, rate, far_end));
}

}  // namespace olympus::lane::test
