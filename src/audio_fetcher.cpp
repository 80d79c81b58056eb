// The audio_url fetcher; see audio_fetcher.hpp. One call runs entirely on the calling thread.
#include "audio_fetcher.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>

#include <curl/curl.h>
#include <sndfile.h>

#include "olympus/audio/resampler.hpp"
#include "olympus/error.hpp"

namespace olympus::detail {
namespace {

struct Download {
    std::string body;
    bool too_large = false;
    const std::atomic<bool>* cancel = nullptr;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* download = static_cast<Download*>(user);
    if (download->body.size() + size * count > kMaxAudioUrlBytes) {
        download->too_large = true;
        return 0;  // makes curl fail with CURLE_WRITE_ERROR
    }
    download->body.append(data, size * count);
    return size * count;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<Download*>(user)->cancel->load(std::memory_order_relaxed) ? 1 : 0;
}

bool is_tls_failure(CURLcode code) {
    switch (code) {
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
            return true;
        default:
            return false;
    }
}

// libsndfile reads the body from memory through its virtual I/O.
struct MemoryReader {
    const std::string* bytes;
    sf_count_t position = 0;
};
sf_count_t mem_length(void* user) {
    return static_cast<sf_count_t>(static_cast<MemoryReader*>(user)->bytes->size());
}
sf_count_t mem_seek(sf_count_t offset, int whence, void* user) {
    auto* r = static_cast<MemoryReader*>(user);
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? r->position : mem_length(user);
    r->position = std::clamp<sf_count_t>(base + offset, 0, mem_length(user));
    return r->position;
}
sf_count_t mem_read(void* out, sf_count_t count, void* user) {
    auto* r = static_cast<MemoryReader*>(user);
    auto n = std::min(count, mem_length(user) - r->position);
    std::memcpy(out, r->bytes->data() + r->position, static_cast<std::size_t>(n));
    r->position += n;
    return n;
}
sf_count_t mem_write(const void*, sf_count_t, void*) {
    return 0;
}
sf_count_t mem_tell(void* user) {
    return static_cast<MemoryReader*>(user)->position;
}

std::error_code decode(const std::string& body, int sample_rate, std::vector<float>& pcm,
                       std::string& detail) {
    // Open from memory; libsndfile recognises the container by its content, not a name.
    MemoryReader reader{&body};
    SF_VIRTUAL_IO io{mem_length, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info{};
    SNDFILE* file = sf_open_virtual(&io, SFM_READ, &info, &reader);
    if (file == nullptr || info.channels <= 0 || info.samplerate <= 0) {
        detail = std::string("not audio: ") + sf_strerror(file);
        if (file != nullptr) {
            sf_close(file);
        }
        return make_error_code(errc::audio_not_decodable);
    }

    // Read everything, downmixed to mono, up to the bound on a reply's length.
    std::vector<float> block(4096 * static_cast<std::size_t>(info.channels));
    std::vector<float> mono;
    const auto limit =
        static_cast<std::size_t>(kMaxReplySeconds) * static_cast<std::size_t>(info.samplerate);
    sf_count_t frames = 0;
    while ((frames = sf_readf_float(file, block.data(), 4096)) > 0) {
        if (mono.size() + static_cast<std::size_t>(frames) > limit) {
            sf_close(file);
            detail = "the audio is longer than " + std::to_string(kMaxReplySeconds) + " s";
            return make_error_code(errc::audio_too_large);
        }
        for (sf_count_t i = 0; i < frames; ++i) {
            float sum = 0;
            for (int c = 0; c < info.channels; ++c) {
                sum += block[static_cast<std::size_t>(i * info.channels + c)];
            }
            mono.push_back(sum / static_cast<float>(info.channels));
        }
    }
    sf_close(file);
    if (mono.empty()) {
        detail = "the audio file holds no samples";
        return make_error_code(errc::audio_not_decodable);
    }

    // Resample to the playout rate.
    auto resampler = audio::Resampler::create(info.samplerate, sample_rate);
    if (!resampler) {
        detail = resampler.error().what();
        return make_error_code(errc::audio_not_decodable);
    }
    pcm.assign(resampler.value().output_size(mono.size()) + 64, 0.0f);
    std::size_t consumed = 0, produced = 0;
    resampler.value().process(mono, pcm, consumed, produced);
    pcm.resize(produced);
    return {};
}

}  // namespace

std::error_code fetch_audio(const std::string& url, const TlsOptions& tls,
                            std::chrono::milliseconds timeout, int sample_rate,
                            const std::atomic<bool>& cancel, std::vector<float>& pcm,
                            std::string& detail) {
    static std::once_flag init;
    std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

    // One easy handle per download: http(s) only, bounded in time and size (an announced
    // length over the bound fails before the body is read).
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) {
        detail = "curl_easy_init failed";
        return make_error_code(errc::audio_fetch_failed);
    }
    Download download;
    download.cancel = &cancel;
    CURL* h = curl.get();
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(kMaxAudioUrlBytes));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<long long>(timeout.count(), 5000)));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &download);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &download);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "olympus-voice/0.1");

    // The stream's TLS rules: the same trust anchors, peer and host name checks.
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls.verify_peer ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls.verify_hostname ? 2L : 0L);
    curl_blob blob{const_cast<char*>(tls.ca_pem.data()), tls.ca_pem.size(), CURL_BLOB_COPY};
    if (!tls.ca_file.empty()) {
        curl_easy_setopt(h, CURLOPT_CAINFO, tls.ca_file.c_str());
    } else if (!tls.ca_pem.empty()) {
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }

    // Fetch; a TLS failure, a failed transfer and an HTTP error are told apart.
    CURLcode result = curl_easy_perform(h);
    if (result == CURLE_FILESIZE_EXCEEDED || download.too_large) {
        detail = "the body is larger than " + std::to_string(kMaxAudioUrlBytes >> 20) + " MiB";
        return make_error_code(errc::audio_too_large);
    }
    if (result != CURLE_OK) {
        detail = curl_easy_strerror(result);
        return make_error_code(is_tls_failure(result) ? errc::audio_fetch_tls
                                                      : errc::audio_fetch_failed);
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
        detail = "HTTP status " + std::to_string(status);
        return make_error_code(errc::audio_fetch_failed);
    }
    return decode(download.body, sample_rate, pcm, detail);
}

}  // namespace olympus::detail
