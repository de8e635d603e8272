#include "netlink.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace hakit::vip {

namespace {

using Clock = std::chrono::steady_clock;

// IFF_LOWER_UP lives in <linux/if.h>, which clashes with <net/if.h>.
constexpr unsigned int kIffLowerUp = 1u << 16;

// Large enough for any single rtnetlink message; the kernel sizes its dump
// batches to the reader's buffer.
constexpr std::size_t kReceiveBuffer = 64 * 1024;
// A dump interrupted this many times in a row is reported, not retried.
constexpr int kMaxDumpAttempts = 5;

// Parses the NLMSG_ERROR payload: the errno and the extended ack message.
NlError ParseError(const nlmsghdr& nlh) {
  if (nlh.nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return {EBADMSG, "short netlink error"};
  nlmsgerr err;
  std::memcpy(&err, NLMSG_DATA(&nlh), sizeof(err));
  NlError out{-err.error, ""};
  if ((nlh.nlmsg_flags & NLM_F_ACK_TLVS) == 0) return out;
  // The TLVs follow the echoed request, or only its header when capped.
  std::size_t offset = sizeof(nlmsgerr);
  if ((nlh.nlmsg_flags & NLM_F_CAPPED) == 0) offset += err.msg.nlmsg_len - NLMSG_HDRLEN;
  const char* base = static_cast<const char*>(NLMSG_DATA(&nlh));
  const char* p = base + offset;
  const char* end = reinterpret_cast<const char*>(&nlh) + nlh.nlmsg_len;
  while (p + NLA_HDRLEN <= end) {
    nlattr attr;
    std::memcpy(&attr, p, sizeof(attr));
    if (attr.nla_len < NLA_HDRLEN || p + attr.nla_len > end) break;
    if ((attr.nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      const char* text = p + NLA_HDRLEN;
      out.detail.assign(text, strnlen(text, attr.nla_len - NLA_HDRLEN));
    }
    p += NLA_ALIGN(attr.nla_len);
  }
  return out;
}

// Calls fn(type, data, size) for each rtattr in [begin, begin + size).
template <typename Fn>
void ForEachAttr(const rtattr* attr, int size, Fn fn) {
  for (; RTA_OK(attr, size); attr = RTA_NEXT(attr, size)) {
    fn(attr->rta_type, RTA_DATA(attr), RTA_PAYLOAD(attr));
  }
}

bool ParseLink(const nlmsghdr& nlh, LinkEntry* out) {
  if (nlh.nlmsg_type != RTM_NEWLINK || nlh.nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) {
    return false;
  }
  const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(&nlh));
  LinkEntry link;
  link.state.index = ifi->ifi_index;
  link.flags = ifi->ifi_flags;
  link.type = ifi->ifi_type;
  link.state.admin_up = (ifi->ifi_flags & IFF_UP) != 0;
  link.state.running = (ifi->ifi_flags & IFF_RUNNING) != 0;
  link.state.loopback = (ifi->ifi_flags & IFF_LOOPBACK) != 0;
  // Without IFLA_CARRIER (very old kernels), IFF_LOWER_UP says the same.
  link.state.carrier = (ifi->ifi_flags & kIffLowerUp) != 0;
  ForEachAttr(IFLA_RTA(ifi), IFLA_PAYLOAD(&nlh), [&](int type, const void* data, std::size_t n) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    switch (type) {
      case IFLA_IFNAME:
        link.state.name.assign(static_cast<const char*>(data),
                               strnlen(static_cast<const char*>(data), n));
        break;
      case IFLA_ADDRESS:
        link.hwaddr.assign(bytes, bytes + n);
        break;
      case IFLA_CARRIER:
        if (n >= 1) link.state.carrier = bytes[0] != 0;
        break;
      case IFLA_MTU:
        if (n >= sizeof(uint32_t)) {
          uint32_t mtu;
          std::memcpy(&mtu, data, sizeof(mtu));
          link.state.mtu = static_cast<int>(mtu);
        }
        break;
    }
  });
  // Loopback and tunnels have an all-zero or absent hardware address: no MAC
  // to speak of.
  bool has_mac = link.type == ARPHRD_ETHER && link.hwaddr.size() == 6;
  if (has_mac) link.state.mac = FormatMac(link.hwaddr.data(), link.hwaddr.size());
  *out = std::move(link);
  return true;
}

bool ParseAddr(const nlmsghdr& nlh, int family, AddrEntry* out) {
  if (nlh.nlmsg_type != RTM_NEWADDR || nlh.nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) {
    return false;
  }
  const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(&nlh));
  if (ifa->ifa_family != family) return false;
  AddrEntry entry;
  entry.ifindex = static_cast<int>(ifa->ifa_index);
  entry.prefix_len = ifa->ifa_prefixlen;
  entry.flags = ifa->ifa_flags;
  entry.address.family = family;
  std::size_t want = family == AF_INET ? 4 : 16;
  bool have_local = false, have_address = false;
  IpAddress local = entry.address, address = entry.address;
  ForEachAttr(IFA_RTA(ifa), IFA_PAYLOAD(&nlh), [&](int type, const void* data, std::size_t n) {
    if ((type == IFA_LOCAL || type == IFA_ADDRESS) && n == want) {
      IpAddress& dst = type == IFA_LOCAL ? local : address;
      std::memcpy(dst.bytes.data(), data, n);
      (type == IFA_LOCAL ? have_local : have_address) = true;
    } else if (type == IFA_FLAGS && n >= sizeof(uint32_t)) {
      std::memcpy(&entry.flags, data, sizeof(uint32_t));
    }
  });
  // IFA_LOCAL is this host's address; IFA_ADDRESS is the peer's on
  // point-to-point links and equal to IFA_LOCAL otherwise. IPv6 sends only
  // IFA_ADDRESS unless a peer is set.
  if (have_local) {
    entry.address = local;
  } else if (have_address) {
    entry.address = address;
  } else {
    return false;
  }
  *out = entry;
  return true;
}

}  // namespace

