// Virtual IP addresses: putting a module's VIP on a real interface of the
// primary, taking it off again, and the checks around that (is the interface
// there and up, is the address already answered by another host).
//
// VipManager is the platform seam: Linux talks rtnetlink and raw ARP
// (NewLinuxVipManager); a Windows port adds its own implementation behind the
// same interface. Nothing here remembers what it added: a VIP is recognised
// by its exact address on the interface, so that a daemon restarted after a
// crash can remove the VIP it left behind without any state of its own.
//
// How a VipSpec is resolved (Resolve(), and every call that takes a spec):
//  - interface given, prefix_len not given: the prefix of the interface's
//    existing address whose subnet contains the VIP (the "real interface's
//    network", as SafeKit does), or else a host prefix (/32, /128).
//  - interface not given: the interface that has an address whose subnet
//    contains the VIP; its prefix too, unless prefix_len is given. No such
//    interface is an error that names the VIP.
//  When deriving, the VIP's own address (already added) is ignored in favour
//  of a real address, so that a spec resolves the same before and after Add.
//
// Error messages name the operation, the VIP and the interface, then the
// OS's reason: "add VIP 198.18.0.100/24 on eth0: Operation not permitted".
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "hakit/sdk/status.h"

namespace hakit::vip {

using sdk::Result;
using sdk::Status;

// One virtual address as the configuration gives it
// (<real_interface><virtual_addr addr=...>).
struct VipSpec {
  // IPv4 ("198.18.0.100") or IPv6 ("2001:db8::10") literal. Host names are
  // not resolved here: the config layer does that once, at load.
  std::string address;
  // Network prefix length; unset: derived from the interface (see above).
  std::optional<int> prefix_len;
  // Interface name ("eth0"); empty: chosen by subnet (see above).
  std::string interface;
  // SafeKit's arpreroute="on": after adding an IPv4 VIP, send gratuitous ARP
  // so that neighbours and switches move the address to this host's MAC at
  // once rather than when their ARP cache expires. Default true.
  bool arp_reroute = true;

  // "198.18.0.100/24 on eth0"; the prefix and interface only when known.
  std::string ToString() const;
};

// What RTM_GETLINK (or the platform's equivalent) says about an interface.
struct LinkState {
  std::string name;
  int index = 0;
  bool admin_up = false;  // IFF_UP: configured up by the administrator
  bool carrier = false;   // a cable or peer is there (IFLA_CARRIER)
  bool running = false;   // IFF_RUNNING: operationally up, can pass traffic
  bool loopback = false;
  std::string mac;  // "02:00:00:00:00:01"; empty for links without one
  int mtu = 0;

  // What the `<interface check="on">` checker wants: up and passing traffic.
  bool usable() const { return admin_up && running; }
};

// Tunables of the Linux implementation, each with its default.
struct VipOptions {
  // Gratuitous ARPs sent by Add(), and the pause between two of them.
  // Several, because the first may be lost while a switch port is learning.
  int garp_count = 3;
  std::chrono::milliseconds garp_interval{100};
  // How long one rtnetlink request may wait for the kernel's answer.
  std::chrono::milliseconds netlink_timeout{5000};
};

// Adds and removes VIPs and answers questions about interfaces. Every method
// is safe to call from several threads at once (each call opens its own
// sockets) and acts on the network namespace the calling thread is in.
// Non-copyable.
class VipManager {
 public:
  VipManager() = default;
  VipManager(const VipManager&) = delete;
  VipManager& operator=(const VipManager&) = delete;
  virtual ~VipManager() = default;

  // Returns the spec with interface and prefix_len filled in (rules above).
  // InvalidArgument for a malformed address, prefix or interface name;
  // NotFound when the interface does not exist or none matches.
  virtual Result<VipSpec> Resolve(const VipSpec& spec) = 0;

  // Puts the VIP on its interface, then (IPv4, arp_reroute) announces it with
  // gratuitous ARP, synchronously: the call returns after the last ARP,
  // about (garp_count - 1) * garp_interval later. Already present (with any
  // prefix) is success, and the ARPs are still sent: a takeover wants them.
  // IPv6 addresses are added without duplicate address detection
  // (IFA_F_NODAD) so that they serve at once; no unsolicited neighbour
  // advertisement is sent for them (not implemented). If the address was
  // added but the ARPs could not be sent, the error says so and the address
  // stays: Remove() takes it off.
  virtual Status Add(const VipSpec& spec) = 0;

  // Takes the VIP off its interface; with no interface given, off every
  // interface that holds exactly this address. Absent is success. NotFound
  // if a named interface does not exist.
  virtual Status Remove(const VipSpec& spec) = 0;

  // Whether the exact address is on the named interface (any interface when
  // none is named), whatever its prefix.
  virtual Result<bool> IsPresent(const VipSpec& spec) = 0;

  // Whether an interface of that name exists. An error only when the OS
  // cannot be asked.
  virtual Result<bool> InterfaceExists(const std::string& name) = 0;

  // The interface's flags and carrier; NotFound if it does not exist.
  virtual Result<LinkState> GetLinkState(const std::string& name) = 0;

  // Asks the network whether another host already answers for the VIP
  // (`<virtual_addr check="on">`, run before Add). IPv4: sends RFC 5227 ARP
  // probes (sender address 0.0.0.0, so no neighbour learns anything from
  // them) at the start and at a third and two thirds of `timeout`, and
  // returns true as soon as another host's ARP claims the address, storing
  // that host's MAC in *holder_mac if holder_mac is not null; false after
  // `timeout` of silence. This host's own use of the address does not count.
  // Unsupported for IPv6 and for links without ARP.
  virtual Result<bool> ProbeInUse(const VipSpec& spec, std::chrono::milliseconds timeout,
                                  std::string* holder_mac) = 0;
};

// The Linux implementation: rtnetlink (NETLINK_ROUTE) for addresses and
// links, AF_PACKET sockets for ARP. Needs CAP_NET_ADMIN to add or remove and
// CAP_NET_RAW to send or probe ARP; queries need no privilege.
std::unique_ptr<VipManager> NewLinuxVipManager(const VipOptions& options = VipOptions());

}  // namespace hakit::vip
