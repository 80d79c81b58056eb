// Emulated voice stream connection; see voice_connection.hpp.
#include "voice_connection.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <sndfile.h>

namespace olympus::emulator {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr std::size_t kMaxVoiceRecords = 10'000;
constexpr std::size_t kSessionsWithAudio = 64;
constexpr std::size_t kMaxAudioFiles = 64;
constexpr std::size_t kMaxOpusPacket = 1275;
constexpr int kMaxUtteranceSeconds = 30;
constexpr auto kSessionCheckPeriod = std::chrono::milliseconds(100);

double frame_dbfs(const std::vector<float>& pcm) {
    double sum = 0;
    for (float x : pcm) {
        sum += static_cast<double>(x) * static_cast<double>(x);
    }
    double rms = std::sqrt(sum / std::max<std::size_t>(pcm.size(), 1));
    return 20.0 * std::log10(std::max(rms, 1e-9));
}

int frames_in(std::chrono::milliseconds span, int frame_ms) {
    return std::max(1, static_cast<int>(span.count() / frame_ms));
}

std::string format_seconds(std::size_t samples, int rate) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", static_cast<double>(samples) / rate);
    return text;
}

// libsndfile virtual I/O over a std::string, for writing audio files in memory.
struct MemoryFile {
    std::string bytes;
    sf_count_t position = 0;
};

sf_count_t mem_length(void* user) {
    return static_cast<sf_count_t>(static_cast<MemoryFile*>(user)->bytes.size());
}
sf_count_t mem_seek(sf_count_t offset, int whence, void* user) {
    auto* file = static_cast<MemoryFile*>(user);
    sf_count_t base = whence == SEEK_SET   ? 0
                      : whence == SEEK_CUR ? file->position
                                           : mem_length(user);
    file->position = std::max<sf_count_t>(0, base + offset);
    return file->position;
}
sf_count_t mem_read(void* out, sf_count_t count, void* user) {
    auto* file = static_cast<MemoryFile*>(user);
    auto available = std::max<sf_count_t>(0, mem_length(user) - file->position);
    auto n = std::min(count, available);
    std::memcpy(out, file->bytes.data() + file->position, static_cast<std::size_t>(n));
    file->position += n;
    return n;
}
sf_count_t mem_write(const void* in, sf_count_t count, void* user) {
    auto* file = static_cast<MemoryFile*>(user);
    auto end = static_cast<std::size_t>(file->position + count);
    if (file->bytes.size() < end) {
        file->bytes.resize(end);
    }
    std::memcpy(file->bytes.data() + file->position, in, static_cast<std::size_t>(count));
    file->position += count;
    return count;
}
sf_count_t mem_tell(void* user) {
    return static_cast<MemoryFile*>(user)->position;
}

}  // namespace

std::uint64_t frame_digest(std::string_view bytes) {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (char c : bytes) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    }
    return hash;
}

nlohmann::json VoiceFormat::to_json() const {
    return {{"encoding", opus ? "opus" : "pcm_s16le"},
            {"sample_rate", sample_rate},
            {"channels", 1},
            {"frame_ms", frame_ms}};
}

std::optional<VoiceFormat> VoiceFormat::parse(const nlohmann::json& audio, std::string& why) {
    VoiceFormat format;
    if (audio.is_null()) {
        return format;
    }
    if (!audio.is_object()) {
        why = "\"audio\" must be an object";
        return std::nullopt;
    }
    auto encoding = audio.value("encoding", nlohmann::json("opus"));
    if (encoding != "opus" && encoding != "pcm_s16le") {
        why = "audio.encoding must be \"opus\" or \"pcm_s16le\"";
        return std::nullopt;
    }
    format.opus = encoding == "opus";
    auto rate = audio.value("sample_rate", nlohmann::json(48000));
    auto channels = audio.value("channels", nlohmann::json(1));
    auto frame = audio.value("frame_ms", nlohmann::json(20));
    if (!rate.is_number_integer() || !audio::is_opus_rate(rate.get<int>())) {
        why = "audio.sample_rate must be 8000, 12000, 16000, 24000 or 48000";
        return std::nullopt;
    }
    if (channels != 1) {
        why = "audio.channels must be 1";
        return std::nullopt;
    }
    if (!frame.is_number_integer() || (frame != 10 && frame != 20 && frame != 40 && frame != 60)) {
        why = "audio.frame_ms must be 10, 20, 40 or 60";
        return std::nullopt;
    }
    format.sample_rate = rate.get<int>();
    format.frame_ms = frame.get<int>();
    return format;
}

