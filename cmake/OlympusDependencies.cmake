# Finds every third-party dependency. Each comes from a Debian 12 package; a missing one stops
# configuration with the name of the package to install.
find_package(PkgConfig)
if(NOT PkgConfig_FOUND)
    message(FATAL_ERROR "pkg-config is missing: apt-get install pkg-config")
endif()

# olympus_require_config(<Package> <debian-package> [COMPONENTS ...])
macro(olympus_require_config name debian_package)
    find_package(${name} ${ARGN} QUIET)
    if(NOT ${name}_FOUND)
        message(FATAL_ERROR "${name} not found: apt-get install ${debian_package}")
    endif()
endmacro()

# olympus_require_pkg(<prefix> <pkg-config module> <debian-package>) defines PkgConfig::<prefix>.
function(olympus_require_pkg prefix module debian_package)
    pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
    if(NOT ${prefix}_FOUND)
        message(FATAL_ERROR "${module} not found: apt-get install ${debian_package}")
    endif()
endfunction()

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
olympus_require_config(OpenSSL libssl-dev)
olympus_require_config(nlohmann_json nlohmann-json3-dev CONFIG)
olympus_require_config(spdlog libspdlog-dev CONFIG)
olympus_require_config(CLI11 libcli11-dev CONFIG)

# websocketpp and standalone Asio are header-only.
find_path(OLYMPUS_WEBSOCKETPP_INCLUDE websocketpp/version.hpp)
if(NOT OLYMPUS_WEBSOCKETPP_INCLUDE)
    message(FATAL_ERROR "websocketpp not found: apt-get install libwebsocketpp-dev")
endif()
find_path(OLYMPUS_ASIO_INCLUDE asio.hpp)
if(NOT OLYMPUS_ASIO_INCLUDE)
    message(FATAL_ERROR "standalone Asio not found: apt-get install libasio-dev")
endif()
add_library(olympus_websocketpp INTERFACE)
target_include_directories(olympus_websocketpp SYSTEM INTERFACE
    ${OLYMPUS_WEBSOCKETPP_INCLUDE} ${OLYMPUS_ASIO_INCLUDE})
target_compile_definitions(olympus_websocketpp INTERFACE
    ASIO_STANDALONE _WEBSOCKETPP_CPP11_STL_ _WEBSOCKETPP_CPP11_THREAD_)
target_link_libraries(olympus_websocketpp INTERFACE OpenSSL::SSL OpenSSL::Crypto Threads::Threads)

olympus_require_pkg(OPUS opus libopus-dev)
olympus_require_pkg(PORTAUDIO portaudio-2.0 portaudio19-dev)
olympus_require_pkg(SNDFILE sndfile libsndfile1-dev)
olympus_require_pkg(SPEEXDSP speexdsp libspeexdsp-dev)
olympus_require_pkg(CURL libcurl libcurl4-openssl-dev)
olympus_require_pkg(SYSTEMD libsystemd libsystemd-dev)
olympus_require_pkg(WEBRTC_APM webrtc-audio-processing libwebrtc-audio-processing-dev)
# The lane survives PortAudio's JACK host after a server restart (lane/jack_workaround.cpp); the
# lane tests feed speech into the JACK dummy server with a client of their own.
olympus_require_pkg(JACK jack libjack-jackd2-dev)

if(OLYMPUS_BUILD_TESTS)
    olympus_require_config(GTest libgtest-dev)
endif()
if(OLYMPUS_BUILD_BENCHMARKS)
    olympus_require_config(benchmark libbenchmark-dev)
    olympus_require_config(Boost libboost-dev)
endif()
