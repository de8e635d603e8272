// A minimal rtnetlink (NETLINK_ROUTE) client: enough to list links and
// addresses and to add or delete one address, reading the kernel's ack for
// every change. Internal to hakit_vip; Linux only.
//
// One RtNetlink is one socket, used by one thread at a time. It belongs to
// the network namespace that was current when it was opened.
#pragma once

#include <linux/netlink.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hakit/vip/vip_manager.h"
#include "ip_address.h"

namespace hakit::vip {

// The outcome of one request: 0 or a positive errno, plus the kernel's own
// explanation when it gives one (extended ack, e.g. "Invalid prefix length").
struct NlError {
  int code = 0;
  std::string detail;

  bool ok() const { return code == 0; }
  // "Operation not permitted" or "Invalid argument (kernel: ...)".
  std::string ToString() const;
};

// A netlink request under construction: header, fixed body, attributes.
class NlMessage {
 public:
  NlMessage(uint16_t type, uint16_t flags);

  // Appends the fixed-size family header (ifinfomsg, ifaddrmsg, ...). Call
  // once, before any attribute.
  template <typename T>
  void AppendBody(const T& body) {
    AppendAligned(&body, sizeof(body));
  }
  void AddAttr(uint16_t type, const void* data, std::size_t size);
  void AddStringAttr(uint16_t type, const std::string& value);

  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  const char* data() const { return buf_.data(); }
  std::size_t size() const { return buf_.size(); }

 private:
  void AppendAligned(const void* data, std::size_t size);
  std::vector<char> buf_;
};

class RtNetlink {
 public:
  using MessageHandler = std::function<void(const nlmsghdr& message)>;

  // Opens a socket with extended acks on. `timeout` bounds the wait for the
  // kernel's whole answer to each request.
  static Result<std::unique_ptr<RtNetlink>> Open(std::chrono::milliseconds timeout);
  ~RtNetlink();
  RtNetlink(const RtNetlink&) = delete;
  RtNetlink& operator=(const RtNetlink&) = delete;

  // Sends a request with NLM_F_ACK added and waits for its ack. Replies that
  // come before the ack (the answer to a GET) go to on_reply, which may be
  // empty.
  NlError Request(NlMessage& request, const MessageHandler& on_reply);

  // Sends a dump request (NLM_F_DUMP added) and passes each message to
  // on_message until the end of the dump. If the kernel says the dump was
  // interrupted by a concurrent change, `on_restart` is called and the dump
  // is repeated (a few times at most), so that callers collect a consistent
  // list.
  NlError Dump(NlMessage& request, const MessageHandler& on_message,
               const std::function<void()>& on_restart);

 private:
  RtNetlink(int fd, std::chrono::milliseconds timeout) : fd_(fd), timeout_(timeout) {}
  NlError Send(NlMessage& request);
  // Reads until the ack (Request) or NLMSG_DONE (Dump) of sequence `seq`.
  NlError ReadAnswer(uint32_t seq, const MessageHandler& on_message, bool* interrupted);

  int fd_;
  std::chrono::milliseconds timeout_;
  uint32_t next_seq_ = 1;
};

// One interface, from RTM_NEWLINK.
struct LinkEntry {
  LinkState state;
  unsigned int flags = 0;   // IFF_*
  unsigned short type = 0;  // ARPHRD_*
  std::vector<uint8_t> hwaddr;
};

// One address, from RTM_NEWADDR.
struct AddrEntry {
  int ifindex = 0;
  IpAddress address;
  int prefix_len = 0;
  uint32_t flags = 0;  // IFA_F_*
};

// RTM_GETLINK by name. ENODEV when there is no such interface.
NlError GetLinkByName(RtNetlink& nl, const std::string& name, LinkEntry* out);
// Every interface.
NlError DumpLinks(RtNetlink& nl, std::vector<LinkEntry>* out);
// Every address of one family (AF_INET or AF_INET6).
NlError DumpAddresses(RtNetlink& nl, int family, std::vector<AddrEntry>* out);
// RTM_NEWADDR (create, exclusive) or RTM_DELADDR of one address. IPv6
// addresses are added with IFA_F_NODAD.
NlError ChangeAddress(RtNetlink& nl, bool add, int ifindex, const IpAddress& address,
                      int prefix_len);

}  // namespace hakit::vip
