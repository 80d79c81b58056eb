// Tests of device listing and selection against the JACK dummy server.
#include "olympus/audio/device.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "olympus/audio/capture_stream.hpp"

#include "jack_server.hpp"

namespace olympus::audio {
namespace {

TEST(Devices, ListsTheVirtualJackDevice) {
    // The JACK dummy server shows up as device "system" with 2 inputs, 2 outputs, 48 kHz.
    OLYMPUS_REQUIRE_JACK();
    auto library = PortAudioLibrary::acquire();
    ASSERT_TRUE(library) << library.error().what();
    const auto devices = list_devices();
    const auto it = std::find_if(devices.begin(), devices.end(), [](const DeviceInfo& d) {
        return d.name == "system" && d.host_api.find("JACK") != std::string::npos;
    });
    ASSERT_NE(it, devices.end());
    EXPECT_EQ(it->max_input_channels, 2);
    EXPECT_EQ(it->max_output_channels, 2);
    EXPECT_EQ(it->default_sample_rate, 48000.0);
    EXPECT_NE(std::find(it->supported_rates.begin(), it->supported_rates.end(), 48000),
              it->supported_rates.end());
}

TEST(Devices, SelectsByIndexAndByNameSubstring) {
    // "SYST" (any case) and the device's index both select the JACK device.
    OLYMPUS_REQUIRE_JACK();
    auto library = PortAudioLibrary::acquire();
    ASSERT_TRUE(library);
    auto by_name = find_device("SYST", Direction::capture);
    ASSERT_TRUE(by_name) << by_name.error().what();
    EXPECT_EQ(by_name.value().name, "system");
    auto by_index = find_device(std::to_string(by_name.value().index), Direction::playback);
    ASSERT_TRUE(by_index) << by_index.error().what();
    EXPECT_EQ(by_index.value().name, "system");
}

TEST(Devices, MissingDeviceErrorNamesTheSelector) {
    // A name nothing matches and an index past the end fail with the selector in the message;
    // opening a stream on such a device fails the same way.
    OLYMPUS_REQUIRE_JACK();
    auto library = PortAudioLibrary::acquire();
    ASSERT_TRUE(library);
    auto missing = find_device("drive-thru-mic-7", Direction::capture);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, errc::device_not_found);
    EXPECT_NE(missing.error().what().find("drive-thru-mic-7"), std::string::npos);

    auto out_of_range = find_device("999", Direction::playback);
    ASSERT_FALSE(out_of_range);
    EXPECT_NE(out_of_range.error().what().find("999"), std::string::npos);

    DeviceStreamConfig config;
    config.device = "drive-thru-mic-7";
    auto stream = CaptureStream::open(config);
    ASSERT_FALSE(stream);
    EXPECT_NE(stream.error().what().find("drive-thru-mic-7"), std::string::npos);
}

}  // namespace
}  // namespace olympus::audio
