// Full synchronisation: SyncCursor and SyncGate decisions, the tree
// description, and whole synchronisations of a stale mirror through a real
// FUSE mount, a real ReplicationSender and a real ReplicationReceiver over
// loopback TCP, with writers changing the tree while it is walked. Every
// synchronisation ends with the primary's tree compared with the mirror's,
// byte for byte and metadata for metadata (tree_compare.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fuse_test_util.h"
#include "hakit/replication/interceptor.h"
#include "hakit/replication/manifest.h"
#include "hakit/replication/path_filter.h"
#include "hakit/replication/receiver.h"
#include "hakit/replication/sender.h"
#include "hakit/replication/sync.h"
#include "tree_compare.h"

namespace hakit::replication {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using testing::MountGuard;
using testing::TempDir;

// ------------------------------------------------------------ cursor

TEST(SyncCursor, NothingAndEverything) {
  SyncCursor c;
  c.SetNothing();
  EXPECT_FALSE(c.Covers(""));
  EXPECT_FALSE(c.Covers("a"));
  c.SetEverything();
  EXPECT_TRUE(c.Covers(""));
  EXPECT_TRUE(c.Covers("z/y/x"));
}

TEST(SyncCursor, DepthFirstSortedOrder) {
  SyncCursor c;
  c.Set("b/m", false);  // walking directory b/m, nothing below it yet
  struct Case {
    const char* path;
    bool covered;
  } cases[] = {
      {"", true},        {"a", true},       {"a/zzz", true},  {"b", true},
      {"b/a", true},     {"b/l/q", true},   {"b/m", true},    {"b/m/a", false},
      {"b/n", false},    {"c", false},      {"b/ma", false},  {"ba", false},
      {"b/m0", false},   {"B", true},  // bytewise: 'B' < 'b'
  };
  for (const auto& k : cases) EXPECT_EQ(c.Covers(k.path), k.covered) << k.path;
  c.Set("b/m", true);  // b/m and everything below it done
  EXPECT_TRUE(c.Covers("b/m/a"));
  EXPECT_TRUE(c.Covers("b/m/z/z"));
  EXPECT_FALSE(c.Covers("b/n"));
  EXPECT_TRUE(c.IsOnPath("b"));
  EXPECT_TRUE(c.IsOnPath("b/m"));
  EXPECT_FALSE(c.IsOnPath("b/m/a"));
  EXPECT_FALSE(c.IsOnPath("a"));
}

// ------------------------------------------------------------ gate

Operation Op(OpKind kind, std::string path, std::string path2 = "") {
  Operation op;
  op.kind = kind;
  op.path = std::move(path);
  op.path2 = std::move(path2);
  return op;
}

// The gate against a real sender that is not connected: what it forwards
// counts as submitted there, what it drops counts in dropped().
class GateTest : public ::testing::Test {
 protected:
  GateTest() {
    SenderOptions o;
    o.module = "m";
    o.peer_address = "127.0.0.1";
    o.peer_port = 9;
    sender_ = std::make_unique<ReplicationSender>(o);
    gate_ = std::make_unique<SyncGate>(*sender_, 0);
  }
  std::uint64_t Forwarded() const { return sender_->Stats().ops_submitted; }

