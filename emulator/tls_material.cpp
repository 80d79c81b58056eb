// Self-signed certificate generation with OpenSSL; see tls_material.hpp.
#include "tls_material.hpp"

#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace olympus::emulator {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
    void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

std::string to_pem(const std::function<int(BIO*)>& write) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get()) != 1) {
        throw std::runtime_error("could not encode TLS material as PEM");
    }
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

void add_extension(X509* cert, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
        throw std::runtime_error("could not add a certificate extension");
    }
}

std::string read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error(std::string("cannot read TLS ") + what + " '" + path + "'");
    }
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

TlsMaterial TlsMaterial::generate_self_signed() {
    // A P-256 key is quick to make, so every emulator can have its own.
    PkeyPtr key(EVP_EC_gen("P-256"));
    X509Ptr cert(X509_new());
    if (!key || !cert) {
        throw std::runtime_error("could not generate a TLS key");
    }

    // Subject and issuer are the same: this certificate is its own CA.
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(std::time(nullptr)));
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("Olympus emulator"), -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);

    // Clients check names against the subjectAltName, so both ways to reach loopback are listed.
    add_extension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    add_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
    add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), NID_subject_key_identifier, "hash");
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
        throw std::runtime_error("could not sign the TLS certificate");
    }

    TlsMaterial material;
    material.certificate_pem =
        to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()); });
    material.private_key_pem = to_pem([&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    return material;
}

TlsMaterial TlsMaterial::load(const std::string& cert_file, const std::string& key_file) {
    TlsMaterial material;
    material.certificate_pem = read_file(cert_file, "certificate");
    material.private_key_pem = read_file(key_file, "key");
    if (material.certificate_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
        throw std::runtime_error("'" + cert_file + "' is not a PEM certificate");
    }
    if (material.private_key_pem.find("PRIVATE KEY-----") == std::string::npos) {
        throw std::runtime_error("'" + key_file + "' is not a PEM private key");
    }
    return material;
}

}  // namespace olympus::emulator
