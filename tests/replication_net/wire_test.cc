// The replication wire codec: round trips of every frame type, the header
// checks, and a decoder fuzz over random and mutated frames, both whole and
// cut into random chunks through FrameReader.
#include "hakit/replication/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "hakit/replication/transport.h"
#include "test_tree.h"

namespace hakit::replication {
namespace {

using sdk::Status;
using testing::MakeWrite;

std::span<const std::uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string Encode(const Message& m) {
  std::string out;
  Status s = EncodeFrame(m, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

Operation FullOp() {
  Operation op;
  op.kind = OpKind::kSetXattr;
  op.path = "dir/sub/file.txt";
  op.path2 = "";
  op.offset = 0x0102030405060708ull;
  op.length = 77;
  op.mode = 0100644;
  op.flags = 3;
  op.uid = 1000;
  op.gid = -1;
  op.atime = {1700000000, 123456789};
  op.mtime = {0, UTIME_NOW};
  op.name = "user.test";
  op.data = std::string("\0binary\xff value", 14);
  return op;
}

void ExpectSameOp(const Operation& a, const Operation& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.path2, b.path2);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.atime.tv_sec, b.atime.tv_sec);
  EXPECT_EQ(a.atime.tv_nsec, b.atime.tv_nsec);
  EXPECT_EQ(a.mtime.tv_sec, b.mtime.tv_sec);
  EXPECT_EQ(a.mtime.tv_nsec, b.mtime.tv_nsec);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.data, b.data);
}

TEST(Wire, HeaderLayoutIsFrozen) {
  std::string f = Encode(Ack{3, 2, 1});
  ASSERT_EQ(f.size(), kHeaderSize + 24);
  EXPECT_EQ(f.substr(0, 4), "HKRP");
  EXPECT_EQ(static_cast<std::uint8_t>(f[4]), 0);
  EXPECT_EQ(static_cast<std::uint8_t>(f[5]), kProtocolVersion);
  EXPECT_EQ(static_cast<std::uint8_t>(f[6]), static_cast<std::uint8_t>(FrameType::kAck));
  EXPECT_EQ(static_cast<std::uint8_t>(f[10]), 24);
}

TEST(Wire, EveryMessageRoundTrips) {
  Hello hello;
  hello.module = "postgres";
  hello.node = "node1";
  hello.config_hash.fill(0xab);
  hello.generation = 42;
  hello.consistent = false;
  hello.first_sequence = 1001;
  HelloAck hello_ack{kProtocolVersion, "node2", 41, true, Role::kSecondary};
  std::vector<Message> messages = {
      hello,          hello_ack,    Refuse{RefuseCode::kConfig, "configuration differs"},
      Ack{10, 9, 4},  Ping{123, 7}, Pong{456, 8},
      Bye{"stopping"}};
  for (const Message& m : messages) {
    std::string f = Encode(m);
    auto back = DecodeFrame(Bytes(f));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->index(), m.index());
    std::visit(
        [&](const auto& original) {
          using T = std::decay_t<decltype(original)>;
          if constexpr (!std::is_same_v<T, OpFrame>) {
            EXPECT_TRUE(std::get<T>(*back) == original);
          }
        },
        m);
  }
}

TEST(Wire, OpCarriesEveryFieldWithDataLast) {
  OpFrame f{987654321, 3, FullOp()};
  std::string bytes = Encode(f);
  // Data is the frame's tail, so that the sender can writev it from the
  // operation itself.
  ASSERT_GE(bytes.size(), f.op.data.size());
  EXPECT_EQ(bytes.substr(bytes.size() - f.op.data.size()), f.op.data);
  auto back = DecodeFrame(Bytes(bytes));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  const auto& op = std::get<OpFrame>(*back);
  EXPECT_EQ(op.sequence, 987654321u);
  EXPECT_EQ(op.dir_index, 3);
  ExpectSameOp(op.op, f.op);
}

