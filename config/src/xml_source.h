// Shared by the userconfig.xml and cluster.xml parsers: positions in the
// original text, the one error format, %MACRO% expansion and a strict
// per-element attribute reader. Private to hakit_config.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <map>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hakit/config/module_config.h"
#include "hakit/config/problem.h"
#include "hakit/config/values.h"
#include "hakit/sdk/status.h"

// Returns the Status of `expr` from the calling function unless it is ok.
#define HAKIT_CONFIG_RETURN_IF_ERROR(expr) \
  do {                                     \
    ::hakit::sdk::Status _st = (expr);     \
    if (!_st.ok()) return _st;             \
  } while (0)

namespace hakit::config::internal {

// Reads a whole file; kNotFound or kIoError naming the path.
sdk::Result<std::string> ReadFile(const std::string& path);

// The original text of a file and its display name. pugixml reports byte
// offsets into its copy of the buffer, which has the same offsets as ours
// (we never let it convert the encoding), so positions are computed here.
class SourceText {
 public:
  SourceText(std::string display_name, std::string_view text);

  const std::string& display_name() const { return display_name_; }
  std::string_view text() const { return text_; }

  SourceLocation LocationOf(std::ptrdiff_t offset) const;
  // Offset of the '<' that opens `node` (of the text for a text node).
  std::ptrdiff_t NodeOffset(pugi::xml_node node) const;
  // Offset of `attribute`'s name inside `node`'s start tag (its `nth`
  // occurrence, counting from 0); the node's offset when it is not there.
  std::ptrdiff_t AttributeOffset(pugi::xml_node node, std::string_view attribute,
                                 int nth = 0) const;

  // "FILE:L:C: <element> attribute: what (expected ...)".
  sdk::Status Error(std::ptrdiff_t offset, std::string_view element, std::string_view attribute,
                    std::string_view what, std::string_view expected) const;
  Problem MakeProblem(std::ptrdiff_t offset, std::string_view element, std::string_view attribute,
                      std::string_view what, std::string_view hint) const;

  // Parses the text with pugixml; a malformed document is an error with
  // pugixml's description and the position it stopped at.
  sdk::Status Load(pugi::xml_document* doc) const;

 private:
  std::string display_name_;
  std::string_view text_;
  std::vector<std::ptrdiff_t> line_starts_;
};

// %NAME% expansion: macros first, then the caller's variables, then the
// environment. "%%" is a literal '%'; a '%' that does not start a
// %NAME% reference (a name is [A-Za-z_][A-Za-z0-9_]*) is kept as is.
class MacroExpander {
 public:
  explicit MacroExpander(const ParseOptions& options) : options_(options) {}

  // On error, *undefined holds the name that has no value.
  bool Expand(std::string_view raw, std::string* out, std::string* undefined) const;

  bool Defines(const std::string& name) const { return macros_.count(name) != 0; }
  void Define(const std::string& name, const std::string& value) { macros_[name] = value; }
  const std::map<std::string, std::string>& macros() const { return macros_; }

 private:
  const ParseOptions& options_;
  std::map<std::string, std::string> macros_;
};

// Reads one element's attributes. Open() rejects unknown and repeated
// attributes, expands every value and records it; the getters then convert
// and validate one attribute each and return an error that points at it.
class ElementReader {
 public:
  ElementReader(const SourceText& source, pugi::xml_node node, const MacroExpander* expander,
                std::vector<SourceAttribute>* record)
      : source_(source), node_(node), expander_(expander), record_(record) {}

  sdk::Status Open(std::initializer_list<std::string_view> allowed);

  const char* name() const { return node_.name(); }
  pugi::xml_node node() const { return node_; }
  SourceLocation location() const { return source_.LocationOf(source_.NodeOffset(node_)); }
  SourceLocation LocationOf(std::string_view attribute) const {
    return source_.LocationOf(source_.AttributeOffset(node_, attribute));
  }
  bool Has(std::string_view attribute) const;

  // An error at the attribute (or at the element when `attribute` is empty).
  sdk::Status Fail(std::string_view attribute, std::string_view what,
                   std::string_view expected) const;
  Problem Warn(std::string_view attribute, std::string_view what, std::string_view hint) const;

  // Absent: *out keeps its value, unless `required`.
  sdk::Status GetString(std::string_view attribute, bool required, std::string_view expected,
                        std::string* out) const;
  sdk::Status GetDuration(std::string_view attribute, TimeUnit plain_unit,
                          std::chrono::milliseconds min, std::chrono::milliseconds* out) const;
  sdk::Status GetInt(std::string_view attribute, bool required, long min, long max, int* out) const;
  sdk::Status GetOnOff(std::string_view attribute, bool* out) const;
  sdk::Status GetYesNo(std::string_view attribute, bool* out) const;
  // `choices` maps each accepted word to its value.
  template <typename E>
  sdk::Status GetEnum(std::string_view attribute,
                      std::initializer_list<std::pair<std::string_view, E>> choices, E* out) const {
    const std::string* v = Value(attribute);
    if (v == nullptr) return sdk::Status::Ok();
    std::string expected;
    for (const auto& [word, value] : choices) {
      if (*v == word) {
        *out = value;
        return sdk::Status::Ok();
      }
      if (!expected.empty()) expected += " or ";
      expected += word;
    }
    return Fail(attribute, "unknown value \"" + *v + "\"", "expected " + expected);
  }

  // The expanded value, nullptr when absent.
  const std::string* Value(std::string_view attribute) const;

 private:
  const SourceText& source_;
  pugi::xml_node node_;
  const MacroExpander* expander_;
  std::vector<SourceAttribute>* record_;
  std::vector<std::pair<std::string, std::string>> values_;  // name, expanded value
};

// Rejects text inside an element that holds only elements.
sdk::Status CheckNoText(const SourceText& source, pugi::xml_node node);

// "<a>, <b> or <c>" for messages.
std::string ElementList(std::initializer_list<std::string_view> names);

}  // namespace hakit::config::internal
