// Exact accounting of uplink audio for the reliability tests and the voice soak: a source that
// keeps a copy of every frame it delivered, the packets a session made of those frames, an
// order file whose every frame encodes to a distinct packet, and the comparison of what a
// client produced with what the emulator recorded (VoiceSessionRecord::frame_digests): lost,
// repeated and reordered frames, each counted. RecordingVoiceSource::read runs on the session's
// source thread; everything else on the test thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "olympus/voice_io.hpp"
#include "olympus/voice_session.hpp"

namespace olympus::test {

/// The frames a RecordingVoiceSource delivered, in order; shared with the test.
class DeliveredFrames {
public:
    void add(audio::Span<const float> frame);
    std::vector<std::vector<float>> frames() const;

private:
    mutable std::mutex mutex_;
    std::vector<std::vector<float>> frames_;
};

/// Passes another source through and keeps a copy of each frame it delivers.
class RecordingVoiceSource final : public VoiceSource {
public:
    RecordingVoiceSource(std::unique_ptr<VoiceSource> inner,
                         std::shared_ptr<DeliveredFrames> delivered)
        : inner_(std::move(inner)), delivered_(std::move(delivered)) {}

    SourceRead read(audio::Span<float> frame, Clock::time_point& captured) override;
    bool realtime() const override { return inner_->realtime(); }
    void stop() override { inner_->stop(); }
    std::string error() const override { return inner_->error(); }

private:
    std::unique_ptr<VoiceSource> inner_;
    std::shared_ptr<DeliveredFrames> delivered_;
};

/// A drive-thru order as a 48 kHz WAV file, written once per process: 1.5 s of room noise
/// (about -60 dBFS, below the emulator's speech threshold, so that no two frames encode alike),
/// about 3 s of espeak-ng speech, and 1 s of room noise so that the utterance ends.
const std::string& noisy_order_wav();

/// The uplink packets `options` makes of `frames` (Opus with the session's encoder settings),
/// as emulator::frame_digest() values: what a session sends for these frames, in order.
std::vector<std::uint64_t> uplink_digests(const std::vector<std::vector<float>>& frames,
                                          const VoiceSessionOptions& options);

/// The frames of `path` as a FileVoiceSource delivers them to a session with `options`,
/// followed by `trailing_silence`.
std::vector<std::vector<float>> file_frames(const std::string& path,
                                            const VoiceSessionOptions& options,
                                            std::chrono::milliseconds trailing_silence);

/// What the server holds against what the client produced.
struct FrameAudit {
    std::size_t expected = 0;    ///< frames the client produced
    std::size_t received = 0;    ///< frames the server took in
    std::size_t lost = 0;        ///< produced, never received
    std::size_t duplicated = 0;  ///< received again after their first arrival
    std::size_t reordered = 0;   ///< received after a later frame
    std::size_t foreign = 0;     ///< received, but not produced by the client
    std::size_t lost_runs = 0;   ///< runs of consecutive lost frames
    bool distinct = true;        ///< every produced frame differs from the others
    std::string detail;          ///< the first few differences, readable

    /// Every frame exactly once, in order.
    bool exact() const {
        return lost == 0 && duplicated == 0 && reordered == 0 && foreign == 0 &&
               received == expected;
    }
};

/// Compares digests of produced frames with digests of received ones. `expected` should be
/// distinct (FrameAudit::distinct says whether it was); then each count is exact.
FrameAudit audit_frames(const std::vector<std::uint64_t>& expected,
                        const std::vector<std::uint64_t>& received);

}  // namespace olympus::test
