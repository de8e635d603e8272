#include "hakit/daemon/module_runtime.h"

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "hakit/loader/loader.h"

namespace hakit::daemon {

using sdk::Result;
using sdk::Status;

namespace {

class LoadedHooks : public HookSeam {
 public:
  LoadedHooks(std::shared_ptr<sdk::Module> module, sdk::HostContext& host)
      : module_(std::move(module)), host_(host) {}

  Status RunHook(sdk::Hook hook, const sdk::HookArgs& args) override {
    // Hooks must not throw; one that does fails its transition instead of
    // taking the daemon down.
    try {
      return module_->RunHook(hook, args, host_);
    } catch (const std::exception& e) {
      return Status::Failed(std::string(sdk::HookName(hook)) + " threw: " + e.what());
    } catch (...) {
      return Status::Failed(std::string(sdk::HookName(hook)) + " threw");
    }
  }

 private:
  std::shared_ptr<sdk::Module> module_;
  sdk::HostContext& host_;
};

class ManagedVips : public VipSeam {
 public:
  ManagedVips(vip::VipManager& manager, std::vector<ModuleRuntime::Vip> vips,
              sdk::HostContext& host)
      : manager_(manager), vips_(std::move(vips)), host_(host) {}

  Status AddAll() override {
    for (const auto& v : vips_) {
      if (Status s = Check(v); !s.ok()) return s;
      if (Status s = manager_.Add(v.spec); !s.ok()) return s;
      host_.Log(sdk::LogLevel::kInfo, "virtual IP " + v.spec.ToString() + " added");
    }
    return Status::Ok();
  }

  Status RemoveAll() override {
    Status first;
    for (const auto& v : vips_) {
      Status s = manager_.Remove(v.spec);
      if (s.ok()) {
        host_.Log(sdk::LogLevel::kInfo, "virtual IP " + v.spec.ToString() + " removed");
      } else if (first.ok()) {
        first = s;
      }
    }
    return first;
  }

 private:
  // The checks SafeKit's check="on" options ask for, before the address is
  // taken: the interface is there and up; no other host answers for the
  // address (two hosts holding it would split the clients between them).
  Status Check(const ModuleRuntime::Vip& v) {
    if (v.check_interface) {
      auto resolved = manager_.Resolve(v.spec);
      if (!resolved.ok()) return resolved.status();
      auto link = manager_.GetLinkState(resolved->interface);
      if (!link.ok()) return link.status();
      if (!link->usable()) {
        return Status::Failed("interface " + link->name + " for virtual IP " + v.spec.address +
                              " is down (interface check=\"on\")");
      }
    }
    auto present = manager_.IsPresent(v.spec);
    if (v.check_address && !(present.ok() && *present)) {
      std::string holder;
      auto in_use = manager_.ProbeInUse(v.spec, std::chrono::milliseconds(300), &holder);
      if (in_use.ok() && *in_use) {
        return Status::Failed("virtual IP " + v.spec.address + " is already in use on the "
                              "network by " + holder + " (virtual_addr check=\"on\")");
      }
      if (!in_use.ok() && in_use.status().code() != Status::Code::kUnsupported) {
        return in_use.status().WithContext("probing virtual IP " + v.spec.address);
      }
    }
    return Status::Ok();
  }

  vip::VipManager& manager_;
  std::vector<ModuleRuntime::Vip> vips_;
  sdk::HostContext& host_;
};

}  // namespace

bool Generations::Knows(std::uint64_t g) const {
  return g == current || std::find(history.begin(), history.end(), g) != history.end();
}

void Generations::Advance(std::uint64_t also) {
  // Bounded: a lineage older than this is compared by a full sync anyway.
  constexpr std::size_t kMaxHistory = 256;
  history.push_back(current);
  if (also != 0 && !Knows(also)) history.push_back(also);
  std::random_device rd;
  std::uint64_t g = 0;
  while (g == 0 || Knows(g)) g = (std::uint64_t{rd()} << 32) ^ rd();
  current = g;
  if (history.size() > kMaxHistory) history.erase(history.begin(), history.end() - kMaxHistory);
}

void Generations::Adopt(std::uint64_t primary) {
  if (primary == current || primary == 0) return;
  if (!Knows(primary)) history.push_back(current);
  current = primary;
}

std::unique_ptr<HookSeam> ModuleRuntime::MakeHookSeam() {
  return std::make_unique<LoadedHooks>(module, *context);
}

std::unique_ptr<VipSeam> ModuleRuntime::MakeVipSeam() {
  return std::make_unique<ManagedVips>(*vip_manager, vips, *context);
}

Result<cluster::ConfigHash> HashModuleConfig(const Layout& layout, const std::string& module) {
  std::vector<std::filesystem::path> files = {layout.UserConfig(module)};
  std::error_code ec;
  std::vector<std::filesystem::path> bins;
  if (std::filesystem::is_directory(layout.ModuleBin(module), ec)) {
    for (const auto& e : std::filesystem::directory_iterator(layout.ModuleBin(module), ec)) {
      if (e.is_regular_file()) bins.push_back(e.path());
    }
  }
  std::sort(bins.begin(), bins.end());
  files.insert(files.end(), bins.begin(), bins.end());
  std::string all;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return Status::IoError("cannot read " + f.string());
    std::ostringstream bytes;
    bytes << in.rdbuf();
    std::string content = bytes.str();
    // Name and length first, so that moving bytes between files changes the hash.
    all += f.filename().string() + '\0' + std::to_string(content.size()) + '\0' + content;
  }
  return cluster::Sha256(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(all.data()), all.size()));
}

