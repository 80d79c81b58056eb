// Helpers shared by tests: polling a condition with a deadline instead of sleeping.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace olympus::test {

/// Polls `condition` every millisecond until it holds or `timeout` passes; returns its last
/// value. For state that has no notification to wait on.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(5));

/// A fresh empty directory under the system temp dir, removed by the caller.
std::string make_temp_dir(const std::string& prefix);

}  // namespace olympus::test
