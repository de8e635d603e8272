#include "hakit/package/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

namespace hakit::package {

namespace fs = std::filesystem;
using sdk::Result;
using sdk::Status;

namespace {

using ReadArchive = std::unique_ptr<archive, decltype(&archive_read_free)>;
using WriteArchive = std::unique_ptr<archive, decltype(&archive_write_free)>;

std::string ArchiveError(archive* a) {
  const char* e = archive_error_string(a);
  return e != nullptr ? e : "unknown libarchive error";
}

// The path with "." components and trailing slashes removed, or an error
// when it is empty, absolute or climbs with "..".
Result<std::string> CleanEntryPath(const std::string& raw) {
  if (raw.empty()) return Status::InvalidArgument("an entry has an empty name");
  if (raw[0] == '/') return Status::InvalidArgument("absolute path");
  std::string out;
  std::size_t start = 0;
  while (start <= raw.size()) {
    std::size_t slash = raw.find('/', start);
    std::string part = raw.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part == "..") return Status::InvalidArgument("path leaves the module ('..')");
    if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (out.empty()) return Status::InvalidArgument("an entry names the package's root");
  if (out.size() > 1024) return Status::InvalidArgument("path longer than 1024 characters");
  return out;
}

// Whether a symbolic link at `link` (relative to the module folder) with
// target `target` stays inside the folder, judged on the names alone.
bool LinkStaysInside(const std::string& link, const std::string& target) {
  if (target.empty() || target[0] == '/') return false;
  std::vector<std::string> stack;
  std::string parent = fs::path(link).parent_path().string();
  std::string joined = parent.empty() ? target : parent + "/" + target;
  std::size_t start = 0;
  while (start <= joined.size()) {
    std::size_t slash = joined.find('/', start);
    std::string part = joined.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part == "..") {
      if (stack.empty()) return false;
      stack.pop_back();
    } else if (!part.empty() && part != ".") {
      stack.push_back(part);
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

// Whether `p`, once every link is resolved, is `root` or below it.
bool ResolvesInside(const fs::path& p, const fs::path& root) {
  std::error_code ec;
  fs::path real = fs::weakly_canonical(p, ec);
  fs::path real_root = fs::weakly_canonical(root, ec);
  if (ec) return false;
  auto [r, _] = std::mismatch(real_root.begin(), real_root.end(), real.begin(), real.end());
  return r == real_root.end();
}

const char* SpecialTypeName(mode_t type) {
  switch (type) {
    case AE_IFCHR:
      return "a character device";
    case AE_IFBLK:
      return "a block device";
    case AE_IFIFO:
      return "a fifo";
    case AE_IFSOCK:
      return "a socket";
    default:
      return "a special file";
  }
}

// Only the central directory is trusted (the seekable reader): a zip cut
// short loses it, while its local headers could still be read one by one
// and the cut go unnoticed.
Result<ReadArchive> OpenZip(const fs::path& path) {
  ReadArchive a(archive_read_new(), archive_read_free);
  if (!a) return Status::Failed("libarchive: out of memory");
  archive_read_support_format_zip_seekable(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 64 * 1024) == ARCHIVE_OK) return a;
  char magic[4] = {};
  std::ifstream(path, std::ios::binary).read(magic, sizeof magic);
  if (std::memcmp(magic, "PK\x03\x04", 4) == 0) {
    return Status::Corruption(path.string() + ": truncated archive: no zip central directory (" +
                              ArchiveError(a.get()) + ")");
  }
  return Status::InvalidArgument(path.string() +
                                 ": not a readable zip archive: " + ArchiveError(a.get()));
}

// One entry as the header announces it, checked.
struct Entry {
  std::string path;
  mode_t type = 0;
  mode_t perm = 0;
  std::string link;  // symlink target, or the hard link's target path
  bool hardlink = false;
  std::uint64_t declared_size = 0;  // what the header says; the data may differ
};

// Reads the next header; nullopt at the end.
Result<std::optional<Entry>> NextEntry(archive* a, const fs::path& file) {
  archive_entry* e = nullptr;
  int r = archive_read_next_header(a, &e);
  if (r == ARCHIVE_EOF) return std::optional<Entry>();
  if (r < ARCHIVE_WARN) {
    return Status::Corruption(file.string() + ": damaged or truncated archive: " + ArchiveError(a));
  }
  const char* name = archive_entry_pathname(e);
  std::string raw = name != nullptr ? name : "";
  auto fail = [&](const std::string& why) {
    return Status::InvalidArgument(file.string() + ": entry '" + raw + "': " + why);
  };
  auto clean = CleanEntryPath(raw);
  if (!clean.ok()) return fail(clean.status().message());
  Entry out;
  out.path = *clean;
  out.type = archive_entry_filetype(e);
  out.perm = archive_entry_perm(e);
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
    out.declared_size = static_cast<std::uint64_t>(archive_entry_size(e));
  }
  if (const char* hl = archive_entry_hardlink(e); hl != nullptr) {
    auto target = CleanEntryPath(hl);
    if (!target.ok())
      return fail(std::string("hard link to '") + hl + "' points outside the module");
    out.hardlink = true;
    out.link = *target;
    out.type = AE_IFREG;
  } else if (out.type == AE_IFLNK) {
    const char* t = archive_entry_symlink(e);
    out.link = t != nullptr ? t : "";
    if (!LinkStaysInside(out.path, out.link)) {
      return fail("symbolic link to '" + out.link + "' points outside the module");
    }
  } else if (out.type != AE_IFREG && out.type != AE_IFDIR) {
    return fail(std::string(SpecialTypeName(out.type)) +
                " (a package holds files, folders and links only)");
  }
  return std::optional<Entry>(std::move(out));
}

Status WriteAll(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError(std::string("write: ") + std::strerror(errno));
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

bool UnderBin(const std::string& path) { return path.rfind("bin/", 0) == 0; }

}  // namespace

Result<ExtractedFiles> ExtractPackage(const fs::path& file, const fs::path& dest,
                                      const ExtractLimits& limits) {
  const std::string where = file.string();
  const std::string too_big = where + ": expands to more than " + std::to_string(limits.max_bytes) +
                              " bytes (limit): refused as a possible zip bomb";
  // Pass 1: every header, before anything is written.
  std::map<std::string, Entry> seen;
  {
    auto a = OpenZip(file);
    if (!a.ok()) return a.status();
    std::uint64_t declared = 0;
    while (true) {
      auto next = NextEntry(a->get(), file);
      if (!next.ok()) return next.status();
      if (!next->has_value()) break;
      Entry& e = **next;
      if (seen.size() + 1 > limits.max_entries) {
        return Status::InvalidArgument(where + ": holds more than " +
                                       std::to_string(limits.max_entries) +
                                       " entries (limit): refused as a possible zip bomb");
      }
      // Zip lists folders both as entries and as prefixes: a folder twice is fine.
      auto [it, fresh] = seen.emplace(e.path, e);
      if (!fresh && !(e.type == AE_IFDIR && it->second.type == AE_IFDIR)) {
        return Status::InvalidArgument(where + ": entry '" + e.path + "' appears twice");
      }
      if (e.hardlink &&
          (!seen.count(e.link) || seen[e.link].type != AE_IFREG || seen[e.link].hardlink)) {
        return Status::InvalidArgument(where + ": entry '" + e.path + "': hard link to '" + e.link +
                                       "', which is not an earlier file of the package");
      }
      declared += e.declared_size;
      if (declared > limits.max_bytes) return Status::InvalidArgument(too_big);
      if (archive_read_data_skip(a->get()) < ARCHIVE_WARN) {
        return Status::Corruption(where + ": damaged or truncated archive at '" + e.path +
                                  "': " + ArchiveError(a->get()));
      }
    }
  }
  // A file below a path that is itself a file or a link would be written
  // through that link: refuse the clash.
  for (const auto& [path, e] : seen) {
    for (fs::path p = fs::path(path).parent_path(); !p.empty(); p = p.parent_path()) {
      auto it = seen.find(p.string());
      if (it != seen.end() && it->second.type != AE_IFDIR) {
        return Status::InvalidArgument(where + ": entry '" + path + "' lies below '" + p.string() +
                                       "', which is not a folder");
      }
    }
  }

  // Pass 2: the data, counted as it comes. Links last, so that no file is
  // ever written through one.
  std::error_code ec;
  if (fs::exists(dest, ec)) return Status::InvalidArgument(dest.string() + " exists already");
  fs::create_directories(dest, ec);
  if (ec) return Status::IoError("cannot create " + dest.string() + ": " + ec.message());
  auto a = OpenZip(file);
  if (!a.ok()) return a.status();
  ExtractedFiles out;
  std::vector<Entry> links;
  std::vector<char> buf(64 * 1024);
  while (true) {
    auto next = NextEntry(a->get(), file);
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    Entry& e = **next;
    fs::path target = dest / e.path;
    if (e.type == AE_IFDIR) {
      fs::create_directories(target, ec);
      if (ec) return Status::IoError("cannot create " + target.string() + ": " + ec.message());
      continue;
    }
    if (e.type == AE_IFLNK || e.hardlink) {
      links.push_back(e);
      continue;
    }
    fs::create_directories(target.parent_path(), ec);
    if (ec)
      return Status::IoError("cannot create " + target.parent_path().string() + ": " +
                             ec.message());
    mode_t mode = (e.perm & 0755) | 0600;
    if (UnderBin(e.path)) mode |= 0755;
    int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
      return Status::IoError("cannot create " + target.string() + ": " + std::strerror(errno));
    Status written;
    while (written.ok()) {
      la_ssize_t n = archive_read_data(a->get(), buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0) {
        written = Status::Corruption(where + ": damaged or truncated archive at '" + e.path +
                                     "': " + ArchiveError(a->get()));
        break;
      }
      out.bytes += static_cast<std::uint64_t>(n);
      if (out.bytes > limits.max_bytes) {
        written = Status::InvalidArgument(too_big);
        break;
      }
      written = WriteAll(fd, buf.data(), static_cast<std::size_t>(n));
    }
    ::fchmod(fd, mode);  // whatever the umask took away
    ::close(fd);
    if (!written.ok()) return written;
    out.files.push_back(e.path);
  }
  for (const Entry& e : links) {
    fs::path target = dest / e.path;
    fs::create_directories(target.parent_path(), ec);
    int r = e.hardlink ? ::link((dest / e.link).c_str(), target.c_str())
                       : ::symlink(e.link.c_str(), target.c_str());
    if (r != 0)
      return Status::IoError("cannot create " + target.string() + ": " + std::strerror(errno));
    if (e.hardlink) {
      out.files.push_back(e.path);
    } else {
      // Names alone can be fooled by links through links ("a -> b/..",
      // b a link elsewhere): the resolved target must stay inside too.
      if (!ResolvesInside(target, dest)) {
        return Status::InvalidArgument(where + ": entry '" + e.path + "': symbolic link to '" +
                                       e.link + "' points outside the module");
      }
      out.symlinks.push_back(e.path);
    }
  }
  std::sort(out.files.begin(), out.files.end());
  return out;
}

Status WritePackage(const fs::path& module_dir, Manifest manifest, const fs::path& out,
                    Manifest* written) {
  std::error_code ec;
  if (!fs::is_regular_file(module_dir / "conf" / "userconfig.xml", ec)) {
    return Status::InvalidArgument(module_dir.string() +
                                   ": no conf/userconfig.xml: not a module folder");
  }
  struct Item {
    std::string rel;
    fs::file_status status;
  };
  std::vector<Item> items;
  for (fs::recursive_directory_iterator it(module_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    // Lexically: fs::relative() would resolve a link to its target's name.
    std::string rel = it->path().lexically_relative(module_dir).generic_string();
    if (rel == kManifestName) continue;
    fs::file_status st = it->symlink_status(ec);
    if (fs::is_symlink(st)) {
      std::string t = fs::read_symlink(it->path(), ec).string();
      if (!LinkStaysInside(rel, t) || !ResolvesInside(it->path(), module_dir)) {
        return Status::InvalidArgument(it->path().string() + ": symbolic link to '" + t +
                                       "' points outside the module");
      }
    } else if (!fs::is_regular_file(st) && !fs::is_directory(st)) {
      return Status::InvalidArgument(it->path().string() +
                                     ": not a file, folder or link; a package cannot hold it");
    }
    items.push_back({rel, st});
  }
  if (ec) return Status::IoError("cannot list " + module_dir.string() + ": " + ec.message());
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.rel < b.rel; });
  manifest.sha256.clear();
  for (const Item& i : items) {
    if (!fs::is_regular_file(i.status)) continue;
    auto sum = Sha256File(module_dir / i.rel);
    if (!sum.ok()) return sum.status();
    manifest.sha256[i.rel] = *sum;
  }