Result<std::unique_ptr<ModuleRuntime>> LoadModuleRuntime(const ModuleLoadRequest& req) {
  auto m = std::make_unique<ModuleRuntime>();
  m->name = req.name;
  const Layout& layout = req.layout;

  config::ParseOptions popts;
  popts.variables = {{"SAFE", layout.SafeDir().string()},
                     {"SAFEBIN", layout.SafeBinDir().string()},
                     {"SAFEVAR", layout.VarDir().string()},
                     {"SAFEMODULE", req.name},
                     {"SAFEUSERBIN", layout.ModuleBin(req.name).string()},
                     {"SAFEUSERCONF", layout.ModuleConf(req.name).string()},
                     {"SAFEUSERVAR", layout.ModuleVar(req.name).string()}};
  auto cfg = config::ParseUserConfig(layout.UserConfig(req.name).string(), popts);
  if (!cfg.ok()) return cfg.status();
  m->config = std::move(*cfg);
  std::vector<config::Problem> problems = config::CheckModuleReadiness(m->config);
  if (!problems.empty()) {
    std::string msg = "not ready to run (hakit module check lists what to fill in): ";
    msg += problems.front().ToString();
    if (problems.size() > 1) msg += " (and " + std::to_string(problems.size() - 1) + " more)";
    return Status::InvalidArgument(msg);
  }
  if (m->config.service.mode != config::ModuleMode::kMirror) {
    return Status::Unsupported(layout.UserConfig(req.name).string() +
                               ": only mode=\"mirror\" modules run in this hakitd");
  }

  std::map<std::string, std::string> vars = config::ScriptVariables(m->config);
  m->context = std::make_unique<scripts::ModuleHostContext>(layout, req.name, req.node, vars);

  auto lib = loader::ModuleLibraryPath(layout, req.name, req.generic_module);
  if (!lib.ok()) return lib.status();
  sdk::ModuleSettings settings;
  settings.name = req.name;
  settings.userconfig_path = layout.UserConfig(req.name).string();
  settings.vars = vars;
  settings.paths = m->context->paths();
  auto loaded = loader::LoadModule(*lib, settings);
  if (!loaded.ok()) return loaded.status();
  m->module = loaded->module();
  m->library_path = loaded->library_path();
  if (Status s = m->module->Describe(&m->description); !s.ok()) {
    return s.WithContext("module library " + m->library_path.string() + " Describe()");
  }
  // The library's replicated dirs join <rfs>'s: one list for replication.
  // A dir declared by both is a configuration error (sdk/module.h).
  for (const auto& d : m->description.replicated_dirs) {
    const std::string who = "module library " + m->library_path.string() + " Describe()";
    if (d.path.empty() || d.path[0] != '/') {
      return Status::InvalidArgument(who + ": replicated dir \"" + d.path + "\" is not absolute");
    }
    for (const auto& c : m->config.rfs.replicated) {
      if (std::filesystem::path(c.dir).lexically_normal() ==
          std::filesystem::path(d.path).lexically_normal()) {
        return Status::InvalidArgument(layout.UserConfig(req.name).string() + ":" +
                                       c.location.ToString() + ": <replicated dir=\"" + c.dir +
                                       "\">: also declared by " + who + "; keep one");
      }
    }
    config::ReplicatedDirConfig c;
    c.dir = d.path;
    c.read_only = d.read_only_on_secondary;
    for (const auto& n : d.not_replicated) c.not_replicated.push_back({n, "", {}});
    m->config.rfs.replicated.push_back(std::move(c));
  }

  for (const auto& intf : m->config.vip.interfaces) {
    for (const auto& a : intf.addrs) {
      ModuleRuntime::Vip v;
      v.spec.address = a.addr;
      if (a.prefix_length >= 0) v.spec.prefix_len = a.prefix_length;
      v.spec.interface = intf.name;
      v.spec.arp_reroute = intf.arpreroute;
      v.check_interface = intf.check;
      v.check_address = a.check;
      m->vips.push_back(v);
    }
  }
  for (const auto& addr : m->description.virtual_ips) {
    ModuleRuntime::Vip v;
    v.spec.address = addr;
    m->vips.push_back(v);
  }
  m->vip_manager = &req.vip_manager;

  auto hash = HashModuleConfig(layout, req.name);
  if (!hash.ok()) return hash.status();
  m->config_hash = *hash;
  m->config_hash_hex = cluster::HexEncode(m->config_hash).substr(0, 16);
  return m;
}

}  // namespace hakit::daemon