TEST(Wire, PrefixPlusDataEqualsWholeFrameAndSequenceStamps) {
  Operation op = MakeWrite("a/b", 4096, std::string(1000, 'x'));
  std::string whole = Encode(OpFrame{77, 0, op});
  std::string prefix;
  ASSERT_TRUE(EncodeOpPrefix(0, 0, op, &prefix).ok());
  StampSequence(77, prefix.data());
  EXPECT_EQ(prefix + op.data, whole);
}

TEST(Wire, OpPrefixDecodesWhatTheWholeFrameDecodes) {
  OpFrame f{5, 2, FullOp()};
  f.op.data = std::string(300000, 'd');
  std::string bytes = Encode(f);
  auto header = DecodeHeader(Bytes(bytes));
  ASSERT_TRUE(header.ok());
  auto payload = Bytes(bytes).subspan(kHeaderSize);
  std::size_t offset = 0;
  // Too little of the payload to be sure every field is there.
  EXPECT_FALSE(DecodeOpPrefix(*header, payload.first(20), &offset).ok());
  auto prefix = DecodeOpPrefix(*header, payload.first(kMaxOpPrefix), &offset);
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  EXPECT_EQ(header->length - offset, f.op.data.size());
  EXPECT_TRUE(prefix->op.data.empty());
  prefix->op.data = f.op.data;
  ExpectSameOp(prefix->op, f.op);
  EXPECT_EQ(prefix->sequence, 5u);
  EXPECT_EQ(prefix->dir_index, 2);
}

TEST(Wire, VersionOutsideWindowNamesBoth) {
  std::string f = Encode(Ping{1, 2});
  f[4] = 0;
  f[5] = 9;
  auto header = DecodeHeader(Bytes(f));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->version, 9);
  Status v = CheckVersion(header->version);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.message().find("version 9"), std::string::npos) << v.message();
  EXPECT_NE(v.message().find("2 to 2"), std::string::npos) << v.message();
  EXPECT_FALSE(DecodeFrame(Bytes(f)).ok());
}

