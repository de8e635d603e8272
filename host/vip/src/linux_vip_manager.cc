// The Linux VipManager: rtnetlink for addresses and links, packet sockets for
// ARP. Holds no state between calls; each call opens its own sockets, so the
// manager is thread-safe and follows the caller's network namespace.
#include <memory>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/socket.h>

#include <algorithm>
#include <thread>

#include "arp.h"
#include "hakit/vip/vip_manager.h"
#include "ip_address.h"
#include "netlink.h"

namespace hakit::vip {

std::string VipSpec::ToString() const {
  std::string text = address;
  if (prefix_len) text += "/" + std::to_string(*prefix_len);
  if (!interface.empty()) text += " on " + interface;
  return text;
}

namespace {

using Clock = std::chrono::steady_clock;

// Probes sent by ProbeInUse, spread over its timeout.
constexpr int kProbeCount = 3;

// A spec checked and completed against the current interfaces.
struct Resolved {
  IpAddress address;
  int prefix_len = 0;
  LinkEntry link;
  VipSpec spec;  // the same, with interface and prefix_len filled in
};

Status CheckInterfaceName(const std::string& name) {
  // The kernel's limit is IFNAMSIZ including the NUL; '/' and blanks are
  // never valid (dev_valid_name).
  if (name.size() >= IFNAMSIZ || name == "." || name == ".." ||
      name.find_first_of("/: \t\n") != std::string::npos) {
    return Status::InvalidArgument("\"" + name + "\" is not a valid interface name");
  }
  return Status::Ok();
}

// Syntax only: the address parses, the prefix fits, the name is possible.
Result<IpAddress> Validate(const VipSpec& spec) {
  auto address = ParseIpAddress(spec.address);
  if (!address) {
    return Status::InvalidArgument("\"" + spec.address + "\" is not an IPv4 or IPv6 address");
  }
  if (spec.prefix_len && (*spec.prefix_len < 1 || *spec.prefix_len > address->max_prefix())) {
    return Status::InvalidArgument("prefix length " + std::to_string(*spec.prefix_len) +
                                   " is outside 1.." + std::to_string(address->max_prefix()));
  }
  if (!spec.interface.empty()) {
    Status s = CheckInterfaceName(spec.interface);
    if (!s.ok()) return s;
  } else if (address->is_v6_link_local()) {
    return Status::InvalidArgument(
        "a link-local VIP needs an interface: every link has that subnet");
  }
  return *address;
}

const LinkEntry* FindLink(const std::vector<LinkEntry>& links, const std::string& name) {
  for (const auto& link : links) {
    if (link.state.name == name) return &link;
  }
  return nullptr;
}

const LinkEntry* FindLink(const std::vector<LinkEntry>& links, int index) {
  for (const auto& link : links) {
    if (link.state.index == index) return &link;
  }
  return nullptr;
}

class LinuxVipManager final : public VipManager {
 public:
  explicit LinuxVipManager(const VipOptions& options) : options_(options) {}

  Result<VipSpec> Resolve(const VipSpec& spec) override {
    auto resolved = DoResolve(spec);
    if (!resolved.ok()) return resolved.status().WithContext("resolve VIP " + spec.ToString());
    return resolved->spec;
  }

  Status Add(const VipSpec& spec) override {
    auto resolved = DoResolve(spec);
    if (!resolved.ok()) return resolved.status().WithContext("add VIP " + spec.ToString());
    const Resolved& r = *resolved;
    const std::string what = "add VIP " + r.spec.ToString();

    auto nl = RtNetlink::Open(options_.netlink_timeout);
    if (!nl.ok()) return nl.status().WithContext(what);
    std::vector<AddrEntry> addrs;
    NlError e = DumpAddresses(**nl, r.address.family, &addrs);
    if (!e.ok()) return Status::IoError(what + ": list addresses: " + e.ToString());
    // Present with any prefix counts: the kernel would accept a second entry
    // with another prefix, and two copies of one VIP help nobody.
    bool present = std::any_of(addrs.begin(), addrs.end(), [&](const AddrEntry& a) {
      return a.ifindex == r.link.state.index && a.address == r.address;
    });
    if (!present) {
      e = ChangeAddress(**nl, /*add=*/true, r.link.state.index, r.address, r.prefix_len);
      // EEXIST: added between our look and our request, by us or another.
      if (!e.ok() && e.code != EEXIST) return Status::IoError(what + ": " + e.ToString());
    }
    if (r.address.is_v4() && spec.arp_reroute) {
      Status s = Announce(r);
      if (!s.ok()) {
        return Status::IoError(what + ": address added, but gratuitous ARP failed: " + s.message());
      }
    }
    return Status::Ok();
  }

