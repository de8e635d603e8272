// The cluster key file: generation, permissions and content checks.
#include "hakit/cluster/heartbeat_key.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace hakit::cluster {
namespace {

namespace fs = std::filesystem;

class heartbeat_key : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hakit_key_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    fs::path p = dir_ / name;
    std::ofstream(p) << content;
    ::chmod(p.c_str(), mode);
    return p;
  }

  fs::path dir_;
};

TEST_F(heartbeat_key, GenerateWritesHexWithMode0600AndLoadsBack) {
  fs::path p = dir_ / "etc" / "cluster.key";  // parent created on the way
  ASSERT_TRUE(GenerateClusterKey(p).ok());
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::string text;
  std::getline(std::ifstream(p), text);
  EXPECT_EQ(text.size(), 2 * kClusterKeySize);
  EXPECT_EQ(text.find_first_not_of("0123456789abcdef"), std::string::npos) << text;
  auto key = LoadClusterKey(p);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->size(), kClusterKeySize);
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
}

TEST_F(heartbeat_key, GenerateRefusesToReplaceAnExistingKey) {
  fs::path p = dir_ / "cluster.key";
  ASSERT_TRUE(GenerateClusterKey(p).ok());
  auto first = LoadClusterKey(p);
  ASSERT_TRUE(first.ok());
  auto again = GenerateClusterKey(p);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("already exists"), std::string::npos) << again.message();
  ASSERT_TRUE(GenerateClusterKey(p, /*overwrite=*/true).ok());
  auto second = LoadClusterKey(p);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*first, *second);  // 256 random bits: equal only if RAND_bytes is broken
}

TEST_F(heartbeat_key, MissingKeySaysHowToMakeOne) {
  fs::path p = dir_ / "nope.key";
  auto r = LoadClusterKey(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), sdk::Status::Code::kNotFound);
  EXPECT_EQ(r.status().message(), "no cluster key at " + p.string() +
                                      ": run hakit cluster genkey and copy the file to every "
                                      "node");
}

TEST_F(heartbeat_key, GroupOrOtherAccessIsRefused) {
  const std::string hex(64, 'a');
  for (mode_t mode : {0640, 0604, 0620, 0660, 0644}) {
    fs::path p = Write("k" + std::to_string(mode), hex, mode);
    auto r = LoadClusterKey(p);
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    EXPECT_EQ(r.status().code(), sdk::Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("chmod 600"), std::string::npos) << r.status().message();
  }
  EXPECT_TRUE(LoadClusterKey(Write("owner_only", hex, 0400)).ok());
}

TEST_F(heartbeat_key, BadContentIsRefusedWithoutEchoingIt) {
  struct Case {
    const char* content;
    const char* expect;
  } cases[] = {
      {"", "is empty"},
      {"\n\n", "is empty"},
      {"secretzz", "not hexadecimal"},
      {"abc", "odd number"},
      {"00112233445566778899aabbccddee", "holds 15 bytes"},  // 15 bytes: too short
  };
  for (const auto& c : cases) {
    auto r = LoadClusterKey(Write("bad", c.content));
    ASSERT_FALSE(r.ok()) << c.content;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
    if (std::string(c.content).size() > 3) {
      EXPECT_EQ(r.status().message().find(c.content), std::string::npos)
          << "key material in the message: " << r.status().message();
    }
  }
  auto dir = LoadClusterKey(dir_);
  EXPECT_FALSE(dir.ok());
}

TEST_F(heartbeat_key, SurroundingWhitespaceAndUpperCaseAreFine) {
  auto r = LoadClusterKey(Write("k", "  00112233445566778899AABBCCDDEEFF\r\n\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 16u);
  EXPECT_EQ((*r)[0], 0x00);
  EXPECT_EQ((*r)[10], 0xaa);
  EXPECT_EQ((*r)[15], 0xff);
}

}  // namespace
}  // namespace hakit::cluster
