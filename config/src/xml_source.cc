#include "xml_source.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hakit::config::internal {

using sdk::Result;
using sdk::Status;

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string why = std::strerror(err);
    if (err == ENOENT) return Status::NotFound(path + ": cannot open: " + why);
    return Status::IoError(path + ": cannot open: " + why);
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Status::IoError(path + ": cannot read");
  return buf.str();
}

SourceText::SourceText(std::string display_name, std::string_view text)
    : display_name_(std::move(display_name)), text_(text) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i) {
    if (text_[i] == '\n') line_starts_.push_back(static_cast<std::ptrdiff_t>(i + 1));
  }
}

SourceLocation SourceText::LocationOf(std::ptrdiff_t offset) const {
  if (offset < 0) return {};
  offset = std::min<std::ptrdiff_t>(offset, static_cast<std::ptrdiff_t>(text_.size()));
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  size_t line_index = static_cast<size_t>(it - line_starts_.begin()) - 1;
  std::ptrdiff_t start = line_starts_[line_index];
  int column = 1;
  for (std::ptrdiff_t i = start; i < offset; ++i) {
    // Count code points: skip UTF-8 continuation bytes.
    if ((static_cast<unsigned char>(text_[static_cast<size_t>(i)]) & 0xC0) != 0x80) ++column;
  }
  return {static_cast<int>(line_index) + 1, column};
}

std::ptrdiff_t SourceText::NodeOffset(pugi::xml_node node) const {
  std::ptrdiff_t offset = node.offset_debug();
  if (offset < 0) return -1;
  if (node.type() == pugi::node_element) {
    // pugixml points at the name; back up to the '<'.
    if (offset > 0 && text_[static_cast<size_t>(offset - 1)] == '<') --offset;
  }
  return offset;
}

std::ptrdiff_t SourceText::AttributeOffset(pugi::xml_node node, std::string_view attribute,
                                           int nth) const {
  std::ptrdiff_t element = NodeOffset(node);
  if (element < 0 || attribute.empty()) return element;
  size_t i = static_cast<size_t>(element);
  const size_t n = text_.size();
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  if (i < n && text_[i] == '<') ++i;
  while (i < n && !is_space(text_[i]) && text_[i] != '/' && text_[i] != '>') ++i;
  // Walk the start tag attribute by attribute; values are quoted and cannot
  // hold the quote that opened them, so this never loses its place.
  while (i < n) {
    while (i < n && is_space(text_[i])) ++i;
    if (i >= n || text_[i] == '/' || text_[i] == '>') break;
    size_t name_start = i;
    while (i < n && !is_space(text_[i]) && text_[i] != '=' && text_[i] != '>' && text_[i] != '/')
      ++i;
    std::string_view name = text_.substr(name_start, i - name_start);
    while (i < n && is_space(text_[i])) ++i;
    if (i >= n || text_[i] != '=') break;
    ++i;
    while (i < n && is_space(text_[i])) ++i;
    if (i >= n || (text_[i] != '"' && text_[i] != '\'')) break;
    char quote = text_[i];
    size_t close = text_.find(quote, i + 1);
    if (close == std::string_view::npos) break;
    if (name == attribute && nth-- == 0) return static_cast<std::ptrdiff_t>(name_start);
    i = close + 1;
  }
  return element;
}

Status SourceText::Error(std::ptrdiff_t offset, std::string_view element,
                         std::string_view attribute, std::string_view what,
                         std::string_view expected) const {
  return Status::InvalidArgument(
      MakeProblem(offset, element, attribute, what, expected).ToString());
}

Problem SourceText::MakeProblem(std::ptrdiff_t offset, std::string_view element,
                                std::string_view attribute, std::string_view what,
                                std::string_view hint) const {
  Problem p;
  p.file = display_name_;
  p.location = LocationOf(offset);
  p.element = std::string(element);
  p.attribute = std::string(attribute);
  p.message = std::string(what);
  p.hint = std::string(hint);
  return p;
}

Status SourceText::Load(pugi::xml_document* doc) const {
  auto starts_with = [&](std::string_view prefix) {
    return text_.substr(0, prefix.size()) == prefix;
  };
  if (starts_with("\xFF\xFE") || starts_with("\xFE\xFF")) {
    return Error(0, "", "", "the file is UTF-16", "expected UTF-8; save it as UTF-8");
  }
  // parse_default skips the DOCTYPE, comments and processing instructions,
  // which SafeKit's templates carry.
  pugi::xml_parse_result result =
      doc->load_buffer(text_.data(), text_.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!result) {
    return Status::InvalidArgument(display_name_ + ":" + LocationOf(result.offset).ToString() +
                                   ": malformed XML: " + result.description() +
                                   " (expected a well-formed XML document)");
  }
  return Status::Ok();
}

bool MacroExpander::Expand(std::string_view raw, std::string* out, std::string* undefined) const {
  out->clear();
  size_t i = 0;
  while (i < raw.size()) {
    char c = raw[i];
    if (c != '%') {
      out->push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < raw.size() && raw[i + 1] == '%') {
      out->push_back('%');
      i += 2;
      continue;
    }
    size_t close = raw.find('%', i + 1);
    std::string_view name =
        close == std::string_view::npos ? std::string_view() : raw.substr(i + 1, close - i - 1);
    if (!IsVariableName(name)) {
      out->push_back(c);
      ++i;
      continue;
    }
    std::string key(name);
    if (auto it = macros_.find(key); it != macros_.end()) {
      *out += it->second;
    } else if (auto var = options_.variables.find(key); var != options_.variables.end()) {
      *out += var->second;
    } else if (const char* env = options_.use_environment ? std::getenv(key.c_str()) : nullptr) {
      *out += env;
    } else {
      *undefined = key;
      return false;
    }
    i = close + 1;
  }
  return true;
}