std::string NlError::ToString() const {
  std::string text = ErrnoText(code);
  if (!detail.empty()) text += " (" + detail + ")";
  return text;
}

NlMessage::NlMessage(uint16_t type, uint16_t flags) {
  nlmsghdr header{};
  header.nlmsg_type = type;
  header.nlmsg_flags = static_cast<uint16_t>(flags | NLM_F_REQUEST);
  AppendAligned(&header, sizeof(header));
}

void NlMessage::AppendAligned(const void* data, std::size_t size) {
  std::size_t at = buf_.size();
  buf_.resize(at + NLMSG_ALIGN(size), 0);
  std::memcpy(buf_.data() + at, data, size);
  header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void NlMessage::AddAttr(uint16_t type, const void* data, std::size_t size) {
  rtattr attr{};
  attr.rta_type = type;
  attr.rta_len = static_cast<unsigned short>(RTA_LENGTH(size));
  std::size_t at = buf_.size();
  buf_.resize(at + RTA_SPACE(size), 0);
  std::memcpy(buf_.data() + at, &attr, sizeof(attr));
  std::memcpy(buf_.data() + at + RTA_LENGTH(0), data, size);
  header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void NlMessage::AddStringAttr(uint16_t type, const std::string& value) {
  AddAttr(type, value.c_str(), value.size() + 1);  // with its NUL
}

Result<std::unique_ptr<RtNetlink>> RtNetlink::Open(std::chrono::milliseconds timeout) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return Status::IoError("open rtnetlink socket: " + ErrnoText(errno));
  int one = 1;
  // Extended acks carry the kernel's reason in words; capped acks spare us
  // the echo of our own request. Both are optional: older kernels refuse the
  // option and we simply get bare errno values.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    int err = errno;
    close(fd);
    return Status::IoError("bind rtnetlink socket: " + ErrnoText(err));
  }
  return std::unique_ptr<RtNetlink>(new RtNetlink(fd, timeout));
}

RtNetlink::~RtNetlink() { close(fd_); }

NlError RtNetlink::Send(NlMessage& request) {
  request.header()->nlmsg_seq = next_seq_++;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = sendto(fd_, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                       sizeof(kernel));
    if (n == static_cast<ssize_t>(request.size())) return {};
    if (n < 0 && errno == EINTR) continue;
    return {n < 0 ? errno : EMSGSIZE, "sending to rtnetlink"};
  }
}

NlError RtNetlink::Request(NlMessage& request, const MessageHandler& on_reply) {
  request.header()->nlmsg_flags |= NLM_F_ACK;
  NlError sent = Send(request);
  if (!sent.ok()) return sent;
  bool interrupted = false;
  return ReadAnswer(request.header()->nlmsg_seq, on_reply, &interrupted);
}

NlError RtNetlink::Dump(NlMessage& request, const MessageHandler& on_message,
                        const std::function<void()>& on_restart) {
  request.header()->nlmsg_flags |= NLM_F_DUMP;
  for (int attempt = 1;; ++attempt) {
    NlError sent = Send(request);
    if (!sent.ok()) return sent;
    bool interrupted = false;
    NlError result = ReadAnswer(request.header()->nlmsg_seq, on_message, &interrupted);
    if (!result.ok() || !interrupted) return result;
    if (attempt == kMaxDumpAttempts) return {EAGAIN, "dump kept being interrupted"};
    if (on_restart) on_restart();
  }
}