  std::unique_ptr<ReplicationSender> sender_;
  std::unique_ptr<SyncGate> gate_;
};

TEST_F(GateTest, DropsBeyondTheCursorAndForwardsBefore) {
  gate_->BeginSync();
  gate_->cursor().Set("d", false);
  EXPECT_EQ(gate_->Submit(Op(OpKind::kWrite, "e")), 0u);
  EXPECT_EQ(gate_->Submit(Op(OpKind::kCreate, "d/x")), 0u);
  EXPECT_EQ(gate_->dropped(), 2u);
  EXPECT_EQ(Forwarded(), 0u);
  gate_->Submit(Op(OpKind::kWrite, "c"));
  gate_->Submit(Op(OpKind::kChmod, "d"));
  gate_->Submit(Op(OpKind::kFsync, ""));
  EXPECT_EQ(Forwarded(), 3u);
  EXPECT_EQ(gate_->dropped(), 2u);
  EXPECT_TRUE(gate_->Wait(0).ok());
  gate_->Pass();
  gate_->Submit(Op(OpKind::kWrite, "zzz"));
  EXPECT_EQ(Forwarded(), 4u);
}

TEST_F(GateTest, RenamesAcrossTheCursor) {
  gate_->BeginSync();
  gate_->cursor().Set("m", true);
  // Both sides walked: forwarded as is.
  gate_->Submit(Op(OpKind::kRename, "a", "b"));
  EXPECT_EQ(Forwarded(), 1u);
  // Out of the walked part: the secondary removes it (the walk meets "x").
  gate_->Submit(Op(OpKind::kRename, "a", "x"));
  EXPECT_EQ(Forwarded(), 2u);
  EXPECT_FALSE(gate_->aborted());
  // Neither side walked: dropped.
  gate_->Submit(Op(OpKind::kRename, "x", "y"));
  EXPECT_EQ(Forwarded(), 2u);
  EXPECT_FALSE(gate_->aborted());
  // Into the walked part: content the secondary lacks, the pass restarts.
  gate_->Submit(Op(OpKind::kRename, "x", "b"));
  EXPECT_TRUE(gate_->aborted());
  EXPECT_EQ(Forwarded(), 2u);
  // Once aborted, everything is dropped until the next pass.
  gate_->Submit(Op(OpKind::kWrite, "a"));
  EXPECT_EQ(Forwarded(), 2u);
  gate_->BeginSync();
  EXPECT_FALSE(gate_->aborted());
}

TEST_F(GateTest, RenamingTheEntryBeingWalkedAborts) {
  gate_->BeginSync();
  gate_->cursor().Set("dir/file", true);
  gate_->Submit(Op(OpKind::kRename, "dir/file", "a"));
  EXPECT_TRUE(gate_->aborted());
  gate_->BeginSync();
  gate_->cursor().Set("dir/file", true);
  gate_->Submit(Op(OpKind::kRename, "dir", "zz"));  // out of the walked part
  EXPECT_FALSE(gate_->aborted());
}

TEST_F(GateTest, LinksAcrossTheCursor) {
  gate_->BeginSync();
  gate_->cursor().Set("m", true);
  gate_->Submit(Op(OpKind::kLink, "a", "b"));
  EXPECT_EQ(Forwarded(), 1u);
  gate_->Submit(Op(OpKind::kLink, "a", "x"));  // the walk meets "x"
  EXPECT_EQ(Forwarded(), 1u);
  EXPECT_FALSE(gate_->aborted());
  gate_->Submit(Op(OpKind::kLink, "x", "b"));
  EXPECT_TRUE(gate_->aborted());
}

TEST_F(GateTest, NotReplicatedPathsStayOut) {
  PathFilter filter;
  ASSERT_TRUE(filter.AddPath("tmp").ok());
  ASSERT_TRUE(filter.AddRegex("\\.log$").ok());
  EXPECT_FALSE(filter.AddRegex("(").ok());
  EXPECT_TRUE(filter.Excluded("tmp"));
  EXPECT_TRUE(filter.Excluded("tmp/a/b"));
  EXPECT_FALSE(filter.Excluded("tmpx"));
  EXPECT_TRUE(filter.Excluded("d/x.log"));
  EXPECT_FALSE(filter.Excluded("d/x.logs"));
  gate_->set_filter(&filter);
  gate_->Pass();
  EXPECT_EQ(gate_->Submit(Op(OpKind::kWrite, "tmp/f")), 0u);
  EXPECT_EQ(gate_->Submit(Op(OpKind::kRename, "tmp/f", "tmp/g")), 0u);
  EXPECT_EQ(Forwarded(), 0u);
  gate_->Submit(Op(OpKind::kWrite, "data"));
  EXPECT_EQ(Forwarded(), 1u);
  // Out of the replicated part: the secondary removes the source.
  gate_->Submit(Op(OpKind::kRename, "data", "tmp/data"));
  EXPECT_EQ(Forwarded(), 2u);
  // Into it, without a directory to read from: counted as not sent.
  gate_->Submit(Op(OpKind::kRename, "tmp/x", "x"));
  EXPECT_EQ(gate_->unsent(), 1u);
  EXPECT_EQ(gate_->dropped(), 0u);
}

// ------------------------------------------------------------ dirty map

TEST(DirtyMap, NotesZonesFilesAndSubtrees) {
  DirtyMap d(65536);
  d.Note(OpKind::kWrite, "f", "", 1000, 10);  // before Reset: not valid, not noted
  EXPECT_FALSE(d.valid());
  d.Reset(7);
  EXPECT_TRUE(d.valid());
  EXPECT_EQ(d.base_generation(), 7u);
  EXPECT_TRUE(d.Of("f").zones.empty());
  d.Note(OpKind::kWrite, "f", "", 65536 * 3 - 10, 20);  // straddles zones 2 and 3
  EXPECT_EQ(d.Of("f").zones, (std::set<std::uint64_t>{2, 3}));
  EXPECT_FALSE(d.Of("f").whole);
  d.Note(OpKind::kTruncate, "g", "", 0, 5);
  EXPECT_TRUE(d.Of("g").whole);
  d.Note(OpKind::kRename, "a", "dir/b", 0, 0);
  EXPECT_TRUE(d.Of("dir/b").whole);
  EXPECT_TRUE(d.Of("dir/b/c/d").whole);
  EXPECT_FALSE(d.Of("dir/bc").whole);
  EXPECT_FALSE(d.Of("dir").whole);
  d.Note(OpKind::kLink, "x", "y", 0, 0);
  EXPECT_TRUE(d.Of("y").whole);
  d.Note(OpKind::kChmod, "z", "", 0, 0);  // metadata: compared anyway
  EXPECT_FALSE(d.Of("z").whole);
  EXPECT_TRUE(d.Of("z").zones.empty());
  // A write that lost its bytes (a lost sender's report) carries its size.
  Operation lost;
  lost.kind = OpKind::kWrite;
  lost.path = "h";
  lost.offset = 0;
  lost.length = 200000;
  d.Note(lost);
  EXPECT_EQ(d.Of("h").zones, (std::set<std::uint64_t>{0, 1, 2, 3}));
  d.Invalidate();
  EXPECT_FALSE(d.valid());
  EXPECT_TRUE(d.Of("h").zones.empty());
}

TEST(DirtyMap, PastItsBoundItIsNoLongerValid) {
  DirtyMap d(4096, 100);
  d.Reset(1);
  for (int i = 0; i < 99; ++i) d.Note(OpKind::kCreate, "f" + std::to_string(i), "", 0, 0);
  EXPECT_TRUE(d.valid());
  d.Note(OpKind::kWrite, "big", "", 0, 4096 * 10);
  EXPECT_FALSE(d.valid());
}

// What a synchronisation from the map sends, for its progress: noted zones
// (within the file), whole files, subtrees once at their top.
TEST(DirtyMap, EstimatesTheBytesToSend) {
  DirtyMap d(65536);
  d.Reset(1);
  d.Note(OpKind::kWrite, "f", "", 0, 10);             // zone 0
  d.Note(OpKind::kWrite, "f", "", 65536 * 5, 65536);  // zone 5
  d.Note(OpKind::kWrite, "tail", "", 65536 * 2, 5);   // zone 2 of a shorter file
  d.Note(OpKind::kCreate, "new", "", 0, 0);
  d.Note(OpKind::kRename, "x", "t", 0, 0);
  d.Note(OpKind::kRename, "y", "t/inner", 0, 0);  // below t: counted with t
  d.Note(OpKind::kWrite, "t/w", "", 0, 1);        // below t too
  d.Note(OpKind::kChmod, "meta", "", 0, 0);       // nothing to send
  const std::map<std::string, std::uint64_t> sizes = {
      {"f", 1 << 20}, {"tail", 65536 * 2 + 100}, {"new", 7000}, {"t", 300000}, {"x", 0},
      {"y", 0}};
  std::vector<std::string> asked;
  auto size_of = [&](const std::string& p) -> std::uint64_t {
    asked.push_back(p);
    auto it = sizes.find(p);
    return it == sizes.end() ? 0 : it->second;
  };
  EXPECT_EQ(d.EstimateBytes(size_of), 2u * 65536 + 100 + 7000 + 300000);
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "t/inner"), 0);
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "t/w"), 0);
  d.Reset(2);
  EXPECT_EQ(d.EstimateBytes(size_of), 0u);
}