VoiceConnection::VoiceConnection(ServerContext& context, std::unique_ptr<Transport> transport,
                                 std::string base_url)
    : EmulatedConnection(context, std::move(transport)),
      base_url_(std::move(base_url)),
      reply_timer_(context.io),
      session_timer_(context.io) {}

void VoiceConnection::handle(const nlohmann::json& message, const std::string& type) {
    if (type == "start_session") {
        handle_start(message);
    } else if (type == "end_session") {
        handle_end(message);
    } else if (type == "barge_in") {
        handle_barge_in(message);
    } else if (type == "auth" && !ctx_.options.voice_warm_connections) {
        send_error(message.value("id", nlohmann::json()), "invalid_message",
                   "unknown message type \"auth\"");
    } else if (type == "auth") {
        auto token = message.find("token");
        if (token == message.end() || !token->is_string()) {
            send_error(message.value("id", nlohmann::json()), "invalid_message",
                       "auth needs a string \"token\"");
        } else if (accept_token(token->get<std::string>(), is_authenticated())) {
            send({{"type", "auth_success"},
                  {"user_id", claims().user_id},
                  {"tenant_id", claims().tenant_id},
                  {"permissions", claims().permissions},
                  {"expires_at", rfc3339_seconds(claims().expires_at)}});
            authenticated();
        }
    } else {
        send_error(message.value("id", nlohmann::json()), "invalid_message",
                   "unknown message type \"" + type + "\"");
    }
}

void VoiceConnection::handle_start(const nlohmann::json& message) {
    const auto id = message.value("id", nlohmann::json());

    // The request must be complete before the token is even looked at.
    std::string why;
    auto format = VoiceFormat::parse(message.value("audio", nlohmann::json()), why);
    for (const char* field : {"location_id", "channel", "access_token"}) {
        auto it = message.find(field);
        if (it == message.end() || !it->is_string()) {
            why = std::string("start_session needs a string \"") + field + "\"";
        }
    }
    if (!why.empty() || !format) {
        send_error(id, "invalid_message", why);
        return;
    }
    if (session_) {
        send_error(id, "invalid_message", "a session is already running on this connection");
        return;
    }
    if (!accept_token(message["access_token"].get<std::string>(), is_authenticated())) {
        return;
    }
    authenticated();
    if (ctx_.voice_fault == VoiceFault::refuse_start) {
        send_error(id, "unauthorized", "voice ordering is not enabled for this location");
        return;
    }

    // Resume the named session when it may be, else start a new one.
    auto state = find_resumable(message);
    bool resumed = state != nullptr;
    if (!state) {
        state = new_session(*format, why);
        if (!state) {
            send_error(id, "invalid_message", why);
            return;
        }
    }
    state->attached = true;
    state->owner = weak_from_this();
    session_ = state;

    // Answer, then greet a new customer.
    nlohmann::json started = {{"type", "session_started"},
                              {"id", id},
                              {"session_id", state->record.session_id},
                              {"audio", state->format.to_json()},
                              {"resumed", resumed}};
    if (resumed) {
        // Lets the client re-send what a dropped link swallowed.
        started["frames_received"] = state->record.frames_received;
    }
    std::string greeting_id = state->record.session_id + "-greeting";
    if (!resumed) {
        started["greeting"] = {{"text", "Welcome to Acme Burgers! What can I get for you today?"},
                               {"response_id", greeting_id}};
    }
    send(started);
    if (!resumed && ctx_.options.greeting_duration.count() > 0) {
        start_reply(synthetic_speech(state->format.sample_rate, ctx_.options.greeting_duration),
                    greeting_id);
    }
    arm(session_timer_, kSessionCheckPeriod, [this] { check_session_timers(); });
}

