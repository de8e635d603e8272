// cluster.xml: good files, helpers, and one TEST per kind of bad input.
#include "hakit/config/cluster_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hakit::config {
namespace {

const std::string kDataDir = std::string(HAKIT_SOURCE_DIR) + "/tests/config/data/";

sdk::Result<ClusterConfig> Parse(const std::string& text) {
  return ParseClusterConfigString(text, "cluster.xml");
}

void ExpectError(const std::string& text, const std::string& where,
                 const std::vector<std::string>& parts) {
  auto r = Parse(text);
  ASSERT_FALSE(r.ok()) << "parsed without error:\n" << text;
  EXPECT_EQ(r.status().code(), sdk::Status::Code::kInvalidArgument);
  const std::string m = r.status().message();
  EXPECT_EQ(m.rfind("cluster.xml:" + where + ": ", 0), 0u) << m;
  for (const std::string& part : parts) EXPECT_NE(m.find(part), std::string::npos) << m;
}

TEST(ClusterConfig, SafeKitShapeFromFile) {
  auto r = ParseClusterConfig(kDataDir + "cluster.xml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ClusterConfig& c = *r;
  EXPECT_EQ(c.port, 4800);
  ASSERT_EQ(c.lans.size(), 2u);
  EXPECT_EQ(c.lans[0].name, "default");
  EXPECT_TRUE(c.lans[0].console);
  EXPECT_TRUE(c.lans[0].command);
  EXPECT_FALSE(c.lans[1].console);
  EXPECT_EQ(c.NodeNames(), (std::vector<std::string>{"node1", "node2"}));
  EXPECT_EQ(*c.AddressOf("node1"), "198.18.0.1");
  EXPECT_EQ(*c.AddressOf("node2", "default"), "198.18.0.2");
  EXPECT_EQ(*c.AddressOf("node2", "flow"), "198.18.1.2");
  ASSERT_NE(c.FindLan("flow"), nullptr);
  EXPECT_EQ(c.FindLan("flow")->nodes[0].location.ToString(), "10:7");
  EXPECT_EQ(c.FindLan("nope"), nullptr);

  auto missing = c.AddressOf("node3", "default");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), sdk::Status::Code::kNotFound);
  EXPECT_NE(missing.status().message().find("node3"), std::string::npos);
  EXPECT_FALSE(c.AddressOf("node1", "backup").ok());
}

TEST(ClusterConfig, LansWithoutWrapperAndPort) {
  auto r = Parse(R"(<cluster port="5800">
  <lan name="default"><node name="a" addr="198.18.0.1"/><node name="b" addr="2001:db8::2"/></lan>
</cluster>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->port, 5800);
  EXPECT_EQ(*r->AddressOf("b"), "2001:db8::2");
}

TEST(ClusterConfig, OneNodeIsAcceptedHere) {
  // How many nodes a module needs is checked by the daemon.
  auto r = Parse(
      R"(<cluster><lans><lan name="default"><node name="a" addr="198.18.0.1"/></lan></lans></cluster>)");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST(ClusterConfig, MissingFile) {
  auto r = ParseClusterConfig(kDataDir + "nope.xml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), sdk::Status::Code::kNotFound);
}

TEST(ClusterConfigError, NodeMissingFromASecondLan) {
  ExpectError(R"(<cluster><lans>
  <lan name="default"><node name="node1" addr="198.18.0.1"/><node name="node2" addr="198.18.0.2"/></lan>
  <lan name="flow"><node name="node1" addr="198.18.1.1"/></lan>
</lans></cluster>)",
              "3:3", {"<lan>", "\"flow\" has no node \"node2\"", "same node names"});
}

TEST(ClusterConfigError, NodeNamesInconsistentAcrossLans) {
  ExpectError(R"(<cluster><lans>
  <lan name="default"><node name="node1" addr="198.18.0.1"/><node name="node2" addr="198.18.0.2"/></lan>
  <lan name="flow">
    <node name="node1" addr="198.18.1.1"/>
    <node name="nod2" addr="198.18.1.2"/>
  </lan>
</lans></cluster>)",
              "5:5", {"<node> name:", "\"nod2\" is not in lan \"default\""});
}

