#include "templates/mustache.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include <kainjow/mustache.hpp>

namespace tollgate_templates {
std::string_view embedded(std::string_view name);
}

namespace tollgate::templates {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s, std::size_t& lead) {
  lead = 0;
  while (lead < s.size() && is_space(s[lead])) ++lead;
  std::size_t end = s.size();
  while (end > lead && is_space(s[end - 1])) --end;
  return s.substr(lead, end - lead);
}

// kainjow reports positions as "... at N"; take N if present.
std::size_t offset_in_message(const std::string& msg) {
  auto at = msg.rfind(" at ");
  if (at == std::string::npos) return 0;
  return std::strtoul(msg.c_str() + at + 4, nullptr, 10);
}

std::string lower_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

kainjow::mustache::data to_data(const nlohmann::json& v) {
  using kainjow::mustache::data;
  switch (v.type()) {
    case nlohmann::json::value_t::object: {
      data d{data::type::object};
      for (const auto& [k, x] : v.items()) d.set(k, to_data(x));
      return d;
    }
    case nlohmann::json::value_t::array: {
      data d{data::type::list};
      for (const auto& x : v) d.push_back(to_data(x));
      return d;
    }
    case nlohmann::json::value_t::string: return data{v.get<std::string>()};
    case nlohmann::json::value_t::boolean: return v.get<bool>() ? data{data::type::bool_true} : data{data::type::bool_false};
    case nlohmann::json::value_t::null: return data{std::string()};
    default: return data{v.dump()};
  }
}

}  // namespace

tl::expected<std::vector<VariableUse>, TemplateError> scan(std::string_view text) {
  std::vector<VariableUse> uses;
  std::string open = "{{", close = "}}";
  std::vector<std::pair<std::string, std::size_t>> sections;
  std::size_t i = 0;
  while (true) {
    std::size_t start = text.find(open, i);
    if (start == std::string_view::npos) break;
    std::size_t body = start + open.size();
    bool triple = open == "{{" && body < text.size() && text[body] == '{';
    std::string closing = triple ? "}" + close : close;
    std::size_t end = text.find(closing, body);
    if (end == std::string_view::npos) {
      return tl::unexpected(TemplateError{start, "tag '" + open + "' is never closed with '" + closing + "'"});
    }
    std::string_view inner = text.substr(body, end - body);
    std::size_t next = end + closing.size();
    std::size_t lead = 0;
    std::string_view t = trim(inner, lead);
    std::size_t name_at = body + lead;
    char kind = t.empty() ? '\0' : t[0];
    if (triple) kind = '{';
    auto name_after_sigil = [&](std::size_t skip) {
      std::size_t l2 = 0;
      std::string_view n = trim(t.substr(std::min(skip, t.size())), l2);
      name_at = body + lead + skip + l2;
      return std::string(n);
    };
    switch (kind) {
      case '\0':
        return tl::unexpected(TemplateError{start, "empty tag '" + open + close + "'"});
      case '!':
        break;  // comment
      case '=': {
        if (t.size() < 2 || t.back() != '=') {
          return tl::unexpected(TemplateError{start, "delimiter change must look like '{{=<% %>=}}'"});
        }
        std::string_view spec = t.substr(1, t.size() - 2);
        std::size_t l2 = 0;
        spec = trim(spec, l2);
        auto sp = std::find_if(spec.begin(), spec.end(), is_space);
        std::string a(spec.begin(), sp);
        std::size_t l3 = 0;
        std::string b(trim(std::string_view(&*sp, static_cast<std::size_t>(spec.end() - sp)), l3));
        if (sp == spec.end() || a.empty() || b.empty() || a.find('=') != std::string::npos ||
            b.find('=') != std::string::npos || std::any_of(b.begin(), b.end(), is_space)) {
          return tl::unexpected(TemplateError{start, "delimiter change must look like '{{=<% %>=}}'"});
        }
        open = a;
        close = b;
        break;
      }
      case '>':
        return tl::unexpected(TemplateError{start, "partials ('" + open + ">') are not supported; inline the text"});
      case '#':
      case '^': {
        std::string name = name_after_sigil(1);
        if (name.empty()) return tl::unexpected(TemplateError{start, "section tag has no name"});
        uses.push_back({name, name_at, !sections.empty(), true});
        sections.emplace_back(name, start);
        break;
      }
      case '/': {
        std::string name = name_after_sigil(1);
        if (sections.empty()) {
          return tl::unexpected(TemplateError{start, "'" + open + "/" + name + close + "' closes a section that was never opened"});
        }
        if (sections.back().first != name) {
          return tl::unexpected(TemplateError{start, "'" + open + "/" + name + close + "' closes section '" +
                                                         sections.back().first + "', which must be closed first"});
        }
        sections.pop_back();
        break;
      }
      case '&':
      case '{': {
        std::string name = name_after_sigil(1);
        if (name.empty()) return tl::unexpected(TemplateError{start, "tag has no variable name"});
        uses.push_back({name, name_at, !sections.empty(), false});
        break;
      }
      default:
        uses.push_back({std::string(t), name_at, !sections.empty(), false});
    }
    i = next;
  }
  if (!sections.empty()) {
    return tl::unexpected(TemplateError{sections.back().second, "section '" + sections.back().first + "' is never closed"});
  }
  // The renderer must agree that the template is well formed.
  kainjow::mustache::mustache tmpl{std::string(text)};
  if (!tmpl.is_valid()) {
    return tl::unexpected(TemplateError{offset_in_message(tmpl.error_message()), lower_first(tmpl.error_message())});
  }
  return uses;
}

