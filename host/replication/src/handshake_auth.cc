#include "hakit/replication/handshake_auth.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <random>
#include <string>

namespace hakit::replication {

Nonce RandomNonce() {
  Nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
    // OpenSSL's generator failed (it practically never does): the kernel's.
    std::random_device rd;
    for (auto& b : n) b = static_cast<std::uint8_t>(rd());
  }
  return n;
}

Proof HandshakeProof(std::span<const std::uint8_t> key, std::string_view label,
                     const Nonce& first, const Nonce& second, std::string_view module,
                     std::string_view node) {
  std::string msg(label);
  msg.append(reinterpret_cast<const char*>(first.data()), first.size());
  msg.append(reinterpret_cast<const char*>(second.data()), second.size());
  for (std::string_view s : {module, node}) {
    msg.push_back(static_cast<char>(s.size() >> 8));
    msg.push_back(static_cast<char>(s.size()));
    msg.append(s);
  }
  Proof p{};
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), p.data(), &n);
  return p;
}

bool SameProof(const Proof& a, const Proof& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace hakit::replication
