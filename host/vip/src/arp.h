// Raw ARP on one Ethernet interface (AF_PACKET): gratuitous ARP to announce a
// VIP and RFC 5227 probes to find out whether someone else holds it.
// Internal to hakit_vip; Linux only; needs CAP_NET_RAW.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace hakit::vip {

using MacAddr = std::array<uint8_t, 6>;
using Ipv4Addr = std::array<uint8_t, 4>;

// The fields of an Ethernet/IPv4 ARP packet that we look at.
struct ArpPacket {
  uint16_t op = 0;  // ARPOP_REQUEST or ARPOP_REPLY
  MacAddr sender_mac{};
  Ipv4Addr sender_ip{};
  MacAddr target_mac{};
  Ipv4Addr target_ip{};
};

// A packet socket bound to one interface that sends and receives ARP.
// Every method returns 0 or a positive errno. One thread at a time.
class ArpSocket {
 public:
  ArpSocket() = default;
  ~ArpSocket();
  ArpSocket(const ArpSocket&) = delete;
  ArpSocket& operator=(const ArpSocket&) = delete;

  int Open(int ifindex);
  // A socket that only sends (protocol 0, no bind): opening and closing it
  // costs no wait for the kernel's packet-hook grace period, which a bound
  // ETH_P_ARP socket does (10-20 ms each, on the failover's critical path).
  int OpenSendOnly(int ifindex);
  // Broadcasts an ARP request (the Ethernet source is the interface's MAC).
  // An announcement has sender_ip == target_ip; a probe has sender_ip 0.
  int SendRequest(const MacAddr& sender_mac, const Ipv4Addr& sender_ip, const Ipv4Addr& target_ip);
  // Waits until `deadline` for an ARP packet that arrived on the interface
  // (our own outgoing ones are skipped). ETIMEDOUT when none came.
  int Receive(std::chrono::steady_clock::time_point deadline, ArpPacket* packet);

 private:
  int fd_ = -1;
  int ifindex_ = 0;
};

}  // namespace hakit::vip
