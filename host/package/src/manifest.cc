#include "hakit/package/manifest.h"

#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "hakit/cluster/heartbeat_codec.h"

namespace hakit::package {

using sdk::Result;
using sdk::Status;

std::string FormatManifest(const Manifest& m) {
  std::ostringstream out;
  out << "hakit-package " << kManifestFormat << "\n"
      << "module " << m.module << "\n"
      << "version " << m.version << "\n"
      << "abi " << m.abi << "\n";
  // Two spaces before the path, as sha256sum prints it.
  for (const auto& [path, sum] : m.sha256) out << "sha256 " << sum << "  " << path << "\n";
  return out.str();
}

Result<Manifest> ParseManifest(const std::string& text, const std::string& display_name) {
  Manifest m;
  std::istringstream in(text);
  int line_no = 0;
  bool have_format = false;
  auto fail = [&](const std::string& what) {
    return Status::InvalidArgument(display_name + ":" + std::to_string(line_no) + ": " + what);
  };
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::size_t sp = line.find(' ');
    std::string key = line.substr(0, sp);
    std::string value = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (!have_format) {
      if (key != "hakit-package")
        return fail("not a hakit package manifest (expected 'hakit-package 1')");
      if (value != std::to_string(kManifestFormat)) {
        return fail("manifest format " + value + " is not supported (this hakit reads format " +
                    std::to_string(kManifestFormat) + ")");
      }
      have_format = true;
    } else if (key == "module") {
      if (std::string why = InvalidModuleName(value); !why.empty()) return fail(why);
      m.module = value;
    } else if (key == "version") {
      if (value.empty() || value.find(' ') != std::string::npos) {
        return fail("version '" + value + "' must be one word");
      }
      m.version = value;
    } else if (key == "abi") {
      try {
        std::size_t used = 0;
        unsigned long v = std::stoul(value, &used);
        if (used != value.size() || v > 0xffffffffUL) throw std::out_of_range("abi");
        m.abi = static_cast<std::uint32_t>(v);
      } catch (const std::exception&) {
        return fail("abi '" + value + "' is not a number");
      }
    } else if (key == "sha256") {
      std::size_t gap = value.find("  ");
      std::string sum = value.substr(0, gap);
      bool hex = sum.size() == 64 && sum.find_first_not_of("0123456789abcdef") == std::string::npos;
      if (gap == std::string::npos || !hex || gap + 2 >= value.size()) {
        return fail("expected 'sha256 <64 hex digits>  <path>'");
      }
      std::string path = value.substr(gap + 2);
      if (!m.sha256.emplace(path, sum).second) return fail("file " + path + " listed twice");
    } else {
      return fail("unknown key '" + key + "'");
    }
  }
  if (!have_format) return Status::InvalidArgument(display_name + ": empty manifest");
  if (m.module.empty()) return Status::InvalidArgument(display_name + ": no 'module' line");
  if (m.version.empty()) return Status::InvalidArgument(display_name + ": no 'version' line");
  return m;
}

Result<Manifest> ReadManifest(const std::filesystem::path& module_dir) {
  std::filesystem::path path = module_dir / kManifestName;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return Status::NotFound("no manifest in " + module_dir.string());
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return Status::IoError("cannot read " + path.string());
  return ParseManifest(text.str(), path.string());
}

Result<std::string> Sha256File(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot read " + path.string());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Status::Failed("OpenSSL: cannot start SHA-256");
  }
  char buf[64 * 1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    EVP_DigestUpdate(ctx.get(), buf, static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) return Status::IoError("cannot read " + path.string());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return cluster::HexEncode(std::span<const std::uint8_t>(md, len));
}

std::string InvalidModuleName(const std::string& name) {
  if (name.empty()) return "a module name cannot be empty";
  if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos) {
    return "module name '" + name + "' contains a path separator";
  }
  if (name.size() > 64) return "module name '" + name + "' is longer than 64 characters";
  if (name[0] == '.') return "module name '" + name + "' starts with '.'";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      return "module name '" + name + "' contains '" + std::string(1, c) +
             "' (letters, digits, '_', '-' and '.' only)";
    }
  }
  return "";
}

}  // namespace hakit::package
