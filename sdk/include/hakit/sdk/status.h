// Status and Result: the cheap error values every fallible hakit call returns.
//
// A Status is either ok or carries a code and a human message that already
// names its context ("userconfig.xml:12:7: <heart> pulse: ..."). Errors are
// reported once, by whoever decides the call has failed for good; layers in
// between add context with WithContext() rather than logging.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace hakit::sdk {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // bad input: config, command line, frame
    kNotFound,         // file, module, symbol, script missing
    kIoError,          // the OS refused: open, write, socket
    kTimeout,          // a deadline passed
    kCorruption,       // stored data does not read back as written
    kUnsupported,      // understood but not implemented here
    kAbiMismatch,      // module library built for another SDK ABI
    kFailed,           // an action ran and failed (script exit code, ...)
  };

  // An ok status.
  Status() = default;

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status IoError(std::string msg) { return {Code::kIoError, std::move(msg)}; }
  static Status Timeout(std::string msg) { return {Code::kTimeout, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status Unsupported(std::string msg) { return {Code::kUnsupported, std::move(msg)}; }
  static Status AbiMismatch(std::string msg) { return {Code::kAbiMismatch, std::move(msg)}; }
  static Status Failed(std::string msg) { return {Code::kFailed, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  // The message alone, without the code's name; empty when ok.
  const std::string& message() const { return message_; }

  // "ok", or "<code name>: <message>".
  std::string ToString() const {
    return ok() ? std::string("ok") : std::string(CodeName(code_)) + ": " + message_;
  }

  // The same error with "context: " in front of its message; ok stays ok.
  Status WithContext(std::string_view context) const {
    if (ok()) return *this;
    return Status(code_, std::string(context) + ": " + message_);
  }

  static const char* CodeName(Code code) {
    switch (code) {
      case Code::kOk: return "ok";
      case Code::kInvalidArgument: return "invalid argument";
      case Code::kNotFound: return "not found";
      case Code::kIoError: return "I/O error";
      case Code::kTimeout: return "timeout";
      case Code::kCorruption: return "corruption";
      case Code::kUnsupported: return "unsupported";
      case Code::kAbiMismatch: return "ABI mismatch";
      case Code::kFailed: return "failed";
    }
    return "unknown";
  }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none. Never holds an ok
// Status without a value.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit on purpose
  Result(Status error) : v_(std::move(error)) {}       // NOLINT: implicit on purpose

  bool ok() const { return std::holds_alternative<T>(v_); }
  // The error; an ok Status when there is a value.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  // Precondition: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace hakit::sdk