std::shared_ptr<VoiceSessionState> VoiceConnection::find_resumable(const nlohmann::json& message) {
    // Only the user who started a session may resume it, and only while it waits.
    auto resume = message.find("resume_session_id");
    if (resume == message.end() || !resume->is_string()) {
        return nullptr;
    }
    auto it = ctx_.voice_sessions.find(resume->get<std::string>());
    if (it == ctx_.voice_sessions.end()) {
        return nullptr;
    }
    auto state = it->second;
    auto old = std::static_pointer_cast<VoiceConnection>(state->owner.lock());
    bool held = state->attached && old && old.get() != this;
    if (!state->record.end_reason.empty() || state->user_id != claims().user_id ||
        (!held && Clock::now() - state->detached_at >= ctx_.options.resume_window)) {
        return nullptr;
    }

    // A link the server still holds died without it noticing (half-open): the resume wins.
    if (held) {
        old->hand_over_session();
    }
    ++state->record.resumes;
    return state;
}

void VoiceConnection::hand_over_session() {
    stop_reply();
    session_timer_.cancel();
    session_.reset();
    drop(DropMode::abort);
}

std::shared_ptr<VoiceSessionState> VoiceConnection::new_session(const VoiceFormat& format,
                                                                std::string& why) {
    auto state = std::make_shared<VoiceSessionState>();
    state->format = format;
    if (format.opus) {
        auto decoder = audio::OpusDecoder::create(format.sample_rate, 1);
        audio::EncoderConfig config;
        config.sample_rate = format.sample_rate;
        config.frame_ms = format.frame_ms;
        config.bitrate = 32000;
        auto encoder = audio::OpusEncoder::create(config);
        if (!decoder || !encoder) {
            why = !decoder ? decoder.error().what() : encoder.error().what();
            return nullptr;
        }
        state->decoder.emplace(std::move(decoder).value());
        state->encoder.emplace(std::move(encoder).value());
    }
    auto& record = state->record;
    auto salt = ctx_.events.next_id();
    record.session_id = "voice-sess-" + std::to_string(++ctx_.voice_session_counter) + "-" +
                        salt.substr(salt.size() - 6);
    state->user_id = claims().user_id;
    record.encoding = format.opus ? "opus" : "pcm_s16le";
    record.sample_rate = format.sample_rate;
    record.frame_ms = format.frame_ms;
    state->started = state->last_speech = Clock::now();

    // Old records go first, and only recent sessions keep their audio, so the registry stays
    // bounded however many sessions come.
    ctx_.voice_sessions[record.session_id] = state;
    ctx_.voice_order.push_back(record.session_id);
    while (ctx_.voice_order.size() > kMaxVoiceRecords) {
        ctx_.voice_sessions.erase(ctx_.voice_order.front());
        ctx_.voice_order.pop_front();
    }
    if (ctx_.voice_order.size() > kSessionsWithAudio) {
        auto& old =
            ctx_.voice_sessions[ctx_.voice_order[ctx_.voice_order.size() - 1 - kSessionsWithAudio]];
        std::vector<float>().swap(old->record.received_audio);
        std::vector<std::uint64_t>().swap(old->record.frame_digests);
    }
    return state;
}

void VoiceConnection::handle_end(const nlohmann::json& message) {
    if (!session_) {
        send_error(message.value("id", nlohmann::json()), "invalid_message",
                   "no session is running");
        return;
    }
    auto reason = message.value("reason", std::string("completed"));
    if (reason != "completed" && reason != "cancelled" && reason != "timeout" &&
        reason != "error") {
        reason = "completed";
    }
    end_session(reason);
}

void VoiceConnection::handle_barge_in(const nlohmann::json& message) {
    if (!session_) {
        send_error(message.value("id", nlohmann::json()), "invalid_message",
                   "no session is running");
        return;
    }
    auto played = message.find("played_ms");
    if (played == message.end() || !played->is_number_integer() ||
        played->get<std::int64_t>() < 0) {
        send_error(message.value("id", nlohmann::json()), "invalid_message",
                   "barge_in needs a non-negative integer \"played_ms\"");
        return;
    }
    session_->record.barge_in_played_ms.push_back(played->get<std::int64_t>());
    if (replying_ && message.value("response_id", std::string()) == reply_id_) {
        stop_reply();
    }
}

