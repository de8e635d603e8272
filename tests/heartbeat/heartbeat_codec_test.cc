// The heartbeat wire format: round trip, every way a frame can be refused,
// and the replay guard. Suite names start with "heartbeat" so that
// `ctest -R heartbeat` selects them.
#include "hakit/cluster/heartbeat_codec.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <set>

namespace hakit::cluster {
namespace {

ClusterKey KeyOf(std::uint8_t fill) { return ClusterKey(std::vector<std::uint8_t>(32, fill)); }

Heartbeat Sample() {
  Heartbeat hb;
  hb.boot_id = 0x0102030405060708ull;
  hb.sequence = 42;
  hb.sender = "node1";
  hb.module = "mirror";
  hb.state = State::kPrim;
  hb.busy = true;
  hb.handing_over = false;
  hb.was_last_prim = true;
  hb.data = DataStatus::kUpToDate;
  for (std::size_t i = 0; i < hb.config_hash.size(); ++i)
    hb.config_hash[i] = static_cast<std::uint8_t>(i * 7);
  hb.generation = 0xfeedfacecafebeefull;
  hb.resources = {{"fs", 1}, {"vip", 2}};
  return hb;
}

std::vector<std::uint8_t> MustEncode(const Heartbeat& hb, const ClusterKey& key) {
  auto r = Encode(hb, key);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::vector<std::uint8_t>{};
}

// Recomputes the trailing MAC after a test edited the body, so that the
// edit itself (not the MAC) is what Decode sees.
void Reseal(std::vector<std::uint8_t>* frame, const ClusterKey& key) {
  const std::size_t body = frame->size() - kMacSize;
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.bytes().data(), static_cast<int>(key.bytes().size()), frame->data(), body,
       frame->data() + body, &len);
}

DecodeError DecodeWhy(const std::vector<std::uint8_t>& frame, const ClusterKey& key,
                      std::string* message = nullptr) {
  DecodeError why = DecodeError::kNone;
  auto r = Decode(frame, key, &why);
  if (message) *message = r.status().message();
  if (r.ok()) {
    EXPECT_EQ(why, DecodeError::kNone);
  }
  return why;
}

TEST(heartbeat_codec, RoundTripKeepsEveryField) {
  auto key = KeyOf(1);
  Heartbeat hb = Sample();
  auto frame = MustEncode(hb, key);
  ASSERT_LE(frame.size(), kMaxFrameSize);
  DecodeError why = DecodeError::kMalformed;
  auto back = Decode(frame, key, &why);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(why, DecodeError::kNone);
  EXPECT_EQ(*back, hb);
  EXPECT_EQ(back->version, kProtocolVersion);
}

TEST(heartbeat_codec, RoundTripEveryStateAndDataStatus) {
  auto key = KeyOf(1);
  for (State s : {State::kStop, State::kWait, State::kAlone, State::kPrim, State::kSecond}) {
    for (DataStatus d : {DataStatus::kUpToDate, DataStatus::kStale, DataStatus::kUnknown}) {
      Heartbeat hb = Sample();
      hb.state = s;
      hb.data = d;
      hb.busy = s == State::kWait;
      hb.handing_over = d == DataStatus::kStale;
      hb.module.clear();  // node-level frame
      hb.resources.clear();
      auto back = Decode(MustEncode(hb, key), key);
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(*back, hb);
    }
  }
}

TEST(heartbeat_codec, FrameStartsWithMagicVersionAndKeyId) {
  auto key = KeyOf(1);
  auto frame = MustEncode(Sample(), key);
  ASSERT_GE(frame.size(), 14u);
  EXPECT_EQ(std::string(frame.begin(), frame.begin() + 4), "HKHB");
  EXPECT_EQ(frame[4], 0);
  EXPECT_EQ(frame[5], kProtocolVersion);
  EXPECT_TRUE(std::equal(key.id().begin(), key.id().end(), frame.begin() + 6));
}

TEST(heartbeat_codec, TruncatedAtEveryLength) {
  auto key = KeyOf(1);
  auto frame = MustEncode(Sample(), key);
  for (std::size_t len = 0; len < frame.size(); ++len) {
    std::vector<std::uint8_t> cut(frame.begin(), frame.begin() + len);
    std::string msg;
    EXPECT_EQ(DecodeWhy(cut, key, &msg), DecodeError::kTruncated) << "length " << len;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }
}

TEST(heartbeat_codec, TrailingBytesAreMalformed) {
  auto key = KeyOf(1);
  auto frame = MustEncode(Sample(), key);
  frame.push_back(0);
  EXPECT_EQ(DecodeWhy(frame, key), DecodeError::kMalformed);
}

TEST(heartbeat_codec, FlippedBitInEachRegion) {
  auto key = KeyOf(1);
  const Heartbeat hb = Sample();
  const auto frame = MustEncode(hb, key);
  // Length bytes: a flip there shifts the parse, so several outcomes are
  // right as long as the frame is refused. Layout per heartbeat_codec.h.
  std::set<std::size_t> length_bytes;
  std::size_t off = 30;
  length_bytes.insert(off);  // sender length
  off += 1 + hb.sender.size();
  length_bytes.insert(off);                  // module length
  // state, flags, data, hash, generation, peer generation seen
  off += 1 + hb.module.size() + 3 + 32 + 8 + 8;
  length_bytes.insert(off);                  // resource count
  off += 1;
  for (const auto& r : hb.resources) {
    length_bytes.insert(off);  // resource name length
    off += 1 + r.name.size() + 1;
  }
  ASSERT_EQ(off + kMacSize, frame.size()) << "test's idea of the layout is stale";

  for (std::size_t i = 0; i < frame.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = frame;
      bad[i] ^= static_cast<std::uint8_t>(1 << bit);
      std::string msg;
      DecodeError why = DecodeWhy(bad, key, &msg);
      SCOPED_TRACE("byte " + std::to_string(i) + " bit " + std::to_string(bit) + ": " + msg);
      if (i < 4) {
        EXPECT_EQ(why, DecodeError::kBadMagic);
      } else if (i < 6) {
        EXPECT_EQ(why, DecodeError::kUnsupportedVersion);
      } else if (i < 14) {
        EXPECT_EQ(why, DecodeError::kUnknownKey);
      } else if (length_bytes.count(i)) {
        EXPECT_TRUE(why == DecodeError::kTruncated || why == DecodeError::kMalformed ||
                    why == DecodeError::kBadMac);
      } else {
        // Any other byte, the MAC included: only the MAC can tell.
        EXPECT_EQ(why, DecodeError::kBadMac);
        EXPECT_NE(msg.find("authentication failed"), std::string::npos);
      }
    }
  }
}

