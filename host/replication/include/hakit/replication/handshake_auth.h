// Mutual authentication of the replication handshake with the cluster key
// (ROOT/conf/cluster.key, the heartbeats' key), so that only a node of this
// cluster can write into a secondary's replicated dirs, and a primary only
// replicates to a node of its cluster.
//
//   HELLO      carries a fresh nonce from the primary (Np);
//   HELLO_ACK  carries a fresh nonce from the secondary (Ns) and
//              HMAC-SHA256(key, "hakit-repl-ack" Np Ns module secondary-node);
//   AUTH       the primary's first frame after HELLO_ACK:
//              HMAC-SHA256(key, "hakit-repl-auth" Ns Np module primary-node).
//
// The secondary accepts no operation (and replaces no current session)
// before AUTH checks out; each side's proof covers the other's fresh nonce,
// so a recorded handshake cannot be replayed. The channel is authenticated,
// not encrypted.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace hakit::replication {

using Nonce = std::array<std::uint8_t, 32>;
using Proof = std::array<std::uint8_t, 32>;

Nonce RandomNonce();

// HMAC-SHA256(key, label || first || second || module || node), the two
// strings length-prefixed.
Proof HandshakeProof(std::span<const std::uint8_t> key, std::string_view label,
                     const Nonce& first, const Nonce& second, std::string_view module,
                     std::string_view node);

// Constant-time comparison.
bool SameProof(const Proof& a, const Proof& b);

}  // namespace hakit::replication