// ------------------------------------------------------------ manifest

bool Write(const std::string& path, const std::string& data, mode_t mode = 0644) {
  return testing::WriteFile(path, data, mode);
}

TEST(Manifest, DescribesAndRoundTrips) {
  TempDir dir;
  ASSERT_TRUE(Write(dir.path() + "/f", std::string(150000, 'x')));
  ASSERT_EQ(::mkdir((dir.path() + "/d").c_str(), 0700), 0);
  ASSERT_TRUE(Write(dir.path() + "/d/g", "g"));
  ASSERT_EQ(::symlink("f", (dir.path() + "/l").c_str()), 0);
  int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  std::string encoded;
  std::vector<std::string> order;
  auto s = DescribeTree(fd, 65536, [&](ManifestEntry&& e) {
    order.push_back(e.path);
    EncodeManifestEntry(e, &encoded);
    return sdk::Status::Ok();
  });
  ::close(fd);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(order, (std::vector<std::string>{"", "d", "d/g", "f", "l"}));
  std::vector<ManifestEntry> back;
  ASSERT_TRUE(DecodeManifestEntries(encoded, &back).ok());
  Manifest m;
  for (auto& e : back) m.Add(std::move(e));
  ASSERT_NE(m.Find("f"), nullptr);
  EXPECT_EQ(m.Find("f")->zones.size(), 3u);  // 64 KiB, 64 KiB, the rest
  EXPECT_EQ(m.Find("f")->zones[0], HashZone(std::string(65536, 'x').data(), 65536));
  EXPECT_EQ(m.Find("l")->target, "f");
  EXPECT_EQ(m.Find("d")->mode & 07777, 0700u);
  EXPECT_EQ(m.Children(""), (std::vector<std::string>{"d", "f", "l"}));
  // Truncated input is refused, not misread.
  std::vector<ManifestEntry> cut;
  EXPECT_FALSE(DecodeManifestEntries(std::string_view(encoded).substr(0, encoded.size() - 5), &cut).ok());
}