void VoiceConnection::end_session(const std::string& reason) {
    stop_reply();
    session_timer_.cancel();
    session_->record.end_reason = reason;
    session_->attached = false;
    send({{"type", "session_ended"},
          {"session_id", session_->record.session_id},
          {"reason", reason}});
    session_.reset();

    // A server without warm connections hangs up once the session is over.
    if (!ctx_.options.voice_warm_connections) {
        close(1000, "session ended");
    }
}

void VoiceConnection::check_session_timers() {
    if (!session_) {
        return;
    }
    auto now = Clock::now();
    if (!replying_ && now - session_->last_speech >= ctx_.options.no_speech_timeout) {
        end_session("timeout");
        return;
    }
    if (now - session_->started >= ctx_.options.max_session) {
        end_session("timeout");
        return;
    }
    arm(session_timer_, kSessionCheckPeriod, [this] { check_session_timers(); });
}

void VoiceConnection::on_binary(const std::string& bytes) {
    touch();
    ctx_.stats.received("<binary>");
    if (!session_) {
        send_error(nullptr, "invalid_message", "send start_session before audio");
        return;
    }

    // Relay mode judges speech by packet size and keeps the packets: no codec work at all.
    auto& record = session_->record;
    ++record.frames_received;
    if (record.frame_digests.size() <
        ctx_.options.max_recorded_seconds * 1000 / static_cast<std::size_t>(record.frame_ms)) {
        record.frame_digests.push_back(frame_digest(bytes));
    }
    if (relaying()) {
        detect_speech(bytes.size() >= ctx_.options.speech_packet_bytes, {}, bytes);
        return;
    }

    // Every frame is recorded as heard: decoded, or concealed when it is bad.
    std::vector<float> pcm;
    if (!decode(bytes, pcm)) {
        ++record.bad_frames;
        ctx_.stats.error("bad_audio_frame");
    }
    auto limit = ctx_.options.max_recorded_seconds * static_cast<std::size_t>(record.sample_rate);
    auto room = limit - std::min(limit, record.received_audio.size());
    record.received_audio.insert(
        record.received_audio.end(), pcm.begin(),
        pcm.begin() + static_cast<std::ptrdiff_t>(std::min(room, pcm.size())));
    detect_speech(frame_dbfs(pcm) > ctx_.options.speech_threshold_dbfs, pcm, bytes);
}

bool VoiceConnection::decode(const std::string& bytes, std::vector<float>& pcm) {
    const auto& format = session_->format;
    const auto frame = static_cast<std::size_t>(format.frame_samples());
    pcm.assign(frame, 0.0f);

    // PCM frames must be exactly one frame of 16-bit samples.
    if (!format.opus) {
        if (bytes.size() != frame * 2) {
            return false;
        }
        for (std::size_t i = 0; i < frame; ++i) {
            auto lo = static_cast<std::uint8_t>(bytes[2 * i]);
            auto hi = static_cast<std::uint8_t>(bytes[2 * i + 1]);
            pcm[i] = static_cast<float>(static_cast<std::int16_t>(lo | (hi << 8))) / 32768.0f;
        }
        return true;
    }

    // Opus: a packet of another duration than announced counts as bad, as does a corrupt one.
    audio::Span<const std::uint8_t> packet(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                           bytes.size());
    auto& decoder = *session_->decoder;
    int samples = 0;
    if (bytes.empty() || bytes.size() > kMaxOpusPacket ||
        audio::opus_packet_samples(packet, format.sample_rate) != static_cast<int>(frame) ||
        decoder.decode(packet, audio::Span<float>(pcm.data(), pcm.size()), samples)) {
        (void)decoder.conceal(audio::Span<float>(pcm.data(), pcm.size()));
        return false;
    }
    return true;
}