  fs::path tmp = out;
  tmp += ".tmp";
  WriteArchive a(archive_write_new(), archive_write_free);
  archive_write_set_format_zip(a.get());
  if (archive_write_open_filename(a.get(), tmp.c_str()) != ARCHIVE_OK) {
    return Status::IoError("cannot write " + tmp.string() + ": " + ArchiveError(a.get()));
  }
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(nullptr, archive_entry_free);
  auto fail = [&](const std::string& what) {
    std::error_code ignored;
    a.reset();
    fs::remove(tmp, ignored);
    return Status::IoError("cannot write " + out.string() + ": " + what);
  };
  auto header = [&](const std::string& rel, mode_t type, mode_t perm, std::int64_t size) {
    // A fresh entry each time: archive_entry_clear() keeps a link target's
    // "set" flag, and the next file would be written as a link.
    e.reset(archive_entry_new());
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), perm);
    archive_entry_set_size(e.get(), size);
    archive_entry_set_mtime(e.get(), ::time(nullptr), 0);
  };
  std::string text = FormatManifest(manifest);
  header(kManifestName, AE_IFREG, 0644, static_cast<std::int64_t>(text.size()));
  if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK ||
      archive_write_data(a.get(), text.data(), text.size()) < 0) {
    return fail(ArchiveError(a.get()));
  }
  std::vector<char> buf(64 * 1024);
  for (const Item& i : items) {
    fs::path src = module_dir / i.rel;
    mode_t perm = static_cast<mode_t>(i.status.permissions()) & 0755;
    if (fs::is_directory(i.status)) {
      header(i.rel, AE_IFDIR, perm | 0700, 0);
    } else if (fs::is_symlink(i.status)) {
      header(i.rel, AE_IFLNK, 0777, 0);
      archive_entry_set_symlink(e.get(), fs::read_symlink(src, ec).c_str());
    } else {
      header(i.rel, AE_IFREG, perm | 0600, static_cast<std::int64_t>(fs::file_size(src, ec)));
    }
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) return fail(ArchiveError(a.get()));
    if (!fs::is_regular_file(i.status)) continue;
    std::ifstream in(src, std::ios::binary);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
      if (archive_write_data(a.get(), buf.data(), static_cast<std::size_t>(in.gcount())) < 0) {
        return fail(ArchiveError(a.get()));
      }
    }
    if (in.bad()) return fail("cannot read " + src.string());
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return fail(ArchiveError(a.get()));
  a.reset();
  fs::rename(tmp, out, ec);
  if (ec) return Status::IoError("cannot write " + out.string() + ": " + ec.message());
  if (written != nullptr) *written = std::move(manifest);
  return Status::Ok();
}

}  // namespace hakit::package