// ------------------------------------------------------------ whole syncs

class SyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "needs root and /dev/fuse";
    }
    data_ = tmp_.path() + "/data";
    mirror_ = tmp_.path() + "/mirror";
    ASSERT_EQ(::mkdir(data_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(mirror_.c_str(), 0755), 0);
    guard_ = std::make_unique<MountGuard>(data_);
  }

  void TearDown() override {
    if (mount_) mount_->Unmount();
    if (sender_) sender_->Stop();
    if (receiver_) receiver_->Stop();
    if (mirror_fd_ >= 0) ::close(mirror_fd_);
  }

  std::string D(const std::string& rel) const { return data_ + "/" + rel; }
  std::string M(const std::string& rel) const { return mirror_ + "/" + rel; }

  // Mounts data/ with the gate in front of a sender connected to a receiver
  // that applies into mirror/.
  void Start() {
    mirror_fd_ = ::open(mirror_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(mirror_fd_, 0);
    ReceiverOptions r;
    r.listen_address = "127.0.0.1";
    r.module = "m";
    r.root_fds = {mirror_fd_};
    r.on_apply_failed = [this](const sdk::Status& s) { apply_errors_++; last_error_ = s.ToString(); };
    receiver_ = std::make_unique<ReplicationReceiver>(r);
    ASSERT_TRUE(receiver_->Start().ok());
    SenderOptions o;
    o.module = "m";
    o.peer_address = "127.0.0.1";
    o.peer_port = receiver_->port();
    o.mode = SenderOptions::Mode::kApplied;
    o.ack_timeout = 20s;
    o.on_manifest = [this](ManifestChunk&& c) { manifests_.Push(std::move(c)); };
    // As ModuleReplication does: what the sender cannot deliver is recorded.
    o.on_unreplicated = [this](std::uint8_t, const Operation& op) {
      if (DirtyMap* d = record_.load()) d->Note(op);
    };
    o.on_peer_lost = [this](const PeerLost& lost) {
      if (DirtyMap* d = record_.load()) {
        for (const auto& u : lost.unapplied) d->Note(u.op);
      }
    };
    sender_ = std::make_unique<ReplicationSender>(o);
    gate_ = std::make_unique<SyncGate>(*sender_, 0);
    InterceptorOptions io;
    io.dir = data_;
    io.sink = gate_.get();
    auto m = Interceptor::Mount(io);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    mount_ = std::move(*m);
    gate_->set_root_fd(mount_->real_dir_fd());
    ASSERT_TRUE(sender_->Connect().ok());
  }

  sdk::Status Sync(SyncProgress* progress) {
    return RunTreeSync(Options(), progress);
  }

  // A synchronisation of the mirror through this fixture's mount, gate,
  // sender and manifests, 64 KiB zones.
  TreeSyncOptions Options(std::uint64_t generation = 42) {
    TreeSyncOptions o;
    o.mount = mount_.get();
    o.gate = gate_.get();
    o.sender = sender_.get();
    o.manifests = &manifests_;
    o.zone_size = 65536;
    o.generation = generation;
    return o;
  }

  // Everything sent is applied: an fsync through the mount returns once the
  // mirror has it (and all before it).
  void Settle() {
    int fd = ::open(data_.c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::fsync(fd), 0);
    ::close(fd);
  }

  void ExpectSameTrees() {
    ASSERT_TRUE(mount_->Unmount().ok());
    hakit::testing::TreeCompareOptions o;
    o.compare_xattrs = false;
    auto diffs = hakit::testing::CompareTrees(data_, mirror_, o);
    EXPECT_TRUE(diffs.empty()) << hakit::testing::JoinDifferences(diffs);
    EXPECT_EQ(apply_errors_.load(), 0) << last_error_;
  }

  // The record of what the mirror misses, the gate's and the sender's; it
  // outlives both (the sender may report a loss while the test ends).
  DirtyMap& Record() {
    record_map_ = std::make_unique<DirtyMap>(65536);
    record_ = record_map_.get();
    gate_->set_dirty(record_map_.get());
    return *record_map_;
  }

  TempDir tmp_;
  std::unique_ptr<DirtyMap> record_map_;
  std::atomic<DirtyMap*> record_{nullptr};
  std::string data_, mirror_;
  std::unique_ptr<MountGuard> guard_;
  int mirror_fd_ = -1;
  std::unique_ptr<ReplicationReceiver> receiver_;
  std::unique_ptr<ReplicationSender> sender_;
  std::unique_ptr<SyncGate> gate_;
  std::unique_ptr<Interceptor> mount_;
  ManifestCollector manifests_;
  std::atomic<int> apply_errors_{0};
  std::string last_error_;
};