  Status Remove(const VipSpec& spec) override {
    const std::string what = "remove VIP " + spec.ToString();
    std::vector<AddrEntry> holders;
    std::vector<LinkEntry> links;
    auto nl = RtNetlink::Open(options_.netlink_timeout);
    if (!nl.ok()) return nl.status().WithContext(what);
    Status s = FindHolders(**nl, spec, &holders, &links);
    if (!s.ok()) return s.WithContext(what);
    for (const auto& holder : holders) {
      // Delete with the prefix it actually has: IPv6 matches on it.
      NlError e =
          ChangeAddress(**nl, /*add=*/false, holder.ifindex, holder.address, holder.prefix_len);
      // Gone already (another remover, or the interface went away): the
      // outcome we want.
      if (!e.ok() && e.code != EADDRNOTAVAIL && e.code != ENOENT && e.code != ENODEV) {
        const LinkEntry* link = FindLink(links, holder.ifindex);
        return Status::IoError("remove VIP " + FormatIpAddress(holder.address) + "/" +
                               std::to_string(holder.prefix_len) + " on " +
                               (link ? link->state.name : std::to_string(holder.ifindex)) + ": " +
                               e.ToString());
      }
    }
    return Status::Ok();
  }

  Result<bool> IsPresent(const VipSpec& spec) override {
    std::vector<AddrEntry> holders;
    std::vector<LinkEntry> links;
    auto nl = RtNetlink::Open(options_.netlink_timeout);
    if (!nl.ok()) return nl.status().WithContext("look up VIP " + spec.ToString());
    Status s = FindHolders(**nl, spec, &holders, &links);
    if (!s.ok()) return s.WithContext("look up VIP " + spec.ToString());
    return !holders.empty();
  }

  Result<bool> InterfaceExists(const std::string& name) override {
    auto link = GetLink(name);
    if (link.ok()) return true;
    if (link.status().code() == Status::Code::kNotFound) return false;
    return link.status();
  }

  Result<LinkState> GetLinkState(const std::string& name) override {
    auto link = GetLink(name);
    if (!link.ok()) return link.status();
    return link->state;
  }

  Result<bool> ProbeInUse(const VipSpec& spec, std::chrono::milliseconds timeout,
                          std::string* holder_mac) override {
    auto resolved = DoResolve(spec);
    if (!resolved.ok()) return resolved.status().WithContext("probe VIP " + spec.ToString());
    const Resolved& r = *resolved;
    const std::string what = "probe VIP " + r.spec.ToString();
    if (!r.address.is_v4()) {
      return Status::Unsupported(what + ": IPv6 duplicate address detection is not implemented");
    }
    if (!HasArp(r.link)) {
      return Status::Unsupported(what + ": the interface does not use ARP");
    }
    MacAddr own;
    std::copy_n(r.link.hwaddr.begin(), 6, own.begin());
    Ipv4Addr vip;
    std::copy_n(r.address.bytes.begin(), 4, vip.begin());

    ArpSocket sock;
    if (int err = sock.Open(r.link.state.index)) {
      return Status::IoError(what + ": open packet socket: " + ErrnoText(err));
    }
    const auto start = Clock::now();
    const auto deadline = start + timeout;
    auto probe_time = [&](int i) { return start + timeout * i / kProbeCount; };
    int sent = 0;
    for (;;) {
      auto now = Clock::now();
      if (sent < kProbeCount && now >= probe_time(sent)) {
        // Sender address 0.0.0.0 (RFC 5227 probe): neighbours answer but do
        // not learn a mapping for the VIP from it.
        if (int err = sock.SendRequest(own, Ipv4Addr{}, vip)) {
          return Status::IoError(what + ": send ARP probe: " + ErrnoText(err));
        }
        ++sent;
        continue;
      }
      if (now >= deadline) return false;
      auto wake = sent < kProbeCount ? std::min(deadline, probe_time(sent)) : deadline;
      ArpPacket packet;
      int err = sock.Receive(wake, &packet);
      if (err == ETIMEDOUT) continue;
      if (err != 0) return Status::IoError(what + ": read ARP: " + ErrnoText(err));
      // A reply to our probe, or anyone's request or announcement that
      // claims the VIP as its sender address: that host holds it.
      bool claims = (packet.op == ARPOP_REPLY || packet.op == ARPOP_REQUEST) &&
                    packet.sender_ip == vip && packet.sender_mac != own;
      if (claims) {
        if (holder_mac) *holder_mac = FormatMac(packet.sender_mac.data(), 6);
        return true;
      }
    }
  }

 private:
  static bool HasArp(const LinkEntry& link) {
    return link.type == ARPHRD_ETHER && link.hwaddr.size() == 6 && (link.flags & IFF_NOARP) == 0;
  }

  Result<LinkEntry> GetLink(const std::string& name) {
    Status s = CheckInterfaceName(name);
    if (!s.ok()) return s;
    auto nl = RtNetlink::Open(options_.netlink_timeout);
    if (!nl.ok()) return nl.status().WithContext("query interface " + name);
    LinkEntry link;
    NlError e = GetLinkByName(**nl, name, &link);
    if (e.code == ENODEV) return Status::NotFound("interface " + name + " not found");
    if (!e.ok()) return Status::IoError("query interface " + name + ": " + e.ToString());
    return link;
  }

