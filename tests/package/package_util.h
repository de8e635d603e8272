// Helpers the package tests share: module folders and zip archives written
// with libarchive, including the bad ones a hostile package would be.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace hakit::package::testing {

namespace fs = std::filesystem;

inline void WriteText(const fs::path& p, const std::string& text, bool exec = false) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  fs::permissions(p, exec ? fs::perms(0755) : fs::perms(0644));
}

inline std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A userconfig.xml that parses and is ready to run (no placeholders).
inline std::string ReadyConfig(const std::string& extra = "") {
  return "<!DOCTYPE safe>\n<safe>\n  <service mode=\"mirror\" defaultprim=\"alone\">\n"
         "    <heart pulse=\"100ms\" timeout=\"1000ms\"><heartbeat name=\"default\"/></heart>\n"
         "    <user nicestoptimeout=\"10\" forcestoptimeout=\"10\" logging=\"userlog\"/>\n" +
         extra + "  </service>\n</safe>\n";
}

// A generic module folder: conf/userconfig.xml and two scripts.
inline void WriteModuleDir(const fs::path& dir, const std::string& config = ReadyConfig(),
                           const std::string& marker = "v1") {
  WriteText(dir / "conf" / "userconfig.xml", config);
  WriteText(dir / "bin" / "start_prim", "#!/bin/sh\n# " + marker + "\necho start_prim \"$@\"\n", true);
  WriteText(dir / "bin" / "stop_prim", "#!/bin/sh\necho stop_prim \"$@\"\n", true);
}

// Every file under `dir` (path -> bytes, links as "-> target"): compared
// before and after a refused install to show nothing changed.
inline std::map<std::string, std::string> Snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string rel = fs::relative(it->path(), dir).string();
    if (it->is_symlink()) {
      out[rel] = "-> " + fs::read_symlink(it->path()).string();
    } else if (it->is_regular_file()) {
      out[rel] = ReadText(it->path()) + "|mode=" +
                 std::to_string(static_cast<int>(fs::status(it->path()).permissions()));
    } else {
      out[rel] = "<dir>";
    }
  }
  return out;
}

// Writes a zip with libarchive, entry by entry, as a packager (honest or
// not) would.
class ZipWriter {
 public:
  explicit ZipWriter(const fs::path& path) : path_(path), a_(archive_write_new()) {
    archive_write_set_format_zip(a_);
    archive_write_open_filename(a_, path.c_str());
  }
  ~ZipWriter() { Close(); }

  void File(const std::string& name, const std::string& data, int perm = 0644) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, perm);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_write_header(a_, e);
    archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
  }
  void Symlink(const std::string& name, const std::string& target) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFLNK);
    archive_entry_set_perm(e, 0777);
    archive_entry_set_symlink(e, target.c_str());
    archive_write_header(a_, e);
    archive_entry_free(e);
  }
  // The two files every generic module needs, plus its configuration.
  void Module(const std::string& config = ReadyConfig()) {
    File("conf/userconfig.xml", config);
    File("bin/start_prim", "#!/bin/sh\necho start\n", 0755);
    File("bin/stop_prim", "#!/bin/sh\necho stop\n", 0755);
  }
  void Close() {
    if (a_ == nullptr) return;
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
  }

 private:
  fs::path path_;
  archive* a_;
};

// Zip cannot say "device" through libarchive's writer; its central
// directory can, in the Unix mode bits of an entry's external attributes.
// Rewrites the mode of entry `name` to `mode` (S_IFCHR | 0644, ...).
inline bool PatchZipMode(const fs::path& zip, const std::string& name, std::uint32_t mode) {
  std::string bytes = ReadText(zip);
  for (std::size_t i = 0; i + 46 <= bytes.size(); ++i) {
    if (bytes.compare(i, 4, "PK\x01\x02", 4) != 0) continue;
    auto u16 = [&](std::size_t o) {
      return static_cast<std::size_t>(static_cast<unsigned char>(bytes[i + o])) |
             static_cast<std::size_t>(static_cast<unsigned char>(bytes[i + o + 1])) << 8;
    };
    std::size_t name_len = u16(28);
    if (bytes.compare(i + 46, name_len, name) != 0 || name_len != name.size()) continue;
    bytes[i + 5] = 3;  // made by Unix: the high 16 bits of the attributes are a mode
    std::uint32_t attrs = mode << 16;
    for (int b = 0; b < 4; ++b) bytes[i + 38 + b] = static_cast<char>((attrs >> (8 * b)) & 0xff);
    std::ofstream(zip, std::ios::binary | std::ios::trunc) << bytes;
    return true;
  }
  return false;
}

}  // namespace hakit::package::testing