template <typename F>
bool Eventually(F done, std::chrono::milliseconds limit = 5000ms) {
  for (auto until = std::chrono::steady_clock::now() + limit;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(10ms)) {
    if (done()) return true;
  }
  return done();
}

std::string Pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_F(SyncTest, MakesAStaleMirrorIdenticalSendingOnlyWhatDiffers) {
  const std::string big = Pattern(4 << 20, 1);
  // Both: a 4 MiB file, identical but for one 64 KiB zone on the mirror.
  ASSERT_TRUE(Write(D("big"), big));
  std::string stale = big;
  stale.replace(1 << 20, 100, std::string(100, 'S'));
  ASSERT_TRUE(Write(M("big"), stale));
  // Only on the primary: files, a tree, a link, a FIFO, hard links.
  ASSERT_EQ(::mkdir(D("dir").c_str(), 0750), 0);
  ASSERT_EQ(::mkdir(D("dir/sub").c_str(), 0700), 0);
  ASSERT_TRUE(Write(D("dir/sub/new"), "new", 0600));
  ASSERT_EQ(::symlink("../big", D("dir/link").c_str()), 0);
  ASSERT_EQ(::mkfifo(D("fifo").c_str(), 0640), 0);
  ASSERT_TRUE(Write(D("linked"), "shared"));
  ASSERT_EQ(::link(D("linked").c_str(), D("zlinked").c_str()), 0);
  // Only on the mirror: extras of every kind, and a type clash.
  ASSERT_TRUE(Write(M("extra"), "gone"));
  ASSERT_EQ(::mkdir(M("extradir").c_str(), 0755), 0);
  ASSERT_TRUE(Write(M("extradir/deep"), "gone"));
  ASSERT_EQ(::mkdir(M("fifo").c_str(), 0755), 0);  // a dir where the primary has a FIFO
  // Different metadata and a longer stale copy.
  ASSERT_TRUE(Write(D("meta"), "same", 0600));
  ASSERT_TRUE(Write(M("meta"), "same", 0644));
  ASSERT_TRUE(Write(D("short"), "abc"));
  ASSERT_TRUE(Write(M("short"), "abcdefgh"));
  ASSERT_EQ(::chown(D("meta").c_str(), 1234, 5678), 0);

  Start();
  SyncProgress progress;
  auto s = Sync(&progress);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(gate_->passing());
  EXPECT_GE(progress.bytes_compared.load(), big.size());
  // One zone of big, and the small files; not the 4 MiB.
  EXPECT_LE(progress.bytes_sent.load(), 65536u + 4096u);
  // Every byte of the primary's files is compared, as the total said (the
  // second name of a hard link counted there, not read).
  EXPECT_FALSE(progress.by_record.load());
  EXPECT_EQ(progress.bytes_done.load(), progress.bytes_compared.load());
  EXPECT_GE(progress.bytes_total.load(), progress.bytes_done.load());
  EXPECT_LE(progress.bytes_total.load(), progress.bytes_done.load() + 6);
  Settle();
  ExpectSameTrees();
}

