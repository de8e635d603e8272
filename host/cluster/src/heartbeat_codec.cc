#include "hakit/cluster/heartbeat_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>

namespace hakit::cluster {

namespace {

using sdk::Result;
using sdk::Status;

constexpr std::uint8_t kMagic[4] = {'H', 'K', 'H', 'B'};
constexpr std::size_t kVersionOffset = 4;
constexpr std::size_t kKeyIdOffset = 6;
// Magic, version, key id, boot id, sequence.
constexpr std::size_t kFixedPrefix = 4 + 2 + kKeyIdSize + 8 + 8;

constexpr std::uint8_t kFlagBusy = 1 << 0;
constexpr std::uint8_t kFlagHandingOver = 1 << 1;
constexpr std::uint8_t kFlagWasLastPrim = 1 << 2;
constexpr std::uint8_t kFlagPeerGenerationKnown = 1 << 3;
constexpr std::uint8_t kFlagPeerInSync = 1 << 4;
constexpr std::uint8_t kKnownFlags = kFlagBusy | kFlagHandingOver | kFlagWasLastPrim |
                                    kFlagPeerGenerationKnown | kFlagPeerInSync;

// How many earlier runs of one sender are remembered as retired. A handful
// covers a node restarted a few times while this one stayed up; more buys
// little since a recorded frame is only useful to an attacker for its state.
constexpr std::size_t kRetiredBoots = 8;

class Writer {
 public:
  void Bytes(const void* p, std::size_t n) {
    auto* b = static_cast<const std::uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  void U8(std::uint8_t v) { out_.push_back(v); }
  void U16(std::uint16_t v) {
    U8(static_cast<std::uint8_t>(v >> 8));
    U8(static_cast<std::uint8_t>(v));
  }
  void U64(std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) U8(static_cast<std::uint8_t>(v >> shift));
  }
  void Str(const std::string& s) {
    U8(static_cast<std::uint8_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  std::vector<std::uint8_t>& out() { return out_; }

 private:
  std::vector<std::uint8_t> out_;
};

// Bounds-checked reads: every accessor fails instead of reading past the end,
// and remembers which field was short so the error can name it.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}

  bool U8(std::uint8_t* v, const char* field) {
    if (!Need(1, field)) return false;
    *v = in_[pos_++];
    return true;
  }
  bool U16(std::uint16_t* v, const char* field) {
    if (!Need(2, field)) return false;
    *v = static_cast<std::uint16_t>((in_[pos_] << 8) | in_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool U64(std::uint64_t* v, const char* field) {
    if (!Need(8, field)) return false;
    std::uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | in_[pos_ + i];
    pos_ += 8;
    *v = r;
    return true;
  }
  bool Bytes(std::uint8_t* out, std::size_t n, const char* field) {
    if (!Need(n, field)) return false;
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool Str(std::string* s, const char* field) {
    std::uint8_t len = 0;
    if (!U8(&len, field)) return false;
    if (!Need(len, field)) return false;
    s->assign(reinterpret_cast<const char*>(in_.data() + pos_), len);
    pos_ += len;
    return true;
  }

  std::size_t pos() const { return pos_; }
  std::size_t left() const { return in_.size() - pos_; }
  const char* short_field() const { return short_field_; }

 private:
  bool Need(std::size_t n, const char* field) {
    if (left() >= n) return true;
    short_field_ = field;
    return false;
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  const char* short_field_ = "";
};

std::array<std::uint8_t, kMacSize> Mac(const ClusterKey& key, const std::uint8_t* data,
                                       std::size_t len) {
  std::array<std::uint8_t, kMacSize> mac{};
  unsigned int mac_len = 0;
  // HMAC() with an empty key still works (OpenSSL treats it as zero bytes);
  // a non-null pointer is passed because some versions treat null as "reuse".
  static const std::uint8_t kEmpty = 0;
  const std::uint8_t* k = key.bytes().empty() ? &kEmpty : key.bytes().data();
  HMAC(EVP_sha256(), k, static_cast<int>(key.bytes().size()), data, len, mac.data(), &mac_len);
  return mac;
}

Status Fail(DecodeError why, DecodeError* out, Status status) {
  if (out) *out = why;
  return status;
}

Status Truncated(const Reader& r, std::size_t size, DecodeError* out) {
  return Fail(DecodeError::kTruncated, out,
              Status::Corruption("truncated heartbeat: " + std::to_string(size) +
                                 " bytes, field '" + r.short_field() + "' runs past the end"));
}

Status Malformed(const std::string& what, DecodeError* out) {
  return Fail(DecodeError::kMalformed, out, Status::Corruption("malformed heartbeat: " + what));
}

}  // namespace

ClusterKey::ClusterKey(std::vector<std::uint8_t> bytes) : bytes_(std::move(bytes)) {
  ConfigHash digest = Sha256(bytes_);
  std::copy_n(digest.begin(), kKeyIdSize, id_.begin());
}

ClusterKey::ClusterKey(const ClusterKey& other) = default;
ClusterKey& ClusterKey::operator=(const ClusterKey& other) {
  if (this != &other) {
    if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
    bytes_ = other.bytes_;
    id_ = other.id_;
  }
  return *this;
}

ClusterKey::~ClusterKey() {
  // The key protects the whole cluster; do not leave it in freed memory.
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

std::string ClusterKey::IdHex() const { return HexEncode(id_); }

const char* DecodeErrorName(DecodeError error) {
  switch (error) {
    case DecodeError::kNone:
      return "ok";
    case DecodeError::kTruncated:
      return "truncated";
    case DecodeError::kMalformed:
      return "malformed";
    case DecodeError::kBadMagic:
      return "bad magic";
    case DecodeError::kUnsupportedVersion:
      return "unsupported version";
    case DecodeError::kUnknownKey:
      return "unknown key";
    case DecodeError::kBadMac:
      return "bad mac";
  }
  return "unknown";
}

Result<std::vector<std::uint8_t>> Encode(const Heartbeat& hb, const ClusterKey& key) {
  if (hb.sender.empty() || hb.sender.size() > 255) {
    return Status::InvalidArgument("heartbeat sender name must be 1..255 bytes, got " +
                                   std::to_string(hb.sender.size()));
  }
  if (hb.module.size() > 255) {
    return Status::InvalidArgument("heartbeat module name longer than 255 bytes: " + hb.module);
  }
  if (hb.resources.size() > 255) {
    return Status::InvalidArgument("heartbeat carries at most 255 resources, got " +
                                   std::to_string(hb.resources.size()));
  }
  for (const auto& r : hb.resources) {
    if (r.name.size() > 255) {
      return Status::InvalidArgument("heartbeat resource name longer than 255 bytes: " + r.name);
    }
  }

  Writer w;
  w.Bytes(kMagic, sizeof kMagic);
  w.U16(kProtocolVersion);
  w.Bytes(key.id().data(), key.id().size());
  w.U64(hb.boot_id);
  w.U64(hb.sequence);
  w.Str(hb.sender);
  w.Str(hb.module);
  w.U8(static_cast<std::uint8_t>(hb.state));
  std::uint8_t flags = (hb.busy ? kFlagBusy : 0) | (hb.handing_over ? kFlagHandingOver : 0) |
                       (hb.was_last_prim ? kFlagWasLastPrim : 0) |
                       (hb.peer_generation_known ? kFlagPeerGenerationKnown : 0) |
                       (hb.peer_in_sync ? kFlagPeerInSync : 0);
  w.U8(flags);
  w.U8(static_cast<std::uint8_t>(hb.data));
  w.Bytes(hb.config_hash.data(), hb.config_hash.size());
  w.U64(hb.generation);
  w.U64(hb.peer_generation_seen);
  w.U8(static_cast<std::uint8_t>(hb.resources.size()));
  for (const auto& r : hb.resources) {
    w.Str(r.name);
    w.U8(r.state);
  }
  if (w.out().size() + kMacSize > kMaxFrameSize) {
    return Status::InvalidArgument("heartbeat for module '" + hb.module + "' would be " +
                                   std::to_string(w.out().size() + kMacSize) +
                                   " bytes, more than " + std::to_string(kMaxFrameSize) +
                                   ": too many or too long resource names");
  }
  auto mac = Mac(key, w.out().data(), w.out().size());
  w.Bytes(mac.data(), mac.size());
  return std::move(w.out());
}

Result<Heartbeat> Decode(std::span<const std::uint8_t> frame, const ClusterKey& key,
                         DecodeError* error) {
  if (error) *error = DecodeError::kNone;
  Reader r(frame);
  Heartbeat hb;

  std::uint8_t magic[4];
  if (!r.Bytes(magic, sizeof magic, "magic")) return Truncated(r, frame.size(), error);
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) {
    return Fail(DecodeError::kBadMagic, error,
                Status::InvalidArgument("not a hakit heartbeat (bad magic)"));
  }
  if (!r.U16(&hb.version, "version")) return Truncated(r, frame.size(), error);
  if (hb.version < kMinProtocolVersion || hb.version > kMaxProtocolVersion) {
    return Fail(
        DecodeError::kUnsupportedVersion, error,
        Status::Unsupported("peer speaks heartbeat protocol version " + std::to_string(hb.version) +
                            ", this node supports " + std::to_string(kMinProtocolVersion) + ".." +
                            std::to_string(kMaxProtocolVersion) + " (sends " +
                            std::to_string(kProtocolVersion) + "): upgrade the older node"));
  }
  KeyId key_id{};
  if (!r.Bytes(key_id.data(), key_id.size(), "key id")) return Truncated(r, frame.size(), error);
  // The key id is public (a hash prefix), so comparing it in plain time is fine.
  if (key_id != key.id()) {
    return Fail(DecodeError::kUnknownKey, error,
                Status::InvalidArgument("sender uses another cluster key (key id " +
                                        HexEncode(key_id) + ", ours " + key.IdHex() +
                                        "): copy the same cluster key file to every node"));
  }
  static_assert(kFixedPrefix == 30);
  if (!r.U64(&hb.boot_id, "boot id") || !r.U64(&hb.sequence, "sequence") ||
      !r.Str(&hb.sender, "sender") || !r.Str(&hb.module, "module")) {
    return Truncated(r, frame.size(), error);
  }
  std::uint8_t state = 0, flags = 0, data = 0, count = 0;
  if (!r.U8(&state, "state") || !r.U8(&flags, "flags") || !r.U8(&data, "data status") ||
      !r.Bytes(hb.config_hash.data(), hb.config_hash.size(), "config hash") ||
      !r.U64(&hb.generation, "generation") ||
      !r.U64(&hb.peer_generation_seen, "peer generation seen") ||
      !r.U8(&count, "resource count")) {
    return Truncated(r, frame.size(), error);
  }
  for (int i = 0; i < count; ++i) {
    ResourceState res;
    if (!r.Str(&res.name, "resource name") || !r.U8(&res.state, "resource state")) {
      return Truncated(r, frame.size(), error);
    }
    hb.resources.push_back(std::move(res));
  }
  const std::size_t body = r.pos();
  std::uint8_t mac[kMacSize];
  if (!r.Bytes(mac, sizeof mac, "mac")) return Truncated(r, frame.size(), error);
  if (r.left() != 0) {
    return Malformed(std::to_string(r.left()) + " trailing bytes after the MAC", error);
  }

  auto expected = Mac(key, frame.data(), body);
  // Constant time, so that timing does not leak how much of a forged MAC is right.
  if (CRYPTO_memcmp(expected.data(), mac, kMacSize) != 0) {
    return Fail(DecodeError::kBadMac, error,
                Status::InvalidArgument(
                    "authentication failed: heartbeat MAC does not match (frame corrupted "
                    "in transit or forged)"));
  }

  // Authenticated from here on: a bad value is a peer bug, not line noise.
  if (state > static_cast<std::uint8_t>(State::kSecond)) {
    return Malformed("unknown state " + std::to_string(state), error);
  }
  if (data > static_cast<std::uint8_t>(DataStatus::kDiverged)) {
    return Malformed("unknown data status " + std::to_string(data), error);
  }
  if (flags & ~kKnownFlags) {
    return Malformed("reserved flag bits set (" + std::to_string(flags) + ")", error);
  }
  if (hb.sender.empty()) return Malformed("empty sender name", error);
  hb.state = static_cast<State>(state);
  hb.data = static_cast<DataStatus>(data);
  hb.busy = flags & kFlagBusy;
  hb.handing_over = flags & kFlagHandingOver;
  hb.was_last_prim = flags & kFlagWasLastPrim;
  hb.peer_generation_known = flags & kFlagPeerGenerationKnown;
  hb.peer_in_sync = flags & kFlagPeerInSync;
  return hb;
}

ReplayGuard::ReplayGuard(std::size_t channels) : channels_(std::max<std::size_t>(channels, 1)) {}

Status ReplayGuard::Accept(const Heartbeat& hb, std::size_t channel) {
  if (channel >= channels_) {
    return Status::InvalidArgument("replay guard: channel " + std::to_string(channel) +
                                   " out of range");
  }
  auto key = std::make_pair(hb.sender, hb.module);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (hb.sequence == 0) return Status::InvalidArgument("heartbeat sequence 0 is never valid");
    Entry e;
    e.boot_id = hb.boot_id;
    e.last.assign(channels_, 0);
    e.last[channel] = hb.sequence;
    entries_.emplace(std::move(key), std::move(e));
    return Status::Ok();
  }
  Entry& e = it->second;
  if (hb.boot_id != e.boot_id) {
    if (std::find(e.retired_boots.begin(), e.retired_boots.end(), hb.boot_id) !=
        e.retired_boots.end()) {
      return Status::InvalidArgument("heartbeat from an earlier run of " + hb.sender +
                                     " (boot id " + std::to_string(hb.boot_id) +
                                     "): replayed or delayed");
    }
    if (hb.sequence == 0) return Status::InvalidArgument("heartbeat sequence 0 is never valid");
    // The sender restarted: its sequence starts over.
    e.retired_boots.push_back(e.boot_id);
    if (e.retired_boots.size() > kRetiredBoots) e.retired_boots.pop_front();
    e.boot_id = hb.boot_id;
    e.last.assign(channels_, 0);
    e.last[channel] = hb.sequence;
    return Status::Ok();
  }
  if (hb.sequence <= e.last[channel]) {
    return Status::InvalidArgument("replayed or duplicate heartbeat from " + hb.sender +
                                   ": sequence " + std::to_string(hb.sequence) +
                                   ", last accepted " + std::to_string(e.last[channel]));
  }
  e.last[channel] = hb.sequence;
  return Status::Ok();
}

void ReplayGuard::Forget(const std::string& sender) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.first == sender) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::string HexEncode(std::span<const std::uint8_t> bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

ConfigHash Sha256(std::span<const std::uint8_t> data) {
  ConfigHash out{};
  unsigned int len = 0;
  // EVP_Digest cannot fail for SHA-256 short of memory exhaustion; the
  // zeroed output in that case simply will not match anything.
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

}  // namespace hakit::cluster
