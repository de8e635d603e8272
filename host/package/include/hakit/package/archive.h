// .safe archives: zip files (libarchive) holding one module folder.
//
// Reading is defensive: a package comes from elsewhere and is unpacked as
// root. Every entry header is checked before a byte is written (names,
// types, links, counts), then the data is extracted into a fresh folder
// while the real expanded size is counted (headers may lie).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "hakit/package/manifest.h"
#include "hakit/sdk/status.h"

namespace hakit::package {

// Caps on what one package may expand to (a zip bomb is refused, not
// unpacked). Defaults suit modules with scripts, a library and a web folder.
struct ExtractLimits {
  std::uint64_t max_bytes = std::uint64_t{512} << 20;  // expanded bytes, all entries together
  std::uint64_t max_entries = 10000;                   // files, folders and links
};

// What ExtractPackage unpacked, paths relative to the destination.
struct ExtractedFiles {
  std::vector<std::string> files;  // regular files (hard links included)
  std::vector<std::string> symlinks;
  std::uint64_t bytes = 0;  // expanded size of the regular files
};

// Unpacks the zip `archive` into `dest`, which must not exist yet (it is
// created). Entries may be regular files, folders, symbolic links and hard
// links whose targets stay inside `dest`; file modes keep their permission
// bits without set-id bits, and files under bin/ are made executable (zips
// made on Windows carry no modes). Errors (InvalidArgument, or Corruption for
// a damaged archive) start with the archive's path and name the entry:
//   "x.safe: entry '../evil': path leaves the module ('..')"
//   "x.safe: entry '/etc/x': absolute path"
//   "x.safe: entry 'bin/l': symbolic link to '/etc' points outside the module"
//   "x.safe: entry 'bin/l': hard link to '../x' points outside the module"
//   "x.safe: entry 'dev': a character device (a package holds files, folders and links only)"
//   "x.safe: expands to more than N bytes (limit): refused as a possible zip bomb"
//   "x.safe: holds more than N entries (limit): refused as a possible zip bomb"
//   "x.safe: not a readable zip archive: ..." / "x.safe: damaged or truncated archive: ..."
// On error `dest` may hold a partial extraction: the caller removes it.
sdk::Result<ExtractedFiles> ExtractPackage(const std::filesystem::path& archive,
                                           const std::filesystem::path& dest,
                                           const ExtractLimits& limits = {});

// Writes the module folder `module_dir` as the zip `out` (under a temporary
// name, renamed when complete), with a manifest first: `manifest`'s module,
// version and ABI, plus the SHA-256 of every regular file (a `manifest`
// already in the folder is replaced). Refuses (InvalidArgument) devices,
// fifos, sockets and symbolic links leading outside the folder, and a
// folder without conf/userconfig.xml. `written`, if given, receives the
// manifest as written.
sdk::Status WritePackage(const std::filesystem::path& module_dir, Manifest manifest,
                         const std::filesystem::path& out, Manifest* written = nullptr);

}  // namespace hakit::package