void VoiceConnection::detect_speech(bool speech, const std::vector<float>& pcm,
                                    const std::string& packet) {
    auto& s = *session_;
    const int frame_ms = s.format.frame_ms;
    const bool relay = relaying();
    s.run_of_speech = speech ? s.run_of_speech + 1 : 0;

    // Talking over a reply interrupts it.
    if (replying_ && s.run_of_speech >= frames_in(ctx_.options.barge_in_speech, frame_ms)) {
        ++s.record.interrupts_sent;
        send({{"type", "interrupt"}, {"response_id", reply_id_}});
        stop_reply();
    }

    // An utterance runs from its first loud frame until enough quiet follows.
    if (speech) {
        s.last_speech = Clock::now();
        if (!s.in_speech) {
            s.in_speech = true;
            s.speech_frames = 0;
            s.utterance.clear();
            s.utterance_packets.clear();
        }
        ++s.speech_frames;
        s.silence_frames = 0;
        if (s.speech_frames % frames_in(std::chrono::milliseconds(500), frame_ms) == 0) {
            send({{"type", "partial_transcript"},
                  {"text", "(speaking, " +
                               format_seconds(s.utterance.size() + s.utterance_packets.size() *
                                                                       s.format.frame_samples(),
                                              s.format.sample_rate) +
                               " s)"}});
        }
    } else if (s.in_speech) {
        ++s.silence_frames;
    }
    const auto max_frames =
        static_cast<std::size_t>(kMaxUtteranceSeconds * 1000 / s.format.frame_ms);
    if (s.in_speech && relay && s.utterance_packets.size() < max_frames) {
        s.utterance_packets.push_back(packet);
    } else if (s.in_speech && !relay &&
               s.utterance.size() <
                   static_cast<std::size_t>(kMaxUtteranceSeconds * s.format.sample_rate)) {
        s.utterance.insert(s.utterance.end(), pcm.begin(), pcm.end());
    }
    if (s.in_speech && s.silence_frames >= frames_in(ctx_.options.utterance_silence, frame_ms)) {
        s.in_speech = false;
        if (s.speech_frames >= frames_in(ctx_.options.min_utterance, frame_ms)) {
            utterance_ended();
        }
    }
}

void VoiceConnection::utterance_ended() {
    auto& s = *session_;
    auto& record = s.record;
    ++record.utterances;

    // The trailing silence is not part of what was said.
    auto trailing = static_cast<std::size_t>(s.silence_frames) * s.format.frame_samples();
    std::vector<float> said(
        s.utterance.begin(),
        s.utterance.end() - static_cast<std::ptrdiff_t>(std::min(trailing, s.utterance.size())));
    std::vector<std::string> said_packets(
        s.utterance_packets.begin(),
        s.utterance_packets.end() - static_cast<std::ptrdiff_t>(std::min<std::size_t>(
                                        s.silence_frames, s.utterance_packets.size())));
    auto seconds = format_seconds(said.size() + said_packets.size() * s.format.frame_samples(),
                                  s.format.sample_rate);
    auto utterance_id = record.session_id + "-u" + std::to_string(record.utterances);
    send({{"type", "final_transcript"},
          {"text",
           "utterance " + std::to_string(record.utterances) + ": " + seconds + " s of speech"},
          {"utterance_id", utterance_id}});

    // The reply echoes what the customer said, streamed or as a file to fetch.
    auto response_id = record.session_id + "-r" + std::to_string(++s.next_response);
    ++record.replies;
    nlohmann::json response = {{"type", "final_response"},
                               {"text", "I heard " + seconds + " seconds. Anything else?"},
                               {"response_id", response_id}};
    if (ctx_.reply_mode == ReplyMode::stream || relaying()) {
        send(response);
        if (relaying()) {
            start_relayed_reply(std::move(said_packets), response_id);
        } else {
            start_reply(std::move(said), response_id);
        }
        return;
    }
    const auto type = ctx_.options.audio_url_type;
    const std::string name = response_id + extension_of(type);
    response["audio_url"] = base_url_ + "/audio/" + name;
    if (ctx_.reply_mode == ReplyMode::audio_url) {
        ctx_.audio_files[name] = audio_file_bytes(said, s.format.sample_rate, type);
    } else if (ctx_.reply_mode == ReplyMode::audio_url_garbage) {
        ctx_.audio_files[name] = "<html><body>this is not audio</body></html>";
    }
    ctx_.audio_file_order.push_back(name);
    while (ctx_.audio_file_order.size() > kMaxAudioFiles) {
        ctx_.audio_files.erase(ctx_.audio_file_order.front());
        ctx_.audio_file_order.pop_front();
    }
    send(response);
}