Status ElementReader::Open(std::initializer_list<std::string_view> allowed) {
  for (pugi::xml_attribute a : node_.attributes()) {
    std::string_view name = a.name();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string expected;
      for (std::string_view n : allowed)
        expected += (expected.empty() ? "" : ", ") + std::string(n);
      return Fail(name, "unknown attribute",
                  allowed.size() == 0 ? std::string("expected no attributes")
                                      : "expected one of: " + expected);
    }
    for (const auto& [seen, value] : values_) {
      if (seen == name) {
        return source_.Error(source_.AttributeOffset(node_, name, 1), node_.name(), name,
                             "attribute given twice", "expected it once");
      }
    }
    std::string value;
    std::string undefined;
    if (expander_ != nullptr && !expander_->Expand(a.value(), &value, &undefined)) {
      return Fail(name, "%" + undefined + "% is neither a <macro> nor an environment variable",
                  "expected <macro name=\"" + undefined +
                      "\" value=\"...\"/> in <safe> or <service>, or \"%%\" for a literal %");
    }
    if (expander_ == nullptr) value = a.value();
    if (record_ != nullptr) {
      record_->push_back(
          SourceAttribute{node_.name(), std::string(name), a.value(), value, LocationOf(name)});
    }
    values_.emplace_back(std::string(name), std::move(value));
  }
  return Status::Ok();
}

bool ElementReader::Has(std::string_view attribute) const { return Value(attribute) != nullptr; }

const std::string* ElementReader::Value(std::string_view attribute) const {
  for (const auto& [name, value] : values_) {
    if (name == attribute) return &value;
  }
  return nullptr;
}

Status ElementReader::Fail(std::string_view attribute, std::string_view what,
                           std::string_view expected) const {
  return source_.Error(source_.AttributeOffset(node_, attribute), node_.name(), attribute, what,
                       expected);
}

Problem ElementReader::Warn(std::string_view attribute, std::string_view what,
                            std::string_view hint) const {
  return source_.MakeProblem(source_.AttributeOffset(node_, attribute), node_.name(), attribute,
                             what, hint);
}

Status ElementReader::GetString(std::string_view attribute, bool required,
                                std::string_view expected, std::string* out) const {
  const std::string* v = Value(attribute);
  if (v == nullptr) {
    if (required) return Fail(attribute, "missing required attribute", expected);
    return Status::Ok();
  }
  if (required && v->empty()) return Fail(attribute, "empty value", expected);
  *out = *v;
  return Status::Ok();
}

Status ElementReader::GetDuration(std::string_view attribute, TimeUnit plain_unit,
                                  std::chrono::milliseconds min,
                                  std::chrono::milliseconds* out) const {
  const std::string* v = Value(attribute);
  if (v == nullptr) return Status::Ok();
  const char* unit_name = "ms";
  switch (plain_unit) {
    case TimeUnit::kMilliseconds:
      unit_name = "milliseconds";
      break;
    case TimeUnit::kSeconds:
      unit_name = "seconds";
      break;
    case TimeUnit::kMinutes:
      unit_name = "minutes";
      break;
    case TimeUnit::kHours:
      unit_name = "hours";
      break;
  }
  Result<std::chrono::milliseconds> d = ParseDuration(*v, plain_unit);
  if (!d.ok()) {
    return Fail(attribute, d.status().message(),
                std::string("expected a whole number of ") + unit_name +
                    ", or a number with a unit ms, s, m or h, e.g. \"30s\"");
  }
  if (*d < min) {
    return Fail(attribute, "\"" + *v + "\" is too small",
                "expected at least " + FormatDuration(min));
  }
  *out = *d;
  return Status::Ok();
}

Status ElementReader::GetInt(std::string_view attribute, bool required, long min, long max,
                             int* out) const {
  const std::string* v = Value(attribute);
  std::string range =
      "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  if (v == nullptr) {
    if (required) return Fail(attribute, "missing required attribute", range);
    return Status::Ok();
  }
  const char* begin = v->c_str();
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(begin, &end, 10);
  bool digits_only = !v->empty() && end == begin + v->size() &&
                     !std::isspace(static_cast<unsigned char>((*v)[0])) && (*v)[0] != '+';
  if (!digits_only) return Fail(attribute, "\"" + *v + "\" is not a whole number", range);
  if (errno == ERANGE || n < min || n > max) {
    return Fail(attribute, "\"" + *v + "\" is out of range", range);
  }
  *out = static_cast<int>(n);
  return Status::Ok();
}

Status ElementReader::GetOnOff(std::string_view attribute, bool* out) const {
  return GetEnum<bool>(attribute, {{"on", true}, {"off", false}}, out);
}

Status ElementReader::GetYesNo(std::string_view attribute, bool* out) const {
  return GetEnum<bool>(attribute, {{"yes", true}, {"no", false}}, out);
}

Status CheckNoText(const SourceText& source, pugi::xml_node node) {
  for (pugi::xml_node child : node.children()) {
    if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
      std::string text = child.value();
      if (text.size() > 20) text = text.substr(0, 20) + "...";
      return source.Error(source.NodeOffset(child), node.name(), "",
                          "unexpected text \"" + text + "\"",
                          "expected only elements inside <" + std::string(node.name()) + ">");
    }
  }
  return Status::Ok();
}

std::string ElementList(std::initializer_list<std::string_view> names) {
  std::string out;
  size_t i = 0;
  for (std::string_view n : names) {
    if (i > 0) out += (i + 1 == names.size()) ? " or " : ", ";
    out += "<" + std::string(n) + ">";
    ++i;
  }
  return out;
}

}  // namespace hakit::config::internal