TEST(heartbeat_codec, WrongKeyIsToldApartFromCorruption) {
  auto frame = MustEncode(Sample(), KeyOf(1));
  std::string msg;
  EXPECT_EQ(DecodeWhy(frame, KeyOf(2), &msg), DecodeError::kUnknownKey);
  EXPECT_NE(msg.find("sender uses another cluster key"), std::string::npos) << msg;
  EXPECT_NE(msg.find(KeyOf(1).IdHex()), std::string::npos) << msg;
  EXPECT_NE(msg.find(KeyOf(2).IdHex()), std::string::npos) << msg;
}

TEST(heartbeat_codec, BadMacWithSameKeyIdIsAuthenticationFailure) {
  auto key = KeyOf(1);
  auto frame = MustEncode(Sample(), key);
  frame.back() ^= 0x80;
  std::string msg;
  EXPECT_EQ(DecodeWhy(frame, key, &msg), DecodeError::kBadMac);
  EXPECT_NE(msg.find("authentication failed"), std::string::npos) << msg;
}

TEST(heartbeat_codec, OtherVersionIsRefusedNamingBothVersions) {
  auto key = KeyOf(1);
  for (std::uint16_t version : {0, 2, 0x0100, 0xffff}) {
    auto frame = MustEncode(Sample(), key);
    frame[4] = static_cast<std::uint8_t>(version >> 8);
    frame[5] = static_cast<std::uint8_t>(version);
    Reseal(&frame, key);  // a well-formed frame of another version, not a corrupt one
    std::string msg;
    DecodeError why = DecodeError::kNone;
    auto r = Decode(frame, key, &why);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(why, DecodeError::kUnsupportedVersion);
    EXPECT_EQ(r.status().code(), sdk::Status::Code::kUnsupported);
    msg = r.status().message();
    EXPECT_NE(msg.find("version " + std::to_string(version)), std::string::npos) << msg;
    EXPECT_NE(msg.find("supports 1..1"), std::string::npos) << msg;
  }
}

