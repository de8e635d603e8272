// A small big-endian codec for the files and frames of this library that
// are not wire frames (tree descriptions, the record and hot-zone logs):
// Put* append, In reads with bounds checks (false when the data runs short).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace hakit::replication {

inline void PutU32(std::string* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (24 - 8 * i)));
}
inline void PutU64(std::string* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (56 - 8 * i)));
}
inline void PutStr(std::string* out, const std::string& s) {
  PutU32(out, static_cast<std::uint32_t>(s.size()));
  out->append(s);
}

class BytesIn {
 public:
  explicit BytesIn(std::string_view d) : d_(d) {}
  bool U32(std::uint32_t* v) {
    if (d_.size() - pos_ < 4) return false;
    std::uint32_t r = 0;
    for (int i = 0; i < 4; ++i) r = (r << 8) | static_cast<std::uint8_t>(d_[pos_ + i]);
    pos_ += 4;
    *v = r;
    return true;
  }
  bool U64(std::uint64_t* v) {
    if (d_.size() - pos_ < 8) return false;
    std::uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | static_cast<std::uint8_t>(d_[pos_ + i]);
    pos_ += 8;
    *v = r;
    return true;
  }
  bool Str(std::string* s, std::size_t max) {
    std::uint32_t n = 0;
    if (!U32(&n) || n > max || d_.size() - pos_ < n) return false;
    s->assign(d_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool Raw(void* p, std::size_t n) {
    if (d_.size() - pos_ < n) return false;
    std::memcpy(p, d_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == d_.size(); }

 private:
  std::string_view d_;
  std::size_t pos_ = 0;
};


}  // namespace hakit::replication