TEST(ClusterConfigError, DuplicateAddress) {
  ExpectError(R"(<cluster><lans>
  <lan name="default">
    <node name="node1" addr="198.18.0.1"/>
    <node name="node2" addr="198.18.0.1"/>
  </lan>
</lans></cluster>)",
              "4:24", {"<node> addr:", "already used at line 3:24"});
}

TEST(ClusterConfigError, DuplicateAddressAcrossLans) {
  ExpectError(R"(<cluster>
  <lan name="default"><node name="a" addr="198.18.0.1"/></lan>
  <lan name="flow"><node name="a" addr="198.18.0.1"/></lan>
</cluster>)",
              "3:35", {"<node> addr:", "already used"});
}

TEST(ClusterConfigError, InvalidAddress) {
  ExpectError(R"(<cluster><lans><lan name="default">
  <node name="node1" addr="198.18.0.300"/>
</lan></lans></cluster>)",
              "2:22", {"<node> addr:", "\"198.18.0.300\" is not an IP address"});
}

TEST(ClusterConfigError, HostNameAddress) {
  ExpectError(R"(<cluster><lans><lan name="default">
  <node name="node1" addr="node1.example.com"/>
</lan></lans></cluster>)",
              "2:22", {"<node> addr:", "host names are not resolved"});
}

TEST(ClusterConfigError, MissingAddr) {
  ExpectError(R"(<cluster><lans><lan name="default">
  <node name="node1"/>
</lan></lans></cluster>)",
              "2:3", {"<node> addr:", "missing required attribute"});
}

TEST(ClusterConfigError, DuplicateNodeInALan) {
  ExpectError(R"(<cluster><lan name="default">
<node name="a" addr="198.18.0.1"/>
<node name="a" addr="198.18.0.2"/>
</lan></cluster>)",
              "3:7", {"<node> name:", "twice"});
}

TEST(ClusterConfigError, DuplicateLan) {
  ExpectError(R"(<cluster>
<lan name="default"><node name="a" addr="198.18.0.1"/></lan>
<lan name="default"><node name="a" addr="198.18.0.2"/></lan>
</cluster>)",
              "3:6", {"<lan> name:", "twice"});
}

TEST(ClusterConfigError, EmptyLan) {
  ExpectError("<cluster>\n<lan name=\"default\"/>\n</cluster>", "2:1", {"<lan>", "no <node>"});
}

TEST(ClusterConfigError, NoLan) {
  ExpectError("<cluster>\n<lans/>\n</cluster>", "1:1", {"<cluster>", "no <lan>"});
}

TEST(ClusterConfigError, PortOutOfRange) {
  ExpectError(
      R"(<cluster port="0"><lan name="default"><node name="a" addr="198.18.0.1"/></lan></cluster>)",
      "1:10", {"<cluster> port:", "out of range"});
}

TEST(ClusterConfigError, UnknownAttribute) {
  ExpectError(
      R"(<cluster><lan name="default"><node name="a" address="198.18.0.1"/></lan></cluster>)",
      "1:45", {"<node> address:", "unknown attribute", "name, addr"});
}

TEST(ClusterConfigError, UnknownElement) {
  ExpectError("<cluster>\n  <nodes/>\n</cluster>", "2:3", {"<nodes>", "unknown element"});
}

TEST(ClusterConfigError, WrongRoot) { ExpectError("<safe/>", "1:1", {"<safe>", "<cluster>"}); }

TEST(ClusterConfigError, MalformedXml) {
  ExpectError("<cluster>\n<lan name=\"default\">\n</cluster>", "3:3", {"malformed XML"});
}

}  // namespace
}  // namespace hakit::config
