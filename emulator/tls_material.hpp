// The emulator's TLS certificate and key, generated or loaded from PEM files. Built once at
// construction, then only read.
#pragma once

#include <string>

namespace olympus::emulator {

struct TlsMaterial {
    std::string certificate_pem;
    std::string private_key_pem;

    /// A self-signed certificate for DNS:localhost and IP:127.0.0.1, valid from an hour ago for
    /// 30 days, with a fresh P-256 key.
    static TlsMaterial generate_self_signed();
    /// Reads both files; throws std::runtime_error naming the file that is missing or not PEM.
    static TlsMaterial load(const std::string& cert_file, const std::string& key_file);
};

}  // namespace olympus::emulator