TEST_F(SyncTest, NotReplicatedEntriesAreLeftAlone) {
  ASSERT_EQ(::mkdir(D("cache").c_str(), 0755), 0);
  ASSERT_TRUE(Write(D("cache/primary-only"), "p"));
  ASSERT_EQ(::mkdir(M("cache").c_str(), 0755), 0);
  ASSERT_TRUE(Write(M("cache/secondary-only"), "s"));
  ASSERT_TRUE(Write(D("kept"), "k"));
  Start();
  PathFilter filter;
  ASSERT_TRUE(filter.AddPath("cache").ok());
  gate_->set_filter(&filter);
  TreeSyncOptions o = Options();
  o.filter = &filter;
  SyncProgress progress;
  auto s = RunTreeSync(o, &progress);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(Write(D("cache/later"), "l"));
  Settle();
  EXPECT_TRUE(fs::exists(M("kept")));
  EXPECT_TRUE(fs::exists(M("cache/secondary-only")));
  EXPECT_FALSE(fs::exists(M("cache/primary-only")));
  EXPECT_FALSE(fs::exists(M("cache/later")));
}

TEST_F(SyncTest, IdenticalTreesSendNoData) {
  for (int i = 0; i < 20; ++i) {
    std::string content = Pattern(10000 + i * 7000, i);
    ASSERT_TRUE(Write(D("f" + std::to_string(i)), content));
    ASSERT_TRUE(Write(M("f" + std::to_string(i)), content));
  }
  Start();
  SyncProgress progress;
  auto s = Sync(&progress);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(progress.bytes_sent.load(), 0u);
  EXPECT_EQ(progress.zones_sent.load(), 0u);
  Settle();
  ExpectSameTrees();
}

// Writers change the tree through the mount for the whole synchronisation:
// overwrites in big files, appends, creates, removals and renames within
// and across directories, some of them moving content into the part already
// walked (which restarts the pass).
void Writer(const std::string& root, unsigned seed, std::atomic<bool>* stop,
            std::atomic<int>* ops) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const char* dirs[] = {"a", "m", "z", "m/n"};
  while (!*stop) {
    std::string dir = root + "/" + dirs[pick(4)];
    std::string file = dir + "/w" + std::to_string(seed) + "_" + std::to_string(pick(12));
    switch (pick(7)) {
      case 0:
      case 1: {  // overwrite somewhere in a big file
        int fd = ::open((root + "/big" + std::to_string(pick(3))).c_str(), O_WRONLY);
        if (fd >= 0) {
          std::string d(1 + pick(20000), static_cast<char>('a' + pick(26)));
          ::pwrite(fd, d.data(), d.size(), pick(3 << 20));
          ::close(fd);
        }
        break;
      }
      case 2: {  // append
        int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
          std::string d(1 + pick(5000), static_cast<char>('A' + pick(26)));
          ::write(fd, d.data(), d.size());
          ::close(fd);
        }
        break;
      }
      case 3:
        ::unlink(file.c_str());
        break;
      case 4: {  // rename to another dir
        std::string to = root + "/" + dirs[pick(4)] + "/r" + std::to_string(seed) + "_" +
                         std::to_string(pick(12));
        ::rename(file.c_str(), to.c_str());
        break;
      }
      case 5:
        ::truncate(file.c_str(), pick(3000));
        break;
      case 6:
        ::mkdir(dir.c_str(), 0755);
        break;
    }
    ++*ops;
  }
}

