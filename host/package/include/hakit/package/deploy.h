// Deploying a module package to the peer node (`hakit module deploy`).
//
// hakitd listens on TCP cluster port + kDeployPortOffset, on its address of
// every lan of cluster.xml. One exchange per connection, authenticated both
// ways by HMAC-SHA256 over the cluster key (the heartbeats' key):
//
//   server -> client  "HKDP", protocol version (u32), server nonce (32 bytes)
//   client -> server  version (u32), client nonce (32), header length (u32),
//                     header JSON {module, size, sha256}, HMAC(request)
//   server -> client  reply frame: go ahead, or refused (bad key, too big, ...)
//   client -> server  the package's bytes (`size` of them)
//   server -> client  reply frame: installed (message, config hash) or refused
//
// A reply frame is length (u32), JSON, HMAC(reply). Both MACs cover both
// nonces, so a recorded exchange cannot be replayed. The header carries the
// package's SHA-256, so the bytes are authenticated through it. Integers
// are big-endian. Every read has a deadline; sizes are capped.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hakit/config/cluster_config.h"
#include "hakit/sdk/host_context.h"
#include "hakit/sdk/status.h"

namespace hakit::package {

// The cluster port carries heartbeats (UDP) and the peer probe (TCP); + 1
// is replication; deployment takes + 3.
inline constexpr int kDeployPortOffset = 3;
inline constexpr std::uint32_t kDeployProtocolVersion = 1;

// What the receiving node says once the package is installed.
struct DeployOutcome {
  std::string message;      // "installed web 1.0 (ABI 1, scripts) on node2"
  std::string config_hash;  // the installed module's configuration hash (as `hakit state -v` shows)
};

struct DeployServerOptions {
  std::vector<std::string> addresses;  // local addresses to listen on
  std::uint16_t port = 0;
  std::vector<std::uint8_t> key;    // the cluster key
  std::filesystem::path spool_dir;  // received packages are written here, then removed
  std::uint64_t max_package_bytes = std::uint64_t{512} << 20;
  // How long the peer may be silent in the middle of an exchange.
  std::chrono::milliseconds io_timeout{30000};
  // Installs an authenticated package (called on the server's own thread;
  // it may block). `module` is the name the sender asked for.
  std::function<sdk::Result<DeployOutcome>(const std::filesystem::path& package,
                                           const std::string& module)>
      install;
  std::function<void(sdk::LogLevel, const std::string&)> log;
};

// The listening side, in hakitd. Serves one exchange at a time on a thread
// of its own, so that receiving and checking a package never delays
// heartbeats.
class DeployServer {
 public:
  explicit DeployServer(DeployServerOptions options);
  ~DeployServer();
  DeployServer(const DeployServer&) = delete;
  DeployServer& operator=(const DeployServer&) = delete;

  // Binds every address (an error names the one that failed) and starts.
  sdk::Status Start();
  // Closes the listeners and the exchange in progress; joins the thread.
  // Not from within `install`.
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

struct DeployRequest {
  std::vector<std::string> peer_addresses;  // tried in order until one connects
  std::uint16_t port = 0;
  std::vector<std::uint8_t> key;
  std::filesystem::path package;
  std::string module;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{30000};
  // The peer checks and installs before its last reply.
  std::chrono::milliseconds install_timeout{120000};
};

// Sends the package and waits for the peer's verdict. Errors: Timeout,
// IoError (no address answered: each address and why), Failed (the peer
// refused; its reason), and a refusal whose reply is not authenticated
// (different cluster keys).
sdk::Result<DeployOutcome> SendPackage(const DeployRequest& request);

// This node's (or the peer's) address on every lan of cluster.xml.
std::vector<std::string> NodeAddresses(const config::ClusterConfig& cluster,
                                       const std::string& node);

}  // namespace hakit::package