TEST(Wire, ManifestChunkRoundTripsAndIsBounded) {
  ManifestChunk m{3, true, "", std::string(1000, 'd')};
  auto back = DecodeFrame(Bytes(Encode(m)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(std::get<ManifestChunk>(*back), m);
  ManifestChunk failed{0, true, "stat x: Permission denied", ""};
  back = DecodeFrame(Bytes(Encode(failed)));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<ManifestChunk>(*back).error, failed.error);
  std::string out;
  ManifestChunk big{0, false, "", std::string(kMaxManifestData + 1, 'x')};
  EXPECT_FALSE(EncodeFrame(big, &out).ok());
  EXPECT_TRUE(out.empty());
  // A last flag other than 0/1 is refused.
  std::string f = Encode(m);
  f[kHeaderSize + 1] = 7;
  EXPECT_FALSE(DecodeFrame(Bytes(f)).ok());
}

TEST(Wire, HeaderRefusesBadMagicUnknownTypeAndOversizedLength) {
  std::string f = Encode(Ping{1, 2});
  std::string bad = f;
  bad[0] = 'X';
  EXPECT_NE(DecodeHeader(Bytes(bad)).status().message().find("magic"), std::string::npos);
  bad = f;
  bad[6] = 99;
  EXPECT_NE(DecodeHeader(Bytes(bad)).status().message().find("type 99"), std::string::npos);
  bad = f;
  bad[7] = 0x7f;  // a PING announcing ~2 GiB
  EXPECT_NE(DecodeHeader(Bytes(bad)).status().message().find("at most"), std::string::npos);
  EXPECT_FALSE(DecodeHeader(Bytes(f.substr(0, 5))).ok());
}

TEST(Wire, StrictPayloadChecks) {
  // Trailing bytes.
  std::string f = Encode(Ack{3, 2, 1});
  f.push_back('\0');
  f[10] = 25;
  EXPECT_NE(DecodeFrame(Bytes(f)).status().message().find("trailing"), std::string::npos);
  // Acks out of order (applied beyond received).
  EXPECT_FALSE(DecodeFrame(Bytes(Encode(Ack{1, 2, 0}))).ok());
  // An absolute path, a ".." component.
  OpFrame op{1, 0, MakeWrite("x", 0, "y")};
  std::string good = Encode(op);
  EXPECT_TRUE(DecodeFrame(Bytes(good)).ok());
  std::string absolute = good;
  absolute[kHeaderSize + 8 + 1 + 1 + 2] = '/';
  EXPECT_FALSE(DecodeFrame(Bytes(absolute)).ok());
  std::string out;
  EXPECT_FALSE(EncodeFrame(OpFrame{1, 0, MakeWrite("../etc/passwd", 0, "y")}, &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(EncodeFrame(OpFrame{1, 0, MakeWrite("a/../../b", 0, "y")}, &out).ok());
  EXPECT_TRUE(EncodeFrame(OpFrame{1, 0, MakeWrite("a/..b/c..", 0, "y")}, &out).ok());
  // Data length inconsistent with the payload.
  std::string cut = good;
  cut.pop_back();
  cut[10] = static_cast<char>(cut[10] - 1);
  EXPECT_FALSE(DecodeFrame(Bytes(cut)).ok());
  // Sequence 0 and unknown kinds.
  EXPECT_FALSE(DecodeFrame(Bytes(Encode(OpFrame{0, 0, MakeWrite("x", 0, "y")}))).ok());
  std::string kind = good;
  kind[kHeaderSize + 9] = 42;
  EXPECT_NE(DecodeFrame(Bytes(kind)).status().message().find("kind 42"), std::string::npos);
}

TEST(Wire, EncoderRefusesWhatTheWireCannotCarry) {
  std::string out;
  Hello h;
  h.module = std::string(256, 'm');
  EXPECT_FALSE(EncodeFrame(h, &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(EncodeFrame(OpFrame{1, 0, MakeWrite(std::string(5000, 'p'), 0, "")}, &out).ok());
  EXPECT_FALSE(
      EncodeFrame(OpFrame{1, 0, MakeWrite("f", 0, std::string(kMaxOpData + 1, 'd'))}, &out).ok());
  EXPECT_TRUE(
      EncodeFrame(OpFrame{1, 0, MakeWrite("f", 0, std::string(kMaxOpData, 'd'))}, &out).ok());
  EXPECT_TRUE(DecodeFrame(Bytes(out)).ok());
}

TEST(Wire, FrameReaderCutsAStreamAtAnyBoundary) {
  std::string stream;
  std::vector<std::string> frames;
  for (int i = 1; i <= 50; ++i) {
    frames.push_back(
        Encode(OpFrame{static_cast<std::uint64_t>(i), 0,
                       MakeWrite("f" + std::to_string(i), i, std::string(i * 997, 'a' + i % 26))}));
    stream += frames.back();
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    FrameReader reader(64);
    std::size_t at = 0, got = 0;
    while (at < stream.size()) {
      auto space = reader.PrepareRead(1);
      std::size_t n = std::min<std::size_t>({space.size(), stream.size() - at, 1 + rng() % 5000});
      std::memcpy(space.data(), stream.data() + at, n);
      reader.CommitRead(n);
      at += n;
      for (;;) {
        auto next = reader.Next();
        ASSERT_TRUE(next.ok());
        if (!*next) break;
        auto m = DecodePayload((*next)->header, (*next)->payload);
        ASSERT_TRUE(m.ok()) << m.status().ToString();
        EXPECT_EQ(std::get<OpFrame>(*m).sequence, got + 1);
        ++got;
      }
    }
    EXPECT_EQ(got, frames.size());
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

// 10^5 inputs: random bytes, random payloads behind valid headers, and valid
// frames mutated (bit flips, byte overwrites, truncation, extension, length
// field edits). Nothing may crash or read out of bounds (run under ASan to
// see the latter); valid frames must still decode.
TEST(Wire, DecoderFuzz) {
  std::mt19937_64 rng(20261126);
  std::vector<std::string> seeds;
  Hello hello;
  hello.module = "m";
  seeds.push_back(Encode(hello));
  seeds.push_back(Encode(HelloAck{}));
  seeds.push_back(Encode(Refuse{RefuseCode::kModule, "no"}));
  seeds.push_back(Encode(OpFrame{5, 1, FullOp()}));
  seeds.push_back(Encode(OpFrame{6, 0, MakeWrite("d/f", 12, std::string(300, 'z'))}));
  Operation rename;
  rename.kind = OpKind::kRename;
  rename.path = "a";
  rename.path2 = "b/c";
  seeds.push_back(Encode(OpFrame{7, 0, rename}));
  seeds.push_back(Encode(Ack{9, 8, 7}));
  seeds.push_back(Encode(Ping{1, 1}));
  seeds.push_back(Encode(Pong{1, 1}));
  seeds.push_back(Encode(Bye{"bye"}));

  std::size_t decoded = 0, refused = 0;
  auto feed = [&](const std::string& f) {
    auto r = DecodeFrame(Bytes(f));
    (r.ok() ? decoded : refused)++;
    // The same bytes as a stream in random chunks.
    FrameReader reader(32);
    std::size_t at = 0;
    while (at < f.size()) {
      auto space = reader.PrepareRead(1);
      std::size_t n = std::min<std::size_t>({space.size(), f.size() - at, 1 + rng() % 64});
      std::memcpy(space.data(), f.data() + at, n);
      reader.CommitRead(n);
      at += n;
      auto next = reader.Next();
      if (!next.ok()) break;
      if (*next) (void)DecodePayload((*next)->header, (*next)->payload);
    }
  };
  const int kRounds = 100000;
  for (int i = 0; i < kRounds; ++i) {
    std::string f;
    switch (i % 4) {
      case 0: {  // random bytes, sometimes with our magic in front
        std::size_t n = rng() % 200;
        if (rng() % 2) f = "HKRP";
        while (f.size() < n) f.push_back(static_cast<char>(rng()));
        break;
      }
      case 1: {  // valid header, random type, length and payload
        f = "HKRP";
        f.push_back(0);
        f.push_back(static_cast<char>(1 + rng() % 2));  // versions 1 and 2
        f.push_back(static_cast<char>(rng() % 10));
        std::size_t n = rng() % 300;
        std::uint32_t announced =
            rng() % 3 ? static_cast<std::uint32_t>(n) : static_cast<std::uint32_t>(rng());
        for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<char>(announced >> s));
        for (std::size_t k = 0; k < n; ++k) f.push_back(static_cast<char>(rng()));
        break;
      }
      default: {  // a mutated valid frame
        f = seeds[rng() % seeds.size()];
        int edits = 1 + rng() % 4;
        for (int e = 0; e < edits; ++e) {
          switch (rng() % 5) {
            case 0:
              f[rng() % f.size()] ^= static_cast<char>(1 << (rng() % 8));
              break;
            case 1:
              f[rng() % f.size()] = static_cast<char>(rng());
              break;
            case 2:
              f.resize(rng() % (f.size() + 1));
              break;
            case 3:
              f.append(rng() % 16, static_cast<char>(rng()));
              break;
            case 4:
              if (f.size() >= kHeaderSize) f[7 + rng() % 4] = static_cast<char>(rng());
              break;
          }
          if (f.empty()) f = "H";
        }
        break;
      }
    }
    feed(f);
  }
  EXPECT_EQ(decoded + refused, static_cast<std::size_t>(kRounds));
  EXPECT_GT(refused, static_cast<std::size_t>(kRounds / 2));
  // Unmutated seeds still decode after all that.
  for (const auto& s : seeds) EXPECT_TRUE(DecodeFrame(Bytes(s)).ok());
}

}  // namespace
}  // namespace hakit::replication
