// The cluster key file: the shared secret that authenticates heartbeats.
//
// The file holds the key as lower-case hex on one line (64 characters for the
// 32 random bytes GenerateClusterKey writes). It must be readable by its
// owner only: anyone who can read it can impersonate a node.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::cluster {

// Size of a generated key, and the smallest key LoadClusterKey accepts.
inline constexpr std::size_t kClusterKeySize = 32;
inline constexpr std::size_t kMinClusterKeySize = 16;
inline constexpr std::size_t kMaxClusterKeySize = 64;

// Writes 32 bytes from the OpenSSL CSPRNG, hex-encoded, to `path` with mode
// 0600, creating missing parent folders. The file is written under a
// temporary name, flushed and renamed, so a crash never leaves half a key.
// Refuses (InvalidArgument) to replace an existing file unless `overwrite`:
// regenerating the key on one node by mistake would cut the cluster apart.
// Backs `hakit cluster genkey`.
sdk::Status GenerateClusterKey(const std::filesystem::path& path, bool overwrite = false);

// Reads and checks the key file. Errors:
// - NotFound "no cluster key at PATH: run hakit cluster genkey and copy the
//   file to every node";
// - InvalidArgument when the file is not a regular file, is accessible to
//   group or others ("chmod 600 PATH"), or does not hold 16..64 bytes of hex
//   (the message gives the offset of a bad character, never key material);
// - IoError when it exists but cannot be read.
sdk::Result<std::vector<std::uint8_t>> LoadClusterKey(const std::filesystem::path& path);

}  // namespace hakit::cluster