TEST_F(SyncTest, WritesDuringTheSynchronisationEndIdentical) {
  for (int b = 0; b < 3; ++b) {
    std::string content = Pattern(3 << 20, 10 + b);
    ASSERT_TRUE(Write(D("big" + std::to_string(b)), content));
    if (b != 1) ASSERT_TRUE(Write(M("big" + std::to_string(b)), content.substr(0, 2 << 20)));
  }
  for (const char* d : {"a", "m", "z", "m/n"}) {
    ASSERT_EQ(::mkdir(D(d).c_str(), 0755), 0);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(Write(D(d) + "/s" + std::to_string(i), Pattern(100 + i * 300, i)));
    }
  }
  ASSERT_EQ(::mkdir(M("m").c_str(), 0755), 0);
  ASSERT_TRUE(Write(M("m/stale"), "stale"));
  Start();
  for (int round = 0; round < 3; ++round) {
    std::atomic<bool> stop{false};
    std::atomic<int> ops{0};
    std::vector<std::thread> writers;
    for (unsigned w = 0; w < 4; ++w) {
      writers.emplace_back(Writer, data_, 100 * round + w, &stop, &ops);
    }
    SyncProgress progress;
    auto s = Sync(&progress);
    // Keep writing a little after the end: those changes pass as usual.
    std::this_thread::sleep_for(100ms);
    stop = true;
    for (auto& t : writers) t.join();
    ASSERT_TRUE(s.ok()) << s.ToString() << " / receiver: " << last_error_;
    EXPECT_GT(ops.load(), 50) << "the writers hardly ran during the walk";
    std::cerr << "round " << round << ": " << ops.load() << " changes during the sync, "
              << progress.passes.load() << " pass(es), " << progress.bytes_sent.load()
              << " bytes sent\n";
  }
  Settle();
  ExpectSameTrees();
}