  // The entries that hold exactly the spec's address: on its interface if
  // it names one (NotFound if that does not exist), else on any interface.
  Status FindHolders(RtNetlink& nl, const VipSpec& spec, std::vector<AddrEntry>* holders,
                     std::vector<LinkEntry>* links) {
    auto address = Validate(spec);
    if (!address.ok()) return address.status();
    NlError e = DumpLinks(nl, links);
    if (!e.ok()) return Status::IoError("list interfaces: " + e.ToString());
    int only = 0;
    if (!spec.interface.empty()) {
      const LinkEntry* link = FindLink(*links, spec.interface);
      if (!link) return Status::NotFound("interface " + spec.interface + " not found");
      only = link->state.index;
    }
    std::vector<AddrEntry> addrs;
    e = DumpAddresses(nl, address->family, &addrs);
    if (!e.ok()) return Status::IoError("list addresses: " + e.ToString());
    for (const auto& a : addrs) {
      if (a.address == *address && (only == 0 || a.ifindex == only)) holders->push_back(a);
    }
    return Status::Ok();
  }

  // The resolution rules of the header. Errors carry the reason only; the
  // caller puts "<operation> VIP <spec>: " in front.
  Result<Resolved> DoResolve(const VipSpec& spec) {
    auto address = Validate(spec);
    if (!address.ok()) return address.status();
    auto nl = RtNetlink::Open(options_.netlink_timeout);
    if (!nl.ok()) return nl.status();
    std::vector<LinkEntry> links;
    NlError e = DumpLinks(**nl, &links);
    if (!e.ok()) return Status::IoError("list interfaces: " + e.ToString());
    std::vector<AddrEntry> addrs;
    e = DumpAddresses(**nl, address->family, &addrs);
    if (!e.ok()) return Status::IoError("list addresses: " + e.ToString());

    const LinkEntry* named = nullptr;
    if (!spec.interface.empty()) {
      named = FindLink(links, spec.interface);
      if (!named) return Status::NotFound("interface " + spec.interface + " not found");
    }
    // The existing address whose subnet holds the VIP: a real one first, the
    // VIP itself (added earlier) only if nothing else matches.
    const AddrEntry* match = nullptr;
    for (int pass = 0; pass < 2 && !match; ++pass) {
      for (const auto& a : addrs) {
        if (named && a.ifindex != named->state.index) continue;
        if ((a.address == *address) != (pass == 1)) continue;
        if (!SameSubnet(a.address, *address, a.prefix_len)) continue;
        if (!named && !FindLink(links, a.ifindex)) continue;
        match = &a;
        break;
      }
    }
    Resolved r;
    r.address = *address;
    if (named) {
      r.link = *named;
    } else if (match) {
      r.link = *FindLink(links, match->ifindex);
    } else {
      return Status::NotFound("no interface has an address in the same subnet as " +
                              FormatIpAddress(*address) + "; name the interface");
    }
    r.prefix_len =
        spec.prefix_len ? *spec.prefix_len : (match ? match->prefix_len : address->max_prefix());
    r.spec = spec;
    r.spec.interface = r.link.state.name;
    r.spec.prefix_len = r.prefix_len;
    return r;
  }

  // garp_count gratuitous ARP requests (sender = target = VIP), broadcast,
  // garp_interval apart: the first now, the others in the background. Links without ARP (loopback, tunnels) need none.
  Status Announce(const Resolved& r) {
    if (!HasArp(r.link) || options_.garp_count <= 0) return Status::Ok();
    MacAddr own;
    std::copy_n(r.link.hwaddr.begin(), 6, own.begin());
    Ipv4Addr vip;
    std::copy_n(r.address.bytes.begin(), 4, vip.begin());
    auto sock = std::make_shared<ArpSocket>();
    if (int err = sock->OpenSendOnly(r.link.state.index)) {
      return Status::IoError("open packet socket: " + ErrnoText(err));
    }
    if (int err = sock->SendRequest(own, vip, vip)) return Status::IoError(ErrnoText(err));
    // The first announcement goes out before Add returns; the repeats (for
    // a frame lost on the way) must not delay the application's start on a
    // failover, so a thread of their own sends them, and closes the socket.
    int repeats = options_.garp_count - 1;
    if (repeats > 0) {
      std::thread([sock, repeats, interval = options_.garp_interval, own, vip]() {
        for (int i = 0; i < repeats; ++i) {
          std::this_thread::sleep_for(interval);
          sock->SendRequest(own, vip, vip);
        }
      }).detach();
    }
    return Status::Ok();
  }

  const VipOptions options_;
};

}  // namespace

std::unique_ptr<VipManager> NewLinuxVipManager(const VipOptions& options) {
  return std::make_unique<LinuxVipManager>(options);
}

}  // namespace hakit::vip