NlError RtNetlink::ReadAnswer(uint32_t seq, const MessageHandler& on_message, bool* interrupted) {
  std::vector<char> buf(kReceiveBuffer);
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) left = std::chrono::milliseconds(0);
    pollfd pfd{fd_, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return {errno, "waiting for rtnetlink"};
    }
    if (ready == 0) {
      return {ETIMEDOUT,
              "no answer from rtnetlink within " + std::to_string(timeout_.count()) + " ms"};
    }
    sockaddr_nl from{};
    iovec iov{buf.data(), buf.size()};
    msghdr mh{};
    mh.msg_name = &from;
    mh.msg_namelen = sizeof(from);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd_, &mh, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return {errno, "reading rtnetlink"};
    }
    if (mh.msg_flags & MSG_TRUNC) return {EMSGSIZE, "rtnetlink message larger than buffer"};
    if (from.nl_pid != 0) continue;  // not from the kernel
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(nlh, len);
         nlh = NLMSG_NEXT(nlh, len)) {
      if (nlh->nlmsg_seq != seq) continue;  // a late answer to an earlier request
      if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) *interrupted = true;
      if (nlh->nlmsg_type == NLMSG_ERROR) return ParseError(*nlh);
      if (nlh->nlmsg_type == NLMSG_DONE) {
        // A dump that failed part way ends with its errno here.
        int err = 0;
        if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          std::memcpy(&err, NLMSG_DATA(nlh), sizeof(err));
        }
        return {err < 0 ? -err : 0, ""};
      }
      if (nlh->nlmsg_type == NLMSG_NOOP) continue;
      if (on_message) on_message(*nlh);
    }
  }
}

NlError GetLinkByName(RtNetlink& nl, const std::string& name, LinkEntry* out) {
  NlMessage request(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  request.AppendBody(ifi);
  request.AddStringAttr(IFLA_IFNAME, name);
  bool found = false;
  NlError result = nl.Request(request, [&](const nlmsghdr& nlh) {
    if (!found && ParseLink(nlh, out)) found = true;
  });
  if (result.ok() && !found) return {ENODEV, ""};
  return result;
}

NlError DumpLinks(RtNetlink& nl, std::vector<LinkEntry>* out) {
  NlMessage request(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  request.AppendBody(ifi);
  out->clear();
  return nl.Dump(
      request,
      [&](const nlmsghdr& nlh) {
        LinkEntry link;
        if (ParseLink(nlh, &link)) out->push_back(std::move(link));
      },
      [&] { out->clear(); });
}

NlError DumpAddresses(RtNetlink& nl, int family, std::vector<AddrEntry>* out) {
  NlMessage request(RTM_GETADDR, 0);
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(family);
  request.AppendBody(ifa);
  out->clear();
  return nl.Dump(
      request,
      [&](const nlmsghdr& nlh) {
        AddrEntry entry;
        if (ParseAddr(nlh, family, &entry)) out->push_back(entry);
      },
      [&] { out->clear(); });
}

NlError ChangeAddress(RtNetlink& nl, bool add, int ifindex, const IpAddress& address,
                      int prefix_len) {
  // EXCL: an address already there is reported (EEXIST), not silently
  // replaced with our flags; the caller treats it as success.
  NlMessage request(add ? RTM_NEWADDR : RTM_DELADDR, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(address.family);
  ifa.ifa_prefixlen = static_cast<uint8_t>(prefix_len);
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  if (address.is_v4() && address.bytes[0] == 127) ifa.ifa_scope = RT_SCOPE_HOST;
  uint32_t flags = 0;
  // A VIP is taken over from a failed node: it must serve at once, not sit
  // tentative for a second of duplicate address detection.
  if (add && !address.is_v4()) flags |= IFA_F_NODAD;
  ifa.ifa_flags = static_cast<uint8_t>(flags);
  request.AppendBody(ifa);
  // Like iproute2: IFA_LOCAL is our address, IFA_ADDRESS the same (no peer).
  // On delete both make the kernel match exactly this address and prefix.
  request.AddAttr(IFA_LOCAL, address.bytes.data(), address.size());
  request.AddAttr(IFA_ADDRESS, address.bytes.data(), address.size());
  if (flags != 0) request.AddAttr(IFA_FLAGS, &flags, sizeof(flags));
  return nl.Request(request, nullptr);
}

}  // namespace hakit::vip