void VoiceConnection::start_reply(std::vector<float> audio, const std::string& response_id) {
    stop_reply();
    replying_ = true;
    reply_audio_ = std::move(audio);
    reply_pos_ = 0;
    reply_id_ = response_id;
    reply_next_ = Clock::now();
    send_reply_frame();
}

void VoiceConnection::start_relayed_reply(std::vector<std::string> packets,
                                          const std::string& response_id) {
    stop_reply();
    replying_ = true;
    reply_packets_ = std::move(packets);
    reply_pos_ = 0;
    reply_id_ = response_id;
    reply_next_ = Clock::now();
    send_reply_frame();
}

void VoiceConnection::send_reply_frame() {
    if (!replying_ || !session_) {
        return;
    }

    // Relay mode: the packets go back as received, at the same pace.
    if (!reply_packets_.empty()) {
        if (reply_pos_ < reply_packets_.size()) {
            send_binary(reply_packets_[reply_pos_++]);
            ++session_->record.reply_frames_sent;
            reply_next_ += std::chrono::milliseconds(session_->format.frame_ms);
            arm(reply_timer_, reply_next_ - Clock::now(), [this] { send_reply_frame(); });
            return;
        }
        auto duration_ms =
            static_cast<std::int64_t>(reply_packets_.size()) * session_->format.frame_ms;
        send({{"type", "response_audio_done"},
              {"response_id", reply_id_},
              {"duration_ms", duration_ms}});
        replying_ = false;
        reply_packets_.clear();
        return;
    }

    if (ctx_.voice_fault == VoiceFault::flood_reply_frames) {
        flood_reply_frames();
        return;
    }

    // One frame now, the next one a frame period after this one was due: no drift.
    // A wrong-format fault sends frames of twice the announced length.
    const bool long_frames = ctx_.voice_fault == VoiceFault::wrong_reply_format;
    const auto frame =
        static_cast<std::size_t>(session_->format.frame_samples()) * (long_frames ? 2 : 1);
    if (reply_pos_ < reply_audio_.size()) {
        std::vector<float> pcm(frame, 0.0f);
        auto n = std::min(frame, reply_audio_.size() - reply_pos_);
        std::copy_n(reply_audio_.begin() + static_cast<std::ptrdiff_t>(reply_pos_), n, pcm.begin());
        reply_pos_ += n;
        auto& sent = ++session_->record.reply_frames_sent;
        if (ctx_.voice_fault == VoiceFault::corrupt_reply_frames && sent % 4 == 0) {
            send_binary(std::string(24, '\xff'));
        } else if (long_frames) {
            send_binary(encode_long(pcm.data(), static_cast<int>(frame)));
        } else {
            send_binary(encode(pcm.data(), static_cast<int>(frame)));
        }
        reply_next_ += std::chrono::milliseconds(session_->format.frame_ms * (long_frames ? 2 : 1));
        arm(reply_timer_, reply_next_ - Clock::now(), [this] { send_reply_frame(); });
        return;
    }
    auto duration_ms =
        static_cast<std::int64_t>(reply_audio_.size()) * 1000 / session_->format.sample_rate;
    send({{"type", "response_audio_done"},
          {"response_id", reply_id_},
          {"duration_ms", duration_ms}});
    replying_ = false;
}

void VoiceConnection::flood_reply_frames() {
    // A burst of copies of the reply's next frame per millisecond, looping over the reply:
    // hundreds of times real time, for as long as the fault lasts.
    constexpr int kBurst = 64;
    const auto frame = static_cast<std::size_t>(session_->format.frame_samples());
    if (reply_audio_.size() < frame) {
        reply_audio_.resize(frame, 0.0f);
    }
    if (reply_pos_ + frame > reply_audio_.size()) {
        reply_pos_ = 0;
    }
    auto packet = encode(reply_audio_.data() + reply_pos_, static_cast<int>(frame));
    reply_pos_ += frame;
    for (int i = 0; i < kBurst; ++i) {
        send_binary(packet);
    }
    session_->record.reply_frames_sent += kBurst;
    arm(reply_timer_, std::chrono::milliseconds(1), [this] { send_reply_frame(); });
}

