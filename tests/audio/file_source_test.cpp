// Tests of the file source and WAV sink: each supported format decodes to the right speech at
// the pipeline rate, bad files fail with the file named, and real-time pacing does not drift.
#include "olympus/audio/file_source.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>
#include <sndfile.h>

#include "olympus/audio/wav_sink.hpp"

#include "speech.hpp"
#include "support/test_env.hpp"

namespace olympus::audio {
namespace {

class FileSourceTest : public ::testing::Test {
protected:
    void SetUp() override { dir_ = olympus::test::make_temp_dir("olympus-file-source"); }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    // Writes `channels` copies of `mono` (the second at half level) through libsndfile in
    // `format`; false when this libsndfile cannot write it.
    bool write(const std::string& path, int format, int rate, const std::vector<float>& mono,
               int channels = 1) {
        SF_INFO info{};
        info.samplerate = rate;
        info.channels = channels;
        info.format = format;
        SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &info);
        if (file == nullptr) {
            return false;
        }
        std::vector<float> frames(mono.size() * static_cast<std::size_t>(channels));
        for (std::size_t i = 0; i < mono.size(); ++i) {
            for (int c = 0; c < channels; ++c) {
                frames[i * static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)] =
                    c == 0 ? mono[i] : 0.5f * mono[i];
            }
        }
        sf_writef_float(file, frames.data(), static_cast<sf_count_t>(mono.size()));
        return sf_close(file) == 0;
    }

    // Reads a whole file through FileSource at 48 kHz.
    static std::vector<float> read_all(FileSource& source) {
        std::vector<float> all, frame(source.config().frame_samples);
        std::size_t samples = 0;
        while (!source.read_frame(frame, samples) && samples > 0) {
            all.insert(all.end(), frame.begin(), frame.begin() + static_cast<long>(samples));
        }
        return all;
    }

    std::string dir_;
};

