#include "hakit/replication/wire.h"

#include <sys/stat.h>

#include <cstring>

namespace hakit::replication {

namespace {

using sdk::Result;
using sdk::Status;

constexpr std::uint8_t kMagic[4] = {'H', 'K', 'R', 'P'};
constexpr std::size_t kMaxReasonSize = 4096;
constexpr std::uint8_t kLastOpKind = static_cast<std::uint8_t>(OpKind::kSyncEnd);

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void Bytes(const void* p, std::size_t n) { out_->append(static_cast<const char*>(p), n); }
  void U8(std::uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U16(std::uint16_t v) {
    char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    out_->append(b, 2);
  }
  void U32(std::uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (24 - 8 * i));
    out_->append(b, 4);
  }
  void U64(std::uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (56 - 8 * i));
    out_->append(b, 8);
  }
  void I64(std::int64_t v) { U64(static_cast<std::uint64_t>(v)); }
  void Str8(const std::string& s) {
    U8(static_cast<std::uint8_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  void Str16(const std::string& s) {
    U16(static_cast<std::uint16_t>(s.size()));
    Bytes(s.data(), s.size());
  }

 private:
  std::string* out_;
};

// Bounds-checked reads that remember the first field that ran short, so the
// error names it; after a failure every read fails.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}

  bool U8(std::uint8_t* v, const char* f) {
    if (!Need(1, f)) return false;
    *v = in_[pos_++];
    return true;
  }
  bool U16(std::uint16_t* v, const char* f) {
    if (!Need(2, f)) return false;
    *v = static_cast<std::uint16_t>((in_[pos_] << 8) | in_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool U32(std::uint32_t* v, const char* f) {
    if (!Need(4, f)) return false;
    std::uint32_t r = 0;
    for (int i = 0; i < 4; ++i) r = (r << 8) | in_[pos_ + i];
    pos_ += 4;
    *v = r;
    return true;
  }
  bool U64(std::uint64_t* v, const char* f) {
    if (!Need(8, f)) return false;
    std::uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | in_[pos_ + i];
    pos_ += 8;
    *v = r;
    return true;
  }
  bool I64(std::int64_t* v, const char* f) {
    std::uint64_t u = 0;
    if (!U64(&u, f)) return false;
    *v = static_cast<std::int64_t>(u);
    return true;
  }
  bool Raw(std::string* s, std::size_t n, const char* f) {
    if (!Need(n, f)) return false;
    s->assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool Str8(std::string* s, const char* f) {
    std::uint8_t n = 0;
    return U8(&n, f) && Raw(s, n, f);
  }
  bool Str16(std::string* s, std::size_t max, const char* f) {
    std::uint16_t n = 0;
    if (!U16(&n, f)) return false;
    if (n > max) {
      too_long_ = f;
      failed_ = true;
      return false;
    }
    return Raw(s, n, f);
  }
  bool Bytes(std::uint8_t* out, std::size_t n, const char* f) {
    if (!Need(n, f)) return false;
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  std::size_t left() const { return in_.size() - pos_; }
  std::size_t pos() const { return pos_; }

  // The error for a failed read, or for bytes left over when all went well.
  Status Error(const char* frame) const {
    if (too_long_) {
      return Status::Corruption(std::string("malformed ") + frame + " frame: field '" + too_long_ +
                                "' is longer than its limit");
    }
    if (short_field_) {
      return Status::Corruption(std::string("malformed ") + frame + " frame: field '" +
                                short_field_ + "' runs past the end of the payload");
    }
    return Status::Corruption(std::string("malformed ") + frame +
                              " frame: " + std::to_string(left()) + " unexpected trailing bytes");
  }

 private:
  bool Need(std::size_t n, const char* f) {
    if (!failed_ && left() >= n) return true;
    if (!failed_) short_field_ = f;
    failed_ = true;
    return false;
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  const char* short_field_ = nullptr;
  const char* too_long_ = nullptr;
};

void PutHeader(Writer& w, FrameType type, std::size_t length) {
  w.Bytes(kMagic, 4);
  w.U16(kProtocolVersion);
  w.U8(static_cast<std::uint8_t>(type));
  w.U32(static_cast<std::uint32_t>(length));
}

// Patches the length of the frame started at `start` once its payload is
// written.
void PatchLength(std::string* out, std::size_t start, std::size_t length) {
  for (int i = 0; i < 4; ++i) (*out)[start + 7 + i] = static_cast<char>(length >> (24 - 8 * i));
}

bool ValidNsec(std::int64_t nsec) {
  return (nsec >= 0 && nsec < 1000000000) || nsec == UTIME_NOW || nsec == UTIME_OMIT;
}

// A relative path inside the replicated dir: no leading '/', no ".."
// component, no NUL. Empty means the directory itself.
Status CheckRelativePath(const std::string& path, const char* field) {
  if (path.size() > kMaxPathSize) {
    return Status::InvalidArgument(std::string(field) + " is longer than " +
                                   std::to_string(kMaxPathSize) + " bytes");
  }
  if (path.find('\0') != std::string::npos) {
    return Status::InvalidArgument(std::string(field) + " contains a NUL byte");
  }
  if (!path.empty() && path[0] == '/') {
    return Status::InvalidArgument(std::string(field) + " '" + path + "' is absolute");
  }
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (path.compare(start, end - start, "..") == 0) {
      return Status::InvalidArgument(std::string(field) + " '" + path + "' has a '..' component");
    }
    start = end + 1;
  }
  return Status::Ok();
}

Status EncodeOpFields(std::uint64_t sequence, std::uint8_t dir_index, const Operation& op,
                      std::string* out) {
  if (Status s = ValidateOperation(op); !s.ok()) return s;
  const std::size_t payload =
      kOpFixedSize + op.path.size() + op.path2.size() + op.name.size() + op.data.size();
  Writer w(out);
  PutHeader(w, FrameType::kOp, payload);
  w.U64(sequence);
  w.U8(dir_index);
  w.U8(static_cast<std::uint8_t>(op.kind));
  w.Str16(op.path);
  w.Str16(op.path2);
  w.U64(op.offset);
  w.U64(op.length);
  w.U32(op.mode);
  w.U32(op.flags);
  w.I64(op.uid);
  w.I64(op.gid);
  w.I64(op.atime.tv_sec);
  w.I64(op.atime.tv_nsec);
  w.I64(op.mtime.tv_sec);
  w.I64(op.mtime.tv_nsec);
  w.Str8(op.name);
  w.U32(static_cast<std::uint32_t>(op.data.size()));
  return Status::Ok();
}

// Everything of an OP payload but the data bytes, which must be exactly
// `payload_size` minus what precedes them. `r` reads the payload from its
// start and may hold only a prefix of it.
Result<OpFrame> DecodeOpFields(Reader& r, std::size_t payload_size, std::size_t* data_offset) {
  OpFrame f;
  Operation& op = f.op;
  std::uint8_t kind = 0;
  std::int64_t a_sec = 0, a_nsec = 0, m_sec = 0, m_nsec = 0;
  std::uint32_t data_len = 0;
  bool ok = r.U64(&f.sequence, "sequence") && r.U8(&f.dir_index, "dir index") &&
            r.U8(&kind, "kind") && r.Str16(&op.path, kMaxPathSize, "path") &&
            r.Str16(&op.path2, kMaxPathSize, "path2") && r.U64(&op.offset, "offset") &&
            r.U64(&op.length, "length") && r.U32(&op.mode, "mode") && r.U32(&op.flags, "flags") &&
            r.I64(&op.uid, "uid") && r.I64(&op.gid, "gid") && r.I64(&a_sec, "atime") &&
            r.I64(&a_nsec, "atime") && r.I64(&m_sec, "mtime") && r.I64(&m_nsec, "mtime") &&
            r.Str8(&op.name, "xattr name") && r.U32(&data_len, "data length");
  if (!ok) return r.Error("OP");
  const std::size_t offset = r.pos();
  if (data_len > kMaxOpData) {
    return Status::Corruption("malformed OP frame: data length " + std::to_string(data_len) +
                              " exceeds " + std::to_string(kMaxOpData));
  }
  if (data_len != payload_size - offset) {
    return Status::Corruption("malformed OP frame: data length " + std::to_string(data_len) +
                              " but " + std::to_string(payload_size - offset) +
                              " bytes left in the payload");
  }
  if (kind < 1 || kind > kLastOpKind) {
    return Status::Corruption("malformed OP frame: unknown operation kind " + std::to_string(kind));
  }
  op.kind = static_cast<OpKind>(kind);
  op.atime = timespec{static_cast<time_t>(a_sec), static_cast<long>(a_nsec)};
  op.mtime = timespec{static_cast<time_t>(m_sec), static_cast<long>(m_nsec)};
  if (!ValidNsec(a_nsec) || !ValidNsec(m_nsec)) {
    return Status::Corruption("malformed OP frame: nanoseconds out of range");
  }
  if (f.sequence == 0) return Status::Corruption("malformed OP frame: sequence 0");
  if (Status s = ValidateOperation(op); !s.ok()) {
    return Status::Corruption("malformed OP frame: " + s.message());
  }
  *data_offset = offset;
  return f;
}

Result<Message> DecodeOp(Reader& r, std::size_t payload_size) {
  std::size_t offset = 0;
  auto f = DecodeOpFields(r, payload_size, &offset);
  if (!f.ok()) return f.status();
  r.Raw(&f->op.data, payload_size - offset, "data");
  return Message(std::move(*f));
}

bool Bool(Reader& r, bool* out, const char* f, bool* bad) {
  std::uint8_t v = 0;
  if (!r.U8(&v, f)) return false;
  if (v > 1) *bad = true;
  *out = v == 1;
  return true;
}

}  // namespace

std::string FrameTypeName(std::uint8_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kHelloAck:
      return "HELLO_ACK";
    case FrameType::kRefuse:
      return "REFUSE";
    case FrameType::kOp:
      return "OP";
    case FrameType::kAck:
      return "ACK";
    case FrameType::kPing:
      return "PING";
    case FrameType::kPong:
      return "PONG";
    case FrameType::kBye:
      return "BYE";
    case FrameType::kManifest:
      return "MANIFEST";
    case FrameType::kAuth:
      return "AUTH";
  }
  return "type " + std::to_string(type);
}

std::size_t MaxPayload(FrameType type) {
  switch (type) {
    case FrameType::kOp:
      return kMaxOpPayload;
    case FrameType::kHello:
    case FrameType::kHelloAck:
    case FrameType::kRefuse:
    case FrameType::kAck:
    case FrameType::kPing:
    case FrameType::kPong:
    case FrameType::kBye:
    case FrameType::kAuth:
      return kMaxControlPayload;
    case FrameType::kManifest:
      return kMaxManifestPayload;
  }
  return 0;
}

const char* RefuseCodeName(RefuseCode code) {
  switch (code) {
    case RefuseCode::kVersion:
      return "version";
    case RefuseCode::kModule:
      return "module";
    case RefuseCode::kConfig:
      return "config";
    case RefuseCode::kGeneration:
      return "generation";
    case RefuseCode::kProtocol:
      return "protocol";
    case RefuseCode::kApplyFailed:
      return "apply failed";
    case RefuseCode::kBusy:
      return "busy";
    case RefuseCode::kAuth:
      return "authentication";
  }
  return "unknown";
}

Result<FrameHeader> DecodeHeader(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < kHeaderSize) {
    return Status::Corruption("truncated frame header: " + std::to_string(bytes.size()) +
                              " bytes, " + std::to_string(kHeaderSize) + " needed");
  }
  if (std::memcmp(bytes.data(), kMagic, 4) != 0) {
    return Status::Corruption("bad magic: not a hakit replication frame");
  }
  FrameHeader h;
  h.version = static_cast<std::uint16_t>((bytes[4] << 8) | bytes[5]);
  std::uint8_t type = bytes[6];
  h.length = (std::uint32_t{bytes[7]} << 24) | (std::uint32_t{bytes[8]} << 16) |
             (std::uint32_t{bytes[9]} << 8) | bytes[10];
  std::size_t max = MaxPayload(static_cast<FrameType>(type));
  if (max == 0) return Status::Corruption("unknown frame " + FrameTypeName(type));
  h.type = static_cast<FrameType>(type);
  if (h.length > max) {
    return Status::Corruption(FrameTypeName(type) + " frame announces " + std::to_string(h.length) +
                              " payload bytes, at most " + std::to_string(max) + " allowed");
  }
  return h;
}

Status CheckVersion(std::uint16_t version) {
  if (version >= kMinProtocolVersion && version <= kMaxProtocolVersion) return Status::Ok();
  return Status::InvalidArgument("peer speaks replication protocol version " +
                                 std::to_string(version) + ", this node supports versions " +
                                 std::to_string(kMinProtocolVersion) + " to " +
                                 std::to_string(kMaxProtocolVersion));
}

Result<Message> DecodePayload(const FrameHeader& header, std::span<const std::uint8_t> payload) {
  if (payload.size() != header.length) {
    return Status::Corruption(FrameTypeName(static_cast<std::uint8_t>(header.type)) +
                              " payload is " + std::to_string(payload.size()) +
                              " bytes, header says " + std::to_string(header.length));
  }
  Reader r(payload);
  bool bad_bool = false;
  switch (header.type) {
    case FrameType::kHello: {
      Hello h;
      std::uint8_t role = 0;
      bool ok =
          r.U16(&h.version, "version") && r.Str8(&h.module, "module") && r.Str8(&h.node, "node") &&
          r.Bytes(h.config_hash.data(), h.config_hash.size(), "config hash") &&
          r.U64(&h.generation, "generation") && Bool(r, &h.consistent, "consistent", &bad_bool) &&
          r.U8(&role, "role") && r.U64(&h.first_sequence, "first sequence") &&
          r.Bytes(h.nonce.data(), h.nonce.size(), "nonce");
      if (!ok || r.left() != 0) return r.Error("HELLO");
      if (bad_bool) return Status::Corruption("malformed HELLO frame: consistent flag not 0/1");
      if (role != 1 && role != 2) {
        return Status::Corruption("malformed HELLO frame: unknown role " + std::to_string(role));
      }
      if (h.module.empty()) return Status::Corruption("malformed HELLO frame: empty module name");
      if (h.first_sequence == 0) {
        return Status::Corruption("malformed HELLO frame: first sequence 0");
      }
      h.role = static_cast<Role>(role);
      return Message(std::move(h));
    }
    case FrameType::kHelloAck: {
      HelloAck h;
      std::uint8_t role = 0, consistent = 0;
      bool ok = r.U16(&h.version, "version") && r.Str8(&h.node, "node") &&
                r.U64(&h.generation, "generation") && r.U8(&consistent, "consistent") &&
                r.U8(&role, "role") &&
                r.Bytes(h.nonce.data(), h.nonce.size(), "nonce") &&
                r.Bytes(h.proof.data(), h.proof.size(), "proof");
      if (!ok || r.left() != 0) return r.Error("HELLO_ACK");
      if (consistent > 2) {
        return Status::Corruption("malformed HELLO_ACK frame: consistent flag not 0/1/2");
      }
      h.consistent = consistent != 0;
      h.suspect = consistent == 2;
      if (role != 1 && role != 2) {
        return Status::Corruption("malformed HELLO_ACK frame: unknown role " +
                                  std::to_string(role));
      }
      h.role = static_cast<Role>(role);
      return Message(std::move(h));
    }
    case FrameType::kRefuse: {
      Refuse f;
      std::uint8_t code = 0;
      bool ok = r.U8(&code, "code") && r.Str16(&f.reason, kMaxReasonSize, "reason");
      if (!ok || r.left() != 0) return r.Error("REFUSE");
      if (code < 1 || code > static_cast<std::uint8_t>(RefuseCode::kAuth)) {
        return Status::Corruption("malformed REFUSE frame: unknown code " + std::to_string(code));
      }
      f.code = static_cast<RefuseCode>(code);
      return Message(std::move(f));
    }
    case FrameType::kOp:
      return DecodeOp(r, payload.size());
    case FrameType::kAck: {
      Ack a;
      bool ok = r.U64(&a.received, "received") && r.U64(&a.applied, "applied") &&
                r.U64(&a.durable, "durable");
      if (!ok || r.left() != 0) return r.Error("ACK");
      // Applying needs receiving first; durability needs applying.
      if (a.applied > a.received || a.durable > a.applied) {
        return Status::Corruption("malformed ACK frame: received " + std::to_string(a.received) +
                                  ", applied " + std::to_string(a.applied) + ", durable " +
                                  std::to_string(a.durable) + " are not ordered");
      }
      return Message(a);
    }
    case FrameType::kPing:
    case FrameType::kPong: {
      std::uint64_t ts = 0, nonce = 0;
      bool ok = r.U64(&ts, "timestamp") && r.U64(&nonce, "nonce");
      const char* name = header.type == FrameType::kPing ? "PING" : "PONG";
      if (!ok || r.left() != 0) return r.Error(name);
      if (header.type == FrameType::kPing) return Message(Ping{ts, nonce});
      return Message(Pong{ts, nonce});
    }
    case FrameType::kBye: {
      Bye b;
      if (!r.Str16(&b.reason, kMaxReasonSize, "reason") || r.left() != 0) return r.Error("BYE");
      return Message(std::move(b));
    }
    case FrameType::kAuth: {
      Auth a;
      if (!r.Bytes(a.proof.data(), a.proof.size(), "proof") || r.left() != 0) {
        return r.Error("AUTH");
      }
      return Message(a);
    }
    case FrameType::kManifest: {
      ManifestChunk m;
      std::uint32_t n = 0;
      bool ok = r.U8(&m.dir_index, "dir index") && Bool(r, &m.last, "last", &bad_bool) &&
                r.Str16(&m.error, kMaxReasonSize, "error") && r.U32(&n, "data length");
      if (ok && n > kMaxManifestData) {
        return Status::Corruption("malformed MANIFEST frame: " + std::to_string(n) +
                                  " data bytes, at most " + std::to_string(kMaxManifestData));
      }
      if (!ok || !r.Raw(&m.data, n, "data") || r.left() != 0) return r.Error("MANIFEST");
      if (bad_bool) return Status::Corruption("malformed MANIFEST frame: last flag not 0/1");
      return Message(std::move(m));
    }
  }
  return Status::Corruption("unknown frame type");
}

Result<OpFrame> DecodeOpPrefix(const FrameHeader& header, std::span<const std::uint8_t> prefix,
                               std::size_t* data_offset) {
  if (header.type != FrameType::kOp) return Status::InvalidArgument("not an OP frame");
  if (prefix.size() > header.length) prefix = prefix.first(header.length);
  if (prefix.size() < std::min<std::size_t>(header.length, kMaxOpPrefix)) {
    return Status::InvalidArgument("OP prefix too short to decode");
  }
  Reader r(prefix);
  return DecodeOpFields(r, header.length, data_offset);
}

Result<Message> DecodeFrame(std::span<const std::uint8_t> frame) {
  auto header = DecodeHeader(frame);
  if (!header.ok()) return header.status();
  if (Status s = CheckVersion(header->version); !s.ok()) return s;
  if (frame.size() - kHeaderSize != header->length) {
    return Status::Corruption("frame is " + std::to_string(frame.size()) + " bytes, header says " +
                              std::to_string(kHeaderSize + header->length));
  }
  return DecodePayload(*header, frame.subspan(kHeaderSize));
}

Status ValidateOperation(const Operation& op) {
  auto kind = static_cast<std::uint8_t>(op.kind);
  if (kind < 1 || kind > kLastOpKind) {
    return Status::InvalidArgument("unknown operation kind " + std::to_string(kind));
  }
  if (Status s = CheckRelativePath(op.path, "path"); !s.ok()) return s;
  if (op.kind == OpKind::kRename || op.kind == OpKind::kLink) {
    if (Status s = CheckRelativePath(op.path2, "path2"); !s.ok()) return s;
  } else {
    // A symlink's target is free text, but it still travels as a C string.
    if (op.path2.size() > kMaxPathSize) {
      return Status::InvalidArgument("path2 is longer than " + std::to_string(kMaxPathSize) +
                                     " bytes");
    }
    if (op.path2.find('\0') != std::string::npos) {
      return Status::InvalidArgument("path2 contains a NUL byte");
    }
  }
  if (op.name.size() > kMaxXattrNameSize || op.name.find('\0') != std::string::npos) {
    return Status::InvalidArgument("xattr name longer than 255 bytes or with a NUL byte");
  }
  if (op.data.size() > kMaxOpData) {
    return Status::InvalidArgument("operation data is " + std::to_string(op.data.size()) +
                                   " bytes, at most " + std::to_string(kMaxOpData) + " per frame");
  }
  if (!ValidNsec(op.atime.tv_nsec) || !ValidNsec(op.mtime.tv_nsec)) {
    return Status::InvalidArgument("timestamp nanoseconds out of range");
  }
  return Status::Ok();
}

Status EncodeOpPrefix(std::uint64_t sequence, std::uint8_t dir_index, const Operation& op,
                      std::string* out) {
  std::size_t before = out->size();
  Status s = EncodeOpFields(sequence, dir_index, op, out);
  if (!s.ok()) out->resize(before);
  return s;
}

void StampSequence(std::uint64_t sequence, char* frame_start) {
  for (int i = 0; i < 8; ++i) {
    frame_start[kOpSequenceOffset + i] = static_cast<char>(sequence >> (56 - 8 * i));
  }
}

Status EncodeFrame(const Message& message, std::string* out) {
  const std::size_t start = out->size();
  Writer w(out);
  auto too_long = [&](const std::string& what) {
    out->resize(start);
    return Status::InvalidArgument(what + " is longer than its wire limit");
  };
  if (const auto* op = std::get_if<OpFrame>(&message)) {
    Status s = EncodeOpPrefix(op->sequence, op->dir_index, op->op, out);
    if (s.ok()) out->append(op->op.data);
    return s;
  }
  // Every other frame is built with a placeholder length, patched after.
  auto begin = [&](FrameType t) { PutHeader(w, t, 0); };
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>) {
          begin(FrameType::kHello);
          w.U16(m.version);
          w.Str8(m.module);
          w.Str8(m.node);
          w.Bytes(m.config_hash.data(), m.config_hash.size());
          w.U64(m.generation);
          w.U8(m.consistent ? 1 : 0);
          w.U8(static_cast<std::uint8_t>(m.role));
          w.U64(m.first_sequence);
          w.Bytes(m.nonce.data(), m.nonce.size());
        } else if constexpr (std::is_same_v<T, HelloAck>) {
          begin(FrameType::kHelloAck);
          w.U16(m.version);
          w.Str8(m.node);
          w.U64(m.generation);
          w.U8(!m.consistent ? 0 : m.suspect ? 2 : 1);
          w.U8(static_cast<std::uint8_t>(m.role));
          w.Bytes(m.nonce.data(), m.nonce.size());
          w.Bytes(m.proof.data(), m.proof.size());
        } else if constexpr (std::is_same_v<T, Refuse>) {
          begin(FrameType::kRefuse);
          w.U8(static_cast<std::uint8_t>(m.code));
          w.Str16(m.reason.substr(0, kMaxReasonSize));
        } else if constexpr (std::is_same_v<T, Ack>) {
          begin(FrameType::kAck);
          w.U64(m.received);
          w.U64(m.applied);
          w.U64(m.durable);
        } else if constexpr (std::is_same_v<T, Ping>) {
          begin(FrameType::kPing);
          w.U64(m.timestamp);
          w.U64(m.nonce);
        } else if constexpr (std::is_same_v<T, Pong>) {
          begin(FrameType::kPong);
          w.U64(m.timestamp);
          w.U64(m.nonce);
        } else if constexpr (std::is_same_v<T, Bye>) {
          begin(FrameType::kBye);
          w.Str16(m.reason.substr(0, kMaxReasonSize));
        } else if constexpr (std::is_same_v<T, Auth>) {
          begin(FrameType::kAuth);
          w.Bytes(m.proof.data(), m.proof.size());
        } else if constexpr (std::is_same_v<T, ManifestChunk>) {
          begin(FrameType::kManifest);
          w.U8(m.dir_index);
          w.U8(m.last ? 1 : 0);
          w.Str16(m.error.substr(0, kMaxReasonSize));
          w.U32(static_cast<std::uint32_t>(m.data.size()));
          w.Bytes(m.data.data(), m.data.size());
        }
      },
      message);
  if (const auto* h = std::get_if<Hello>(&message)) {
    if (h->module.size() > 255) return too_long("HELLO module name");
    if (h->node.size() > 255) return too_long("HELLO node name");
  }
  if (const auto* h = std::get_if<HelloAck>(&message)) {
    if (h->node.size() > 255) return too_long("HELLO_ACK node name");
  }
  if (const auto* m = std::get_if<ManifestChunk>(&message)) {
    if (m->data.size() > kMaxManifestData) return too_long("MANIFEST data");
  }
  PatchLength(out, start, out->size() - start - kHeaderSize);
  return Status::Ok();
}

}  // namespace hakit::replication
