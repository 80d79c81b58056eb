// Helpers shared by tests: polling a condition with a deadline instead of sleeping, deadlines that
// stretch under sanitizers, temporary directories.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace olympus::test {

/// Polls `condition` every millisecond until it holds or `timeout` passes; returns its last
/// value. For state that has no notification to wait on.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(5));

/// `deadline` stretched by $OLYMPUS_TEST_TIME_SCALE (sanitizer builds run several times
/// slower). For deadlines only: the intervals a test's faults act on must not stretch.
std::chrono::milliseconds scaled(std::chrono::milliseconds deadline);

/// A fresh empty directory under the system temp dir, removed by the caller.
std::string make_temp_dir(const std::string& prefix);

}  // namespace olympus::test