// The record of what changed replaces the comparison: the secondary is
// described without hashes, only the noted zones travel, and the trees end
// identical although writers keep changing them during the synchronisation.
TEST_F(SyncTest, RecordedChangesAloneAreSentAndTheTreesEndIdentical) {
  const std::string big = Pattern(4 << 20, 3);
  ASSERT_TRUE(Write(D("big"), big));
  ASSERT_TRUE(Write(M("big"), big));
  for (const char* d : {"a", "m", "z", "m/n"}) {
    ASSERT_EQ(::mkdir(D(d).c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(M(d).c_str(), 0755), 0);
  }
  for (int b = 0; b < 3; ++b) {
    std::string content = Pattern(3 << 20, 20 + b);
    ASSERT_TRUE(Write(D("big" + std::to_string(b)), content));
    ASSERT_TRUE(Write(M("big" + std::to_string(b)), content));
  }
  Start();
  DirtyMap& dirty = Record();
  SyncProgress first;
  TreeSyncOptions o = Options(5);
  o.record = &dirty;
  ASSERT_TRUE(RunTreeSync(o, &first).ok());  // by checksums: nothing noted yet
  // The comparison's total is every byte of the primary's files, all read.
  EXPECT_EQ(first.bytes_total.load(), (4u << 20) + 3 * (3u << 20));
  EXPECT_EQ(first.bytes_done.load(), first.bytes_total.load());
  ASSERT_TRUE(dirty.valid());
  // The secondary goes away; the primary changes two zones of big alone.
  const std::uint16_t port = receiver_->port();
  receiver_->Stop();
  ASSERT_TRUE(Eventually([&] { return sender_->state() == SenderState::kLost; }));
  int fd = ::open(D("big").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "XYZ", 3, 100), 3);
  ASSERT_EQ(::pwrite(fd, "XYZ", 3, (2 << 20) + 5), 3);
  ::close(fd);
  ASSERT_TRUE(Write(D("m/alone"), "made alone"));
  EXPECT_EQ(dirty.Of("big").zones.size(), 2u);
  EXPECT_TRUE(dirty.Of("m/alone").whole);
  // It comes back (same port); the walk runs while writers change the tree.
  ReceiverOptions r;
  r.listen_address = "127.0.0.1";
  r.port = port;
  r.module = "m";
  r.root_fds = {mirror_fd_};
  r.on_apply_failed = [this](const sdk::Status& st) {
    apply_errors_++;
    last_error_ = st.ToString();
  };
  receiver_ = std::make_unique<ReplicationReceiver>(r);
  ASSERT_TRUE(receiver_->Start().ok());
  mount_->RunExclusive([&] { gate_->BeginSync(); });
  ASSERT_TRUE(sender_->Connect().ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ops{0};
  std::vector<std::thread> writers;
  for (unsigned w = 0; w < 3; ++w) writers.emplace_back(Writer, data_, 500 + w, &stop, &ops);
  SyncProgress second;
  o.dirty = &dirty;
  auto st = RunTreeSync(o, &second);
  std::this_thread::sleep_for(100ms);
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_TRUE(st.ok()) << st.ToString() << " / receiver: " << last_error_;
  // Only files the secondary lacked are read whole (m/alone, the writers'
  // new files), not the 13 MiB of big files it has.
  EXPECT_LT(second.bytes_compared.load(), 1u << 20);
  std::cerr << ops.load() << " changes during the synchronisation, " << second.bytes_sent.load()
            << " bytes sent\n";
  Settle();
  ExpectSameTrees();
}

// The record names one zone of a file whose copy on the secondary is shorter
// (a truncation it never got, the writes after it noted elsewhere or lost in
// a crash): the tail beyond the secondary's end is sent too, not left as the
// zeros its extension would make.
TEST_F(SyncTest, ATailTheSecondaryLacksIsSentWhateverTheRecordNames) {
  const std::string f = Pattern(1 << 20, 7);
  ASSERT_TRUE(Write(D("f"), f));
  ASSERT_TRUE(Write(M("f"), f.substr(0, 256 << 10)));
  Start();
  DirtyMap dirty(65536);
  dirty.Reset(5);
  dirty.Note(OpKind::kWrite, "f", "", 65536, 10);
  SyncProgress progress;
  TreeSyncOptions o = Options(6);
  o.dirty = &dirty;
  o.record = &dirty;
  ASSERT_TRUE(RunTreeSync(o, &progress).ok());
  EXPECT_EQ(progress.bytes_sent.load(), (1u << 20) - (256u << 10) + 65536);
  Settle();
  ExpectSameTrees();
}

// With a record, the files it does not name are walked many to a step, from
// one stat each: those whose permissions or times differ on the secondary
// get them, those it names get their zones, and the trees end identical,
// times included, while writers change them.
TEST_F(SyncTest, RecordWalksUnnamedFilesManyToAStepAndFixesTheirAttributes) {
  for (int b = 0; b < 3; ++b) {  // the writers overwrite these
    std::string content = Pattern(3 << 20, 30 + b);
    ASSERT_TRUE(Write(D("big" + std::to_string(b)), content));
    ASSERT_TRUE(Write(M("big" + std::to_string(b)), content));
  }
  hakit::testing::TreeCompareOptions compare;
  compare.compare_xattrs = false;
  int n = 0;
  for (const char* d : {"a", "m", "m/n", "z"}) {
    ASSERT_EQ(::mkdir(D(d).c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(M(d).c_str(), 0755), 0);
    for (int i = 0; i < 200; ++i, ++n) {
      const std::string rel = std::string(d) + "/f" + std::to_string(i);
      const std::string content = Pattern(1 + n % 3000, n);
      ASSERT_TRUE(Write(D(rel), content));
      ASSERT_TRUE(Write(M(rel), content, n % 7 == 0 ? 0600 : 0644));
      timespec times[2] = {{1600000000 + n, 0}, {1600000000 + n, 0}};
      ASSERT_EQ(::utimensat(AT_FDCWD, D(rel).c_str(), times, 0), 0);
      if (n % 5 == 0) times[1].tv_sec += 1000;
      ASSERT_EQ(::utimensat(AT_FDCWD, M(rel).c_str(), times, 0), 0);
      compare.mtime_paths.insert(rel);
    }
  }
  Start();
  DirtyMap& dirty = Record();
  dirty.Reset(5);
  // Changes the secondary misses (the gate drops them and notes them).
  int fd = ::open(D("m/f17").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "XYZ", 3, 5), 3);
  ::close(fd);
  fd = ::open(D("z/f199").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "tail", 4), 4);
  ::close(fd);
  ASSERT_EQ(dirty.Of("m/f17").zones.size(), 1u);
  std::atomic<bool> stop{false};
  std::atomic<int> ops{0};
  std::vector<std::thread> writers;
  for (unsigned w = 0; w < 3; ++w) writers.emplace_back(Writer, data_, 700 + w, &stop, &ops);
  TreeSyncOptions o = Options(6);
  o.dirty = &dirty;
  o.record = &dirty;
  SyncProgress progress;
  auto st = RunTreeSync(o, &progress);
  std::this_thread::sleep_for(100ms);
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_TRUE(st.ok()) << st.ToString() << " / receiver: " << last_error_;
  EXPECT_GE(progress.entries.load(), 800u);
  EXPECT_LT(progress.bytes_compared.load(), 1u << 20);  // nothing compared by checksums
  Settle();
  ASSERT_TRUE(mount_->Unmount().ok());
  auto diffs = hakit::testing::CompareTrees(data_, mirror_, compare);
  EXPECT_TRUE(diffs.empty()) << hakit::testing::JoinDifferences(diffs);
  EXPECT_EQ(apply_errors_.load(), 0) << last_error_;
}

}  // namespace
}  // namespace hakit::replication
