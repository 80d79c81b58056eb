# One place that sets warnings and sanitizers on every project target.

# olympus_configure_target(<target>): warnings (errors with OLYMPUS_WERROR) and sanitizers.
function(olympus_configure_target target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
        -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
        -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
    if(OLYMPUS_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
    if(OLYMPUS_SANITIZE)
        target_compile_options(${target} PRIVATE -fsanitize=${OLYMPUS_SANITIZE}
            -fno-omit-frame-pointer -fno-sanitize-recover=all)
        target_link_options(${target} PRIVATE -fsanitize=${OLYMPUS_SANITIZE})
        # gcc warns that TSan does not model atomic_thread_fence, which Asio's handler
        # invocation uses; Asio's scheduler also orders handlers with a mutex, which TSan
        # does see, so the warning does not hide a race.
        if(OLYMPUS_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
            target_compile_options(${target} PRIVATE -Wno-tsan)
        endif()
    endif()
endfunction()

# Fuzzing: clang only; every target gets coverage instrumentation for libFuzzer, and ASan with
# UBSan unless another sanitizer was asked for.
if(OLYMPUS_BUILD_FUZZERS)
    if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
        message(FATAL_ERROR "OLYMPUS_BUILD_FUZZERS needs clang: CC=clang CXX=clang++ cmake ...")
    endif()
    if(NOT OLYMPUS_SANITIZE)
        set(OLYMPUS_SANITIZE "address,undefined")
    endif()
    add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# Sanitizers must also be on the link line of everything that links a sanitized library.
if(OLYMPUS_SANITIZE)
    add_link_options(-fsanitize=${OLYMPUS_SANITIZE})
endif()

# olympus_add_library(<target> <alias> <sources>...): a static library exported as
# olympus::<alias>, with the public headers of include/ and the project's warnings.
function(olympus_add_library target alias)
    add_library(${target} STATIC ${ARGN})
    add_library(olympus::${alias} ALIAS ${target})
    set_target_properties(${target} PROPERTIES EXPORT_NAME ${alias} POSITION_INDEPENDENT_CODE ON)
    target_include_directories(${target} PUBLIC
        $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)
    olympus_configure_target(${target})
    set_property(GLOBAL APPEND PROPERTY OLYMPUS_EXPORTED_TARGETS ${target})
endfunction()