TEST_F(FileSourceTest, ReadsEveryFormatAsSpeechAt48k) {
    // The same speech saved as WAV, FLAC, Ogg/Vorbis, Ogg/Opus and MP3 comes out of the source
    // as mono 48 kHz audio of the same length that matches the original.
    const auto& reference = test::speech(48000);
    struct Case {
        const char* name;
        int format;
        int rate;
    };
    const Case cases[] = {
        {"speech.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 22050},
        {"speech.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000},
        {"speech.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 44100},
        {"speech.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 24000},
        {"speech.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        const std::string path = dir_ + "/" + c.name;
        ASSERT_TRUE(write(path, c.format, c.rate, test::speech(c.rate)));

        auto source = FileSource::open(path, FileSourceConfig{});
        ASSERT_TRUE(source) << source.error().what();
        EXPECT_EQ(source.value().info().sample_rate, c.rate);
        const auto decoded = read_all(source.value());

        // Lossy coders add a start-up delay; find it, then compare.
        const double length_ratio =
            static_cast<double>(decoded.size()) / static_cast<double>(reference.size());
        EXPECT_NEAR(length_ratio, 1.0, 0.06);
        const long lag = test::best_lag(reference, decoded, -100, 3000);
        EXPECT_GT(test::correlation(reference, decoded, lag), 0.85) << "lag=" << lag;
    }
}

TEST_F(FileSourceTest, DownmixesStereoToMonoAtAverageLevel) {
    // A stereo file with the right channel at half level becomes mono at 0.75 of the left.
    const auto& speech = test::speech(48000);
    const std::string path = dir_ + "/stereo.wav";
    ASSERT_TRUE(write(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 48000, speech, 2));
    auto source = FileSource::open(path, FileSourceConfig{});
    ASSERT_TRUE(source);
    EXPECT_EQ(source.value().info().channels, 2);
    const auto mono = read_all(source.value());
    ASSERT_GE(mono.size(), speech.size());
    EXPECT_NEAR(test::rms(mono.data(), speech.size()) / test::rms(speech.data(), speech.size()),
                0.75, 0.01);
}

TEST_F(FileSourceTest, BadFilesAreRefusedNamingTheFile) {
    // A missing file, a text file and a file with too many channels each fail at open with an
    // error that names the file; none crashes.
    auto missing = FileSource::open(dir_ + "/nope.wav", FileSourceConfig{});
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, errc::file_open_failed);
    EXPECT_NE(missing.error().what().find("nope.wav"), std::string::npos);

    const std::string text = dir_ + "/notes.wav";
    std::ofstream(text) << "this is not audio, just a shopping list: fries, shake\n";
    auto garbage = FileSource::open(text, FileSourceConfig{});
    ASSERT_FALSE(garbage);
    EXPECT_NE(garbage.error().what().find("notes.wav"), std::string::npos);

    const std::string wide = dir_ + "/wide.wav";
    ASSERT_TRUE(
        write(wide, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, std::vector<float>(1600, 0.1f), 12));
    auto too_many = FileSource::open(wide, FileSourceConfig{});
    ASSERT_FALSE(too_many);
    EXPECT_EQ(too_many.error().code, errc::unsupported_channels);
    EXPECT_NE(too_many.error().what().find("channels=12"), std::string::npos);
}

TEST_F(FileSourceTest, TruncatedAndCorruptFilesEndCleanly) {
    // A WAV cut in half delivers the half that exists; a FLAC with garbage in the middle either
    // reports a read error naming the file or stops early. Neither crashes.
    const auto& speech = test::speech(16000);
    const std::string wav = dir_ + "/cut.wav";
    ASSERT_TRUE(write(wav, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, speech));
    std::filesystem::resize_file(wav, std::filesystem::file_size(wav) / 2);
    auto cut = FileSource::open(wav, FileSourceConfig{});
    ASSERT_TRUE(cut) << cut.error().what();
    const auto half = read_all(cut.value());
    EXPECT_NEAR(static_cast<double>(half.size()), speech.size() * 3.0 / 2.0, speech.size() * 0.05);

    const std::string flac = dir_ + "/broken.flac";
    ASSERT_TRUE(write(flac, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, speech));
    {
        std::fstream f(flac, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<long>(std::filesystem::file_size(flac) / 2));
        const std::string junk(4000, '\x5a');
        f.write(junk.data(), static_cast<long>(junk.size()));
    }
    auto broken = FileSource::open(flac, FileSourceConfig{});
    ASSERT_TRUE(broken);
    std::vector<float> frame(960);
    std::size_t samples = 0, total = 0;
    std::error_code error;
    while (!(error = broken.value().read_frame(frame, samples)) && samples > 0) {
        total += samples;
    }
    if (error) {
        EXPECT_EQ(error, errc::file_read_failed);
        EXPECT_NE(broken.value().error_context().find("broken.flac"), std::string::npos);
    }
    EXPECT_LT(total, speech.size() * 3 + 960);
}

TEST_F(FileSourceTest, WavSinkWritesWhatFileSourceReadsBack) {
    // Speech written by the WAV sink reads back sample for sample (to 16-bit precision).
    const auto& speech = test::speech(48000);
    const std::string path = dir_ + "/out.wav";
    {
        auto sink = WavSink::create(path, 48000);
        ASSERT_TRUE(sink);
        ASSERT_FALSE(sink.value().write(speech));
        EXPECT_EQ(sink.value().samples_written(), static_cast<long long>(speech.size()));
    }
    auto source = FileSource::open(path, FileSourceConfig{});
    ASSERT_TRUE(source);
    const auto back = read_all(source.value());
    ASSERT_GE(back.size(), speech.size());
    EXPECT_GT(test::snr_db(speech.data(), back.data(), speech.size()), 60.0);

    auto bad = WavSink::create(dir_ + "/no/such/dir/out.wav", 48000);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().what().find("no/such/dir"), std::string::npos);
}

TEST_F(FileSourceTest, RealtimePaceHoldsWithinOneMillisecondOver10Seconds) {
    // Ten seconds of audio in 20 ms frames: no frame comes early, and frames at the end of
    // the 10 s are still within 1 ms of their absolute deadlines.
    const std::string path = dir_ + "/tone.wav";
    ASSERT_TRUE(
        write(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, test::sine(300, 0.3, 16000, 160000)));
    FileSourceConfig config;
    config.pace = Pace::realtime;
    auto source = FileSource::open(path, config);
    ASSERT_TRUE(source);

    using Clock = std::chrono::steady_clock;
    std::vector<float> frame(960);
    std::size_t samples = 0;
    std::vector<double> late_ms;
    Clock::time_point start{};
    while (!source.value().read_frame(frame, samples) && samples > 0) {
        const auto now = Clock::now();
        if (late_ms.empty()) {
            start = now;
        }
        const double due_ms = static_cast<double>(late_ms.size()) * 20.0;
        late_ms.push_back(std::chrono::duration<double, std::milli>(now - start).count() - due_ms);
    }
    ASSERT_EQ(late_ms.size(), 500u);
    EXPECT_GE(*std::min_element(late_ms.begin(), late_ms.end()), -0.1);

    // No drift: frames near the end are still on schedule (the best of the last 25 is within
    // 1 ms; one late wake-up on a loaded machine does not count as drift).
    EXPECT_LT(*std::min_element(late_ms.end() - 25, late_ms.end()), 1.0);
    std::sort(late_ms.begin(), late_ms.end());
    EXPECT_LT(late_ms[late_ms.size() / 2], 1.0) << "median lateness";
}

}  // namespace
}  // namespace olympus::audio
