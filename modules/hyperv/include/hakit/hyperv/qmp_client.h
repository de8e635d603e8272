// A QMP (QEMU Machine Protocol) client over a unix socket: reads the
// greeting, negotiates capabilities, then runs commands one at a time,
// skipping the asynchronous events QEMU interleaves with replies.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "hakit/sdk/status.h"

namespace hakit::hyperv {

class QmpClient {
 public:
  // Connects to `socket_path` and completes the qmp_capabilities handshake
  // within `timeout`. IoError (no such socket, refused: QEMU not running),
  // Timeout, Corruption (not QMP).
  static sdk::Result<std::unique_ptr<QmpClient>> Connect(const std::string& socket_path,
                                                         std::chrono::milliseconds timeout);
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs `command` with `arguments` (an object, or null for none) and
  // returns its "return" value. Failed with QEMU's error description;
  // IoError when QEMU closes the connection first (as `quit` does, which is
  // therefore reported as success by Quit()).
  sdk::Result<nlohmann::json> Execute(const std::string& command,
                                      const nlohmann::json& arguments = nullptr,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // {"execute":"quit"}: Ok once QEMU answered or closed the socket.
  sdk::Status Quit(std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  QmpClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  // The next JSON line, within the deadline.
  sdk::Result<nlohmann::json> ReadMessage(std::chrono::steady_clock::time_point deadline);
  sdk::Status Send(const nlohmann::json& message);

  int fd_;
  std::string path_;
  std::string buffer_;
};

// Connects a unix stream socket to `path` within `timeout` (retrying while
// the socket does not exist yet or refuses). Returns the descriptor.
sdk::Result<int> ConnectUnix(const std::string& path, std::chrono::milliseconds timeout);

}  // namespace hakit::hyperv
