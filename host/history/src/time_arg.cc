#include "hakit/history/time_arg.h"

#include <chrono>
#include <limits>
#include <optional>
#include <string>

#include "hakit/history/event.h"

namespace hakit::history {
namespace {

using sdk::Result;
using sdk::Status;

constexpr int64_t kSecond = 1000000;
constexpr int64_t kDay = 86400 * kSecond;

Status Unreadable(std::string_view arg, std::string_view why) {
  return Status::InvalidArgument(
      "cannot read time '" + std::string(arg) + "'" +
      (why.empty() ? std::string() : " (" + std::string(why) + ")") +
      ": expected 'now', an offset before now (-30m, -1h, -2d), a date (2026-11-26) or an "
      "ISO 8601 time (2026-11-26T10:00:00Z)");
}

// A cursor over the argument for the small grammars below.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool done() const { return pos_ == s_.size(); }
  char peek() const { return done() ? '\0' : s_[pos_]; }
  bool Accept(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  // Exactly `n` digits.
  std::optional<int> Digits(size_t n) {
    if (s_.size() - pos_ < n) return std::nullopt;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s_[pos_ + i];
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    return v;
  }
  // One or more digits, at most 12 (no overflow).
  std::optional<int64_t> Number() {
    size_t start = pos_;
    int64_t v = 0;
    while (!done() && peek() >= '0' && peek() <= '9' && pos_ - start < 12) {
      v = v * 10 + (s_[pos_++] - '0');
    }
    if (pos_ == start || (!done() && peek() >= '0' && peek() <= '9')) return std::nullopt;
    return v;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

int64_t DayStart(int64_t time_us) {
  // floor division: correct for times before the epoch too.
  int64_t d = time_us / kDay;
  if (time_us % kDay < 0) --d;
  return d * kDay;
}

// "-1h30m": a sum of <number><unit> before now.
Result<int64_t> ParseOffset(std::string_view arg, std::string_view body, int64_t now_us) {
  Reader r(body);
  int64_t total = 0;
  if (r.done()) return Unreadable(arg, "no amount after '-'");
  while (!r.done()) {
    auto n = r.Number();
    if (!n) return Unreadable(arg, "expected a number");
    int64_t unit = 0;
    if (r.Accept('s')) {
      unit = kSecond;
    } else if (r.Accept('m')) {
      unit = 60 * kSecond;
    } else if (r.Accept('h')) {
      unit = 3600 * kSecond;
    } else if (r.Accept('d')) {
      unit = kDay;
    } else if (r.Accept('w')) {
      unit = 7 * kDay;
    } else {
      return Unreadable(arg, "a number needs a unit: s, m, h, d or w");
    }
    // At most 12 digits times a week stays far below int64's range.
    total += *n * unit;
    if (total > 1000LL * 366 * kDay) return Unreadable(arg, "more than 1000 years");
  }
  return now_us - total;
}

Result<int64_t> ParseAbsolute(std::string_view arg) {
  using namespace std::chrono;
  Reader r(arg);
  auto y = r.Digits(4);
  if (!y || !r.Accept('-')) return Unreadable(arg, "");
  auto mo = r.Digits(2);
  if (!mo || !r.Accept('-')) return Unreadable(arg, "");
  auto d = r.Digits(2);
  if (!d) return Unreadable(arg, "");
  const year_month_day ymd{year(*y), month(static_cast<unsigned>(*mo)),
                           day(static_cast<unsigned>(*d))};
  if (!ymd.ok()) return Unreadable(arg, "no such date");
  int64_t t = static_cast<int64_t>(sys_days(ymd).time_since_epoch().count()) * kDay;
  if (r.done()) return t;

  if (!r.Accept('T') && !r.Accept('t') && !r.Accept(' ')) return Unreadable(arg, "");
  auto hh = r.Digits(2);
  if (!hh || !r.Accept(':')) return Unreadable(arg, "");
  auto mm = r.Digits(2);
  if (!mm) return Unreadable(arg, "");
  int ss = 0;
  int64_t frac_us = 0;
  if (r.Accept(':')) {
    auto s = r.Digits(2);
    if (!s) return Unreadable(arg, "");
    ss = *s;
    if (r.Accept('.') || r.Accept(',')) {
      // Up to microseconds; further digits are read and ignored.
      int64_t scale = 100000;
      int n = 0;
      while (r.peek() >= '0' && r.peek() <= '9') {
        frac_us += (r.peek() - '0') * scale;
        scale /= 10;
        r.Accept(r.peek());
        ++n;
      }
      if (n == 0) return Unreadable(arg, "no digits after the decimal point");
    }
  }
  if (*hh > 23 || *mm > 59 || ss > 59) return Unreadable(arg, "no such time of day");
  t += (*hh * 3600LL + *mm * 60LL + ss) * kSecond + frac_us;

  if (r.done() || r.Accept('Z') || r.Accept('z')) {
    if (!r.done()) return Unreadable(arg, "text after the zone");
    return t;
  }
  int sign = 0;
  if (r.Accept('+')) {
    sign = 1;
  } else if (r.Accept('-')) {
    sign = -1;
  } else {
    return Unreadable(arg, "");
  }
  auto zh = r.Digits(2);
  if (!zh) return Unreadable(arg, "bad zone offset");
  int zm = 0;
  if (!r.done()) {
    r.Accept(':');
    auto m = r.Digits(2);
    if (!m) return Unreadable(arg, "bad zone offset");
    zm = *m;
  }
  if (!r.done() || *zh > 23 || zm > 59) return Unreadable(arg, "bad zone offset");
  // 10:00+01:00 is 09:00Z.
  return t - sign * (*zh * 3600LL + zm * 60LL) * kSecond;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<int64_t> ParseTimeArg(std::string_view arg, int64_t now_us) {
  std::string_view s = Trim(arg);
  if (s.empty()) return Unreadable(arg, "empty");
  if (s == "now") return now_us;
  if (s == "today") return DayStart(now_us);
  if (s == "yesterday") return DayStart(now_us) - kDay;
  if (s.front() == '-') return ParseOffset(arg, s.substr(1), now_us);
  return ParseAbsolute(s);
}

Result<int64_t> ParseTimeArg(std::string_view arg) { return ParseTimeArg(arg, NowMicros()); }

}  // namespace hakit::history
