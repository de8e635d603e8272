#include "arp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace hakit::vip {

ArpSocket::~ArpSocket() {
  if (fd_ >= 0) close(fd_);
}

int ArpSocket::Open(int ifindex) {
  // SOCK_DGRAM: the kernel writes and strips the Ethernet header, we deal in
  // ARP payloads only.
  fd_ = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
  if (fd_ < 0) return errno;
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ARP);
  sll.sll_ifindex = ifindex;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) return errno;
  ifindex_ = ifindex;
  return 0;
}

int ArpSocket::OpenSendOnly(int ifindex) {
  fd_ = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return errno;
  ifindex_ = ifindex;
  return 0;
}

int ArpSocket::SendRequest(const MacAddr& sender_mac, const Ipv4Addr& sender_ip,
                           const Ipv4Addr& target_ip) {
  ether_arp arp{};
  arp.arp_hrd = htons(ARPHRD_ETHER);
  arp.arp_pro = htons(ETHERTYPE_IP);
  arp.arp_hln = 6;
  arp.arp_pln = 4;
  arp.arp_op = htons(ARPOP_REQUEST);
  std::memcpy(arp.arp_sha, sender_mac.data(), 6);
  std::memcpy(arp.arp_spa, sender_ip.data(), 4);
  // Target hardware address zero: RFC 5227 for both probes and announcements.
  std::memcpy(arp.arp_tpa, target_ip.data(), 4);

  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = ifindex_;
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);  // broadcast
  for (;;) {
    ssize_t n = sendto(fd_, &arp, sizeof(arp), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    if (n == static_cast<ssize_t>(sizeof(arp))) return 0;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : EMSGSIZE;
  }
}

int ArpSocket::Receive(std::chrono::steady_clock::time_point deadline, ArpPacket* packet) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return ETIMEDOUT;
    pollfd pfd{fd_, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (ready == 0) return ETIMEDOUT;
    ether_arp arp;
    sockaddr_ll from{};
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(fd_, &arp, sizeof(arp), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from),
                         &from_len);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno;
    }
    // Our own transmissions loop back to packet sockets: not an answer.
    if (from.sll_pkttype == PACKET_OUTGOING || from.sll_ifindex != ifindex_) continue;
    if (n < static_cast<ssize_t>(sizeof(arp)) || ntohs(arp.arp_hrd) != ARPHRD_ETHER ||
        ntohs(arp.arp_pro) != ETHERTYPE_IP || arp.arp_hln != 6 || arp.arp_pln != 4) {
      continue;
    }
    packet->op = ntohs(arp.arp_op);
    std::memcpy(packet->sender_mac.data(), arp.arp_sha, 6);
    std::memcpy(packet->sender_ip.data(), arp.arp_spa, 4);
    std::memcpy(packet->target_mac.data(), arp.arp_tha, 6);
    std::memcpy(packet->target_ip.data(), arp.arp_tpa, 4);
    return 0;
  }
}

}  // namespace hakit::vip
