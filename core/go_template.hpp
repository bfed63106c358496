#pragma once
// Go's text/template, as Flagger renders metric queries with it (flagger-behaviour.md §2.2, §6):
// template.New(name).Funcs(fns).Option("missingkey=error").Parse(text), then Execute with nil
// data. The language is Go's: text and actions, trim markers, comments, variables (declared and
// assigned), pipelines, parenthesised arguments, if / else if / else / with / else with / range
// (with break and continue) / end, define / template / block, and the builtins and, or, not,
// len, index, slice, call, print, printf, println, html, js, urlquery, eq, ne, lt, le, gt, ge,
// with printf's verbs formatted as Go's fmt formats them. Errors carry Go's wording, template
// name and position ("template: tmpl:1:3: executing \"tmpl\" at <variables>: map has no entry
// for key \"x\"").
//
// Pure: no I/O, no clock. Deliberate limits, none of which a real metric query comes near: nesting
// (parentheses, control structures, {{template}} calls) deeper than 300, an output or any one value
// over 1 MiB, a printf width or precision over 1 MiB, more than 8 MiB of values produced or copied
// (function results, variable and dot reads) and more than 100,000 evaluation steps are errors
// rather than a stack overflow, an unbounded allocation or a stall of canaryd's single thread;
// identifiers may use any printable non-ASCII character (Go allows Unicode letters only).
#include <map>
#include <string>
#include <string_view>

namespace canaryd::core {

// The FuncMap: niladic functions, as Flagger's MetricTemplateModel.TemplateFunctions are.
struct go_template_funcs {
  // Functions returning a string ({{ name }}, {{ namespace }}, ...).
  std::map<std::string, std::string, std::less<>> strings;
  // Functions returning a map[string]string ({{ variables }}, {{ variables.key }}).
  std::map<std::string, std::map<std::string, std::string>, std::less<>> maps;
};

struct go_template_result {
  std::string output;         // empty on failure (Go may have written a prefix; we do not keep it)
  std::string error;          // Go's error text; empty on success
  bool parse_failed = false;  // the error came from Parse (true) or from Execute (false)
  bool ok() const { return error.empty(); }
};

// Parses `text` as a template named `name` and executes it with nil data and missingkey=error.
go_template_result execute_go_template(std::string_view name, std::string_view text, const go_template_funcs& funcs);

// Go's strconv.Quote: a double-quoted Go string literal with Go's escapes.
std::string go_quote(std::string_view s);

}  // namespace canaryd::core