TEST(heartbeat_codec, BadMagicIsNotAHeartbeat) {
  auto key = KeyOf(1);
  auto frame = MustEncode(Sample(), key);
  frame[0] = 'X';
  EXPECT_EQ(DecodeWhy(frame, key), DecodeError::kBadMagic);
  std::vector<std::uint8_t> junk = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'};
  EXPECT_EQ(DecodeWhy(junk, key), DecodeError::kBadMagic);
}

TEST(heartbeat_codec, AuthenticatedNonsenseIsMalformed) {
  auto key = KeyOf(1);
  Heartbeat hb = Sample();
  const std::size_t state_at = 30 + 1 + hb.sender.size() + 1 + hb.module.size();
  struct Case {
    std::size_t offset;
    std::uint8_t value;
    const char* expect;
  } cases[] = {
      {state_at, 5, "unknown state 5"},
      {state_at + 1, 0x20, "reserved flag"},
      {state_at + 2, 4, "unknown data status 4"},
  };
  for (const auto& c : cases) {
    auto frame = MustEncode(hb, key);
    frame[c.offset] = c.value;
    Reseal(&frame, key);
    std::string msg;
    EXPECT_EQ(DecodeWhy(frame, key, &msg), DecodeError::kMalformed) << c.expect;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
}

TEST(heartbeat_codec, EncodeRefusesWhatCannotBeSent) {
  auto key = KeyOf(1);
  Heartbeat hb = Sample();
  hb.sender.clear();
  EXPECT_FALSE(Encode(hb, key).ok());
  hb = Sample();
  hb.module = std::string(256, 'm');
  EXPECT_FALSE(Encode(hb, key).ok());
  hb = Sample();
  hb.resources.assign(20, ResourceState{std::string(100, 'r'), 1});  // > kMaxFrameSize
  auto r = Encode(hb, key);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("1400"), std::string::npos) << r.status().message();
}

TEST(heartbeat_codec, ConfigHashIsSha256) {
  std::string abc = "abc";
  auto h = Sha256(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()));
  EXPECT_EQ(HexEncode(h), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(heartbeat_replay, RefusesOldAndDuplicateSequences) {
  ReplayGuard guard;
  Heartbeat hb = Sample();
  hb.sequence = 10;
  EXPECT_TRUE(guard.Accept(hb).ok());
  auto again = guard.Accept(hb);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("sequence 10, last accepted 10"), std::string::npos)
      << again.message();
  hb.sequence = 9;
  EXPECT_FALSE(guard.Accept(hb).ok());
  hb.sequence = 11;
  EXPECT_TRUE(guard.Accept(hb).ok());
  hb.sequence = 100;  // gaps are fine (lost frames, other modules)
  EXPECT_TRUE(guard.Accept(hb).ok());
}

TEST(heartbeat_replay, SequenceZeroIsNeverValid) {
  ReplayGuard guard;
  Heartbeat hb = Sample();
  hb.sequence = 0;
  EXPECT_FALSE(guard.Accept(hb).ok());
}

TEST(heartbeat_replay, NewBootIdResetsSequenceAndRetiresTheOldRun) {
  ReplayGuard guard;
  Heartbeat hb = Sample();
  hb.boot_id = 111;
  hb.sequence = 5000;
  EXPECT_TRUE(guard.Accept(hb).ok());
  // The sender restarted: new boot id, sequence from 1.
  Heartbeat restarted = hb;
  restarted.boot_id = 222;
  restarted.sequence = 1;
  EXPECT_TRUE(guard.Accept(restarted).ok());
  restarted.sequence = 2;
  EXPECT_TRUE(guard.Accept(restarted).ok());
  // A frame recorded from the previous run cannot be replayed now.
  hb.sequence = 5001;
  auto old = guard.Accept(hb);
  EXPECT_FALSE(old.ok());
  EXPECT_NE(old.message().find("earlier run"), std::string::npos) << old.message();
}

TEST(heartbeat_replay, EachNetworkAndModuleHasItsOwnRecord) {
  ReplayGuard guard(2);
  Heartbeat hb = Sample();
  hb.sequence = 7;
  // The same frame arrives on both networks: each copy is fresh once.
  EXPECT_TRUE(guard.Accept(hb, 0).ok());
  EXPECT_TRUE(guard.Accept(hb, 1).ok());
  EXPECT_FALSE(guard.Accept(hb, 1).ok());
  Heartbeat other = hb;
  other.module = "other";
  EXPECT_TRUE(guard.Accept(other, 0).ok());
  guard.Forget(hb.sender);
  EXPECT_TRUE(guard.Accept(hb, 0).ok());
}

}  // namespace
}  // namespace hakit::cluster