void VariableSet::add(std::string name) {
  for (std::size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
    groups_.insert(name.substr(0, dot));
  }
  names_.insert(std::move(name));
}

VariableSet release_variables() {
  VariableSet v;
  for (const char* n : {"host", "repo", "branch", "sha", "short_sha", "pr", "pr_title", "pr_url", "author",
                        "changed_files"}) {
    v.add(std::string("source.") + n);
  }
  v.add("pipeline.name");
  v.add("run.id");
  v.add("run.url");
  return v;
}

VariableSet standard_variables(const std::vector<std::string>& release_names) {
  VariableSet v = release_variables();
  for (const auto& r : release_names) v.add("release." + r);
  for (const char* n : {"stage.name", "stage.repo", "stage.branch", "upstream.name", "upstream.pr_url"}) v.add(n);
  return v;
}

std::vector<TemplateError> check(std::string_view text, const VariableSet& known) {
  auto uses = scan(text);
  if (!uses) return {uses.error()};
  std::vector<TemplateError> errors;
  const auto names = known.names();
  for (const auto& u : *uses) {
    if (u.name == "." && u.in_section) continue;  // the current list item
    if (known.contains(u.name)) continue;
    if (known.is_group(u.name)) {
      if (u.opens_section) continue;  // {{#source}}...{{/source}} just narrows the context
      errors.push_back({u.offset, "'" + u.name + "' is a group of values, not a value; use one of its fields, e.g. '" +
                                      *std::find_if(names.begin(), names.end(), [&](const std::string& n) {
                                        return n.rfind(u.name + ".", 0) == 0;
                                      }) +
                                      "'"});
      continue;
    }
    errors.push_back({u.offset, "unknown template variable '" + u.name + "'", u.name});
  }
  return errors;
}

tl::expected<std::string, std::string> render(std::string_view text, const nlohmann::json& vars) {
  kainjow::mustache::mustache tmpl{std::string(text)};
  if (!tmpl.is_valid()) return tl::unexpected(lower_first(tmpl.error_message()));
  tmpl.set_custom_escape([](const std::string& s) { return s; });
  std::ostringstream out;
  tmpl.render(to_data(vars), out);
  if (!tmpl.is_valid()) return tl::unexpected(lower_first(tmpl.error_message()));
  return out.str();
}

std::string_view default_template(std::string_view name) {
  return tollgate_templates::embedded(std::string(name) + ".mustache");
}

}  // namespace tollgate::templates
