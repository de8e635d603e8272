// The manifest of a .safe package: which module, which version, which SDK
// ABI, and the SHA-256 of every file. A plain text file at the archive's
// root, one fact per line, so that an operator can read it with `unzip -p`:
//
//   hakit-package 1
//   module postgresql
//   version 2.1
//   abi 1
//   sha256 9f86d0...  conf/userconfig.xml
//   sha256 60303a...  bin/start_prim
//
// SafeKit packages have no manifest; they install without one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "hakit/sdk/status.h"

namespace hakit::package {

// Name of the manifest inside a package and inside an installed module.
inline constexpr const char kManifestName[] = "manifest";
// Version of the manifest format written by this hakit.
inline constexpr int kManifestFormat = 1;

struct Manifest {
  std::string module;     // the module's name when packaged
  std::string version;    // free text without spaces, e.g. "2.1"
  std::uint32_t abi = 0;  // sdk::kAbiVersion of the hakit that packaged it
  // Lower-case hex SHA-256 by path relative to the module folder, for every
  // regular file but the manifest itself.
  std::map<std::string, std::string> sha256;
};

// The manifest as text (the format above, files sorted by path).
std::string FormatManifest(const Manifest& m);

// Parses `text`; `display_name` stands for the file in messages. Errors
// (InvalidArgument) name the line: "NAME:3: unknown key 'foo'".
sdk::Result<Manifest> ParseManifest(const std::string& text, const std::string& display_name);

// Reads FOLDER/manifest. NotFound when there is none (a SafeKit module).
sdk::Result<Manifest> ReadManifest(const std::filesystem::path& module_dir);

// Lower-case hex SHA-256 of a file's bytes (OpenSSL), read in blocks.
sdk::Result<std::string> Sha256File(const std::filesystem::path& path);

// Whether `name` can name a module: 1..64 characters among letters, digits,
// '_', '-', '.', not starting with '.'. Returns the reason it cannot, or
// an empty string.
std::string InvalidModuleName(const std::string& name);

}  // namespace hakit::package