void VoiceConnection::stop_reply() {
    replying_ = false;
    reply_timer_.cancel();
    reply_audio_.clear();
    reply_packets_.clear();
}

std::string VoiceConnection::encode(const float* pcm, int samples) {
    if (!session_->format.opus) {
        std::string bytes(static_cast<std::size_t>(samples) * 2, '\0');
        for (int i = 0; i < samples; ++i) {
            auto v =
                static_cast<std::int16_t>(std::lround(std::clamp(pcm[i], -1.0f, 1.0f) * 32767.0f));
            bytes[2 * i] = static_cast<char>(v & 0xff);
            bytes[2 * i + 1] = static_cast<char>((v >> 8) & 0xff);
        }
        return bytes;
    }
    audio::EncodedFrame out;
    if (session_->encoder->encode(audio::Span<const float>(pcm, static_cast<std::size_t>(samples)),
                                  out)) {
        return {};
    }
    return std::string(reinterpret_cast<const char*>(out.bytes.data()), out.size);
}

std::string VoiceConnection::encode_long(const float* pcm, int samples) {
    auto& s = *session_;
    if (!s.format.opus) {
        return encode(pcm, samples);
    }
    if (!s.long_encoder) {
        audio::EncoderConfig config;
        config.sample_rate = s.format.sample_rate;
        config.frame_ms = std::min(s.format.frame_ms * 2, 60);
        auto encoder = audio::OpusEncoder::create(config);
        if (!encoder) {
            return {};
        }
        s.long_encoder.emplace(std::move(encoder).value());
    }
    audio::EncodedFrame out;
    auto count = std::min(samples, s.long_encoder->frame_samples());
    if (s.long_encoder->encode(audio::Span<const float>(pcm, static_cast<std::size_t>(count)),
                               out)) {
        return {};
    }
    return std::string(reinterpret_cast<const char*>(out.bytes.data()), out.size);
}

void VoiceConnection::released() {
    reply_timer_.cancel();
    session_timer_.cancel();
    replying_ = false;

    // A session cut off by a dropped link waits to be resumed.
    // TODO: the reply it was streaming is dropped with the link and not carried on after the
    // resume, so the customer hears it end early; the client no longer waits for its end.
    if (session_) {
        session_->attached = false;
        session_->detached_at = Clock::now();
        session_.reset();
    }
}

std::vector<float> synthetic_speech(int sample_rate, std::chrono::milliseconds duration) {
    const auto n =
        static_cast<std::size_t>(duration.count()) * static_cast<std::size_t>(sample_rate) / 1000;
    std::vector<float> out(n);
    double phase = 0;
    for (std::size_t i = 0; i < n; ++i) {
        double t = static_cast<double>(i) / sample_rate;
        double f0 = 140.0 + 25.0 * std::sin(2 * kPi * 1.3 * t);
        phase += 2 * kPi * f0 / sample_rate;
        double voiced = 0;
        for (int k = 1; k <= 6; ++k) {
            voiced += std::sin(k * phase) / k;
        }
        double syllables = 0.55 - 0.45 * std::cos(2 * kPi * 3.5 * t);
        out[i] = static_cast<float>(0.18 * voiced * syllables);
    }
    return out;
}

const char* extension_of(AudioFileType type) {
    return type == AudioFileType::mp3 ? ".mp3" : ".wav";
}

std::string audio_file_bytes(const std::vector<float>& pcm, int sample_rate, AudioFileType type) {
    MemoryFile file;
    SF_VIRTUAL_IO io{mem_length, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info{};
    info.samplerate = sample_rate;
    info.channels = 1;
    info.format = type == AudioFileType::mp3 ? SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III
                                             : SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    SNDFILE* sf = sf_open_virtual(&io, SFM_WRITE, &info, &file);
    if (sf == nullptr) {
        return {};
    }
    sf_write_float(sf, pcm.data(), static_cast<sf_count_t>(pcm.size()));
    sf_close(sf);
    return file.bytes;
}

}  // namespace olympus::emulator
