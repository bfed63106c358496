// Go's text/template as Flagger renders metric queries: every case's expectation is what Go
// (1.24) prints for template.New("tmpl").Funcs(flagger).Option("missingkey=error").Parse(text)
// executed with nil data — derived from Go's documented semantics, its exec_test.go and
// parse_test.go, and the source of text/template, fmt and strconv.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/go_template.hpp"
#include "core/metric_query.hpp"

using namespace canaryd::core;

namespace {

go_template_funcs flagger_funcs() {
  go_template_funcs f;
  f.strings = {{"name", "c"},       {"namespace", "ns"}, {"target", "app"},  {"service", "svc"},
               {"ingress", "ing"},  {"route", "rt"},     {"interval", "1m"}};
  f.maps["variables"] = {{"direction", "inbound"}, {"code", "5.*"}, {"empty", ""}, {"n", "3"}};
  return f;
}

struct render_case {
  const char* text;
  const char* output;  // nullptr when the render fails
  const char* error;   // Go's error text when it fails
};

void check_cases(const std::vector<render_case>& cases) {
  const go_template_funcs funcs = flagger_funcs();
  for (const render_case& c : cases) {
    CAPTURE(c.text);
    go_template_result r = execute_go_template("tmpl", c.text, funcs);
    if (c.output) {
      CHECK(r.error == "");
      CHECK(r.output == c.output);
    } else {
      CHECK(r.output == "");
      CHECK(r.error == c.error);
    }
  }
}

}  // namespace

TEST_CASE("text, actions, trim markers and comments render as Go's") {
  check_cases({
      {"plain text, no actions", "plain text, no actions", nullptr},
      {"", "", nullptr},
      {"{{ namespace }}", "ns", nullptr},
      {"{{namespace}}/{{target}}", "ns/app", nullptr},
      {"a {{- target }}", "aapp", nullptr},
      {"{{ target -}} b", "appb", nullptr},
      {"a \n\t {{- target -}} \n b", "aappb", nullptr},
      {"{{-3}}", "-3", nullptr},  // a negative number, not a trim marker
      {"x {{-3}}", "x -3", nullptr},
      {"a {{/* c */}} b", "a  b", nullptr},
      {"a {{- /* c */ -}} b", "ab", nullptr},
      {"{{/* a\nmultiline comment */}}x", "x", nullptr},
      {"{{- /* only a comment */ -}}", "", nullptr},
      {"{{\n  target\n}}", "app", nullptr},  // newlines inside an action are spaces
      {"{{/* c */ }}", nullptr, "template: tmpl:1: comment ends before closing delimiter"},
      {"{{/* c", nullptr, "template: tmpl:1: unclosed comment"},
      {"{{ /* c */ }}", nullptr, "template: tmpl:1: unexpected \"/\" in command"},
      {"{{ target", nullptr, "template: tmpl:1: unclosed action"},
      {"{{ target\n", nullptr, "template: tmpl:2: unclosed action started at tmpl:1"},
      {"{{ }}", nullptr, "template: tmpl:1: missing value for command"},
      {"{{}}", nullptr, "template: tmpl:1: missing value for command"},
      {"{{ deployment }}", nullptr, "template: tmpl:1: function \"deployment\" not defined"},
      {"line one\n{{ deployment }}", nullptr, "template: tmpl:2: function \"deployment\" not defined"},
      {"{{ end }}", nullptr, "template: tmpl:1: unexpected {{end}}"},
      {"{{ else }}", nullptr, "template: tmpl:1: unexpected {{else}}"},
      {"{{ if true }}x", nullptr, "template: tmpl:1: unexpected EOF"},
      {"{{ target} }}", nullptr, "template: tmpl:1: bad character U+007D '}'"},
      {"{{ target ! }}", nullptr, "template: tmpl:1: unexpected \"!\" in operand"},
      {"{{ \x01 }}", nullptr, "template: tmpl:1: unrecognized character in action: U+0001"},
  });
}

TEST_CASE("Flagger's functions and variables, with missingkey=error") {
  check_cases({
      {R"(sum(rate(x{a="{{ name }}",b="{{ namespace }}",c=~"{{ target }}",d="{{ service }}",e="{{ ingress }}",f="{{ route }}",g="{{ variables.direction }}"}[{{ interval }}])))",
       R"(sum(rate(x{a="c",b="ns",c=~"app",d="svc",e="ing",f="rt",g="inbound"}[1m])))", nullptr},
      {"{{ variables }}", "map[code:5.* direction:inbound empty: n:3]", nullptr},
      {"{{ index variables \"direction\" }}", "inbound", nullptr},
      {"{{ index variables \"missing\" }}", "", nullptr},  // index ignores missingkey
      {"{{ variables.missing }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <variables>: map has no entry for key \"missing\""},
      {"a\n  {{ variables.nope }}", nullptr,
       "template: tmpl:2:5: executing \"tmpl\" at <variables>: map has no entry for key \"nope\""},
      {"{{ variables.direction 1 }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <variables>: direction is not a method but has arguments"},
      {"{{ variables.direction.x }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <variables>: can't evaluate field x in type string"},
      {"{{ name.x }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <name>: can't evaluate field x in type string"},
      {"{{ .Values }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <.Values>: nil data; no entry for key \"Values\""},
      {"{{ $.Values.x }}", nullptr,
       "template: tmpl:1:4: executing \"tmpl\" at <$.Values.x>: nil data; no entry for key \"Values\""},
      {"{{ target \"x\" }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <target>: wrong number of args for target: want 0 got 1"},
      {"{{ target | name }}", nullptr,
       "template: tmpl:1:12: executing \"tmpl\" at <name>: wrong number of args for name: want 0 got 1"},
      {"{{ . }}", "<no value>", nullptr},
      {"{{ $ }}", "<no value>", nullptr},
      {"{{ (variables).code }}", "5.*", nullptr},
  });
}

TEST_CASE("variables are declared, assigned and scoped as in Go") {
  check_cases({
      {"{{ $x := target }}{{ $x }}", "app", nullptr},
      {"{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2", nullptr},
      {"{{ $x := . }}{{ $x }}", "<no value>", nullptr},
      {R"({{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}route=~"{{ $route }}")",
       R"(route=~"kube(ew)?_ns__ing_canary__.*__svc_canary(_[0-9]+)?")", nullptr},
      {"{{ $x := \"a\" }}{{ if true }}{{ $x = \"b\" }}{{ end }}{{ $x }}", "b", nullptr},
      {"{{ if true }}{{ $x := 1 }}{{ $x }}{{ end }}", "1", nullptr},
      {"{{ with $x := target }}{{ $x }}{{ . }}{{ end }}", "appapp", nullptr},
      {"{{ $x }}", nullptr, "template: tmpl:1: undefined variable \"$x\""},
      {"{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", nullptr, "template: tmpl:1: undefined variable \"$x\""},
      {"{{ $x = 1 }}", nullptr, "template: tmpl:1:8: executing \"tmpl\" at <1>: undefined variable: $x"},
      {"{{ $a, $b := 1 }}", nullptr, "template: tmpl:1: too many declarations in command"},
      {"{{ $x := 1 }}{{ $x 2 }}", nullptr,
       "template: tmpl:1:16: executing \"tmpl\" at <$x>: can't give argument to non-function $x"},
  });
}

TEST_CASE("pipelines and parenthesised arguments") {
  check_cases({
      {"{{ target | printf \"%s-x\" }}", "app-x", nullptr},
      {"{{ \"a\" | printf \"%s%s\" \"b\" }}", "ba", nullptr},  // the piped value is the last argument
      {"{{ \"x\" | printf }}", "x", nullptr},
      {"{{ printf \"%s\" \"x\" | printf \"%s-%s\" \"y\" }}", "y-x", nullptr},
      {"{{ name | len }}", "1", nullptr},
      {"{{ printf \"%d\" (len variables) }}", "4", nullptr},
      {"{{ (printf \"%s\" target) }}", "app", nullptr},
      {"{{ printf \"%s:%s\" (printf \"%s\" (index variables \"n\")) target }}", "3:app", nullptr},
      {"{{ 3 | printf \"%d\" }}", "3", nullptr},
      {"{{ name | 3 }}", nullptr, "template: tmpl:1: non executable command in pipeline stage 2"},
      {"{{ | name }}", nullptr, "template: tmpl:1: unexpected \"|\" in command"},
      {"{{ printf \"%s\" (target }}", nullptr, "template: tmpl:1: unclosed left paren"},
      {"{{ target) }}", nullptr, "template: tmpl:1: unexpected right paren"},
      {"{{ 1 2 }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <1>: can't give argument to non-function 1"},
      {"{{ nil }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <nil>: nil is not a command"},
      {"{{ \"x\".y }}", nullptr, "template: tmpl:1: unexpected . after term \"\\\"x\\\"\""},
  });
}

TEST_CASE("if, else if, else, with and else with") {
  check_cases({
      {"{{ if eq namespace \"ns\" }}yes{{ else }}no{{ end }}", "yes", nullptr},
      {"{{ if eq namespace \"other\" }}yes{{ else }}no{{ end }}", "no", nullptr},
      {"{{ if eq target \"x\" }}1{{ else if eq target \"app\" }}2{{ else }}3{{ end }}", "2", nullptr},
      {"{{ if false }}1{{ else if false }}2{{ else }}3{{ end }}", "3", nullptr},
      {"{{ if variables.empty }}set{{ else }}empty{{ end }}", "empty", nullptr},
      {"{{ if variables }}has{{ end }}", "has", nullptr},
      {"{{ if . }}x{{ else }}nil{{ end }}", "nil", nullptr},
      {"{{ if 0 }}a{{ else }}b{{ end }}", "b", nullptr},
      {"{{ if 0.0 }}a{{ else }}b{{ end }}", "b", nullptr},
      {"{{ if \"\" }}a{{ else }}b{{ end }}", "b", nullptr},
      {"{{ if and (eq namespace \"ns\") (ne target \"x\") }}both{{ end }}", "both", nullptr},
      {"{{ with variables.direction }}dir={{ . }}{{ end }}", "dir=inbound", nullptr},
      {"{{ with variables.empty }}x{{ else }}none{{ end }}", "none", nullptr},
      {"{{ with \"\" }}x{{ else with target }}{{ . }}{{ end }}", "app", nullptr},
      {"{{ if true }}a{{ else }}b{{ else }}c{{ end }}", nullptr, "template: tmpl:1: expected end; found {{else}}"},
      {"{{ if }}x{{ end }}", nullptr, "template: tmpl:1: missing value for if"},
  });
}

TEST_CASE("range over maps and integers, with break and continue") {
  check_cases({
      {"{{ range $k, $v := variables }}{{ $k }}={{ $v }};{{ end }}", "code=5.*;direction=inbound;empty=;n=3;", nullptr},
      {"{{ range variables }}[{{ . }}]{{ end }}", "[5.*][inbound][][3]", nullptr},
      {"{{ range $v := variables }}{{ $v }},{{ end }}", "5.*,inbound,,3,", nullptr},
      {"{{ range 3 }}{{ . }}{{ end }}", "012", nullptr},
      {"{{ range $i := 3 }}{{ $i }}{{ end }}", "012", nullptr},
      {"{{ range 0 }}x{{ else }}empty{{ end }}", "empty", nullptr},
      {"{{ range . }}x{{ else }}nil{{ end }}", "nil", nullptr},
      {"{{ range 5 }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}", "01", nullptr},
      {"{{ range 5 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}", "0134", nullptr},
      {"{{ range target }}{{ end }}", nullptr, "template: tmpl:1:9: executing \"tmpl\" at <target>: range can't iterate over app"},
      {"{{ break }}", nullptr, "template: tmpl:1: {{break}} outside {{range}}"},
      {"{{ range $k, $v := variables }}{{ end }}{{ $k }}", nullptr, "template: tmpl:1: undefined variable \"$k\""},
      {"{{ range $a, $b, $c := variables }}{{ end }}", nullptr, "template: tmpl:1: too many declarations in range"},
  });
}

TEST_CASE("the builtins") {
  check_cases({
      {"{{ and 1 0 2 }}", "0", nullptr},
      {"{{ and 1 2 }}", "2", nullptr},
      {"{{ or 0 \"\" \"x\" }}", "x", nullptr},
      {"{{ or 0 \"\" }}", "", nullptr},
      {"{{ and 0 (index variables 1) }}", "0", nullptr},  // and stops at the first false argument
      {"{{ not 0 }}", "true", nullptr},
      {"{{ not target }}", "false", nullptr},
      {"{{ len variables }}", "4", nullptr},
      {"{{ len \"h\xC3\xA9llo\" }}", "6", nullptr},  // bytes
      {"{{ index \"abc\" 1 }}", "98", nullptr},         // a byte
      {"{{ slice \"abcdef\" 1 3 }}", "bc", nullptr},
      {"{{ slice \"abcdef\" 4 }}", "ef", nullptr},
      {"{{ print 1 2 \"a\" 3 }}", "1 2a3", nullptr},
      {"{{ print \"a\" \"b\" }}", "ab", nullptr},
      {"{{ println target 1 }}", "app 1\n", nullptr},
      {"{{ print . }}", "<nil>", nullptr},
      {"{{ print nil }}", "<nil>", nullptr},
      {"{{ html \"<a href=\\\"x\\\">&'\" }}", "&lt;a href=&#34;x&#34;&gt;&amp;&#39;", nullptr},
      {"{{ html . }}", "&lt;no value&gt;", nullptr},
      {"{{ js \"it's <b>\\\"x\\\"</b> = 1\" }}", "it\\'s \\u003Cb\\u003E\\\"x\\\"\\u003C/b\\u003E \\u003D 1", nullptr},
      {"{{ urlquery \"a b&c=d/\xC3\xA9\" }}", "a+b%26c%3Dd%2F%C3%A9", nullptr},
      {"{{ urlquery variables.code }}", "5.%2A", nullptr},
      {"{{ eq 1 1 }}", "true", nullptr},
      {"{{ eq \"a\" \"b\" \"a\" }}", "true", nullptr},
      {"{{ eq target \"app\" }}", "true", nullptr},
      {"{{ eq . nil }}", "true", nullptr},
      {"{{ index \"abc\" 1 | eq 98 }}", "true", nullptr},  // int and uint8 compare by value
      {"{{ ne 1 2 }}", "true", nullptr},
      {"{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1 2 }}", "true true true false", nullptr},
      {"{{ lt 1.5 2.5 }}", "true", nullptr},
      {"{{ and }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <and>: wrong number of args for and: want at least 1 got 0"},
      {"{{ not }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <not>: wrong number of args for not: want 1 got 0"},
      {"{{ len 3 }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <len 3>: error calling len: len of type int"},
      {"{{ index variables 1 }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <index variables 1>: error calling index: value has type int; should be string"},
      {"{{ index \"abc\" 5 }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <index \"abc\" 5>: error calling index: index out of range: 5"},
      {"{{ index . 1 }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <index . 1>: error calling index: index of untyped nil"},
      {"{{ slice \"abc\" 2 1 }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <slice \"abc\" 2 1>: error calling slice: invalid slice index: 2 > 1"},
      {"{{ eq 1 \"1\" }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <eq 1 \"1\">: error calling eq: incompatible types for comparison: int and string"},
      {"{{ eq 1 }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <eq 1>: error calling eq: missing argument for comparison"},
      {"{{ lt true false }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <lt true false>: error calling lt: invalid type for comparison"},
      {"{{ eq }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <eq>: wrong number of args for eq: want at least 1 got 0"},
      {"{{ call target }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <call target>: error calling call: non-function target of type string"},
  });
}

TEST_CASE("printf formats as Go's fmt") {
  check_cases({
      {"{{ printf \"%s/%s\" namespace target }}", "ns/app", nullptr},
      {"{{ printf \"%d\" 42 }}", "42", nullptr},
      {"{{ printf \"%5d|%-5d|%05d\" 42 42 42 }}", "   42|42   |00042", nullptr},
      {"{{ printf \"%x %X %o %b\" 255 255 8 5 }}", "ff FF 10 101", nullptr},
      {"{{ printf \"%#x %#o %O\" 255 8 8 }}", "0xff 010 0o10", nullptr},
      {"{{ printf \"%x\" -255 }}", "-ff", nullptr},
      {"{{ printf \"%+d|% d\" 5 5 }}", "+5| 5", nullptr},
      {"{{ printf \"%q\" target }}", "\"app\"", nullptr},
      {"{{ printf \"%q\" \"a\\\"b\\n\" }}", "\"a\\\"b\\n\"", nullptr},
      {"{{ printf \"%#q\" \"ab\" }}", "`ab`", nullptr},
      {"{{ printf \"%v %v %v\" 1 1.5 true }}", "1 1.5 true", nullptr},
      {"{{ printf \"%t\" true }}", "true", nullptr},
      {"{{ printf \"%f %.2f %e %g\" 1.5 3.14159 1234.5678 0.000012 }}", "1.500000 3.14 1.234568e+03 1.2e-05", nullptr},
      {"{{ printf \"%8.3f|\" 3.14159 }}", "   3.142|", nullptr},
      {"{{ printf \"%08.3f\" -3.14159 }}", "-003.142", nullptr},
      {"{{ printf \"%6.2f%%\" 99.5 }}", " 99.50%", nullptr},
      {"{{ printf \"%.3g\" 1234.5678 }}", "1.23e+03", nullptr},
      {"{{ printf \"%v\" 1e6 }}", "1e+06", nullptr},
      {"{{ printf \"%.0f\" 2.5 }}", "2", nullptr},
      {"{{ printf \"%10s|%-10s|\" \"ab\" \"ab\" }}", "        ab|ab        |", nullptr},
      {"{{ printf \"%.2s\" \"abcdef\" }}", "ab", nullptr},
      {"{{ printf \"%x\" \"hi\" }}", "6869", nullptr},
      {"{{ printf \"% x\" \"hi\" }}", "68 69", nullptr},
      {"{{ printf \"%c%c\" 72 105 }}", "Hi", nullptr},
      {"{{ printf \"%U %#U\" 65 65 }}", "U+0041 U+0041 'A'", nullptr},
      {"{{ printf \"%q\" 'x' }}", "'x'", nullptr},
      {"{{ printf \"%[2]s %[1]s\" \"a\" \"b\" }}", "b a", nullptr},
      {"{{ printf \"%*d|%-*d|\" 4 7 3 7 }}", "   7|7  |", nullptr},
      {"{{ printf \"%v\" variables }}", "map[code:5.* direction:inbound empty: n:3]", nullptr},
      {"{{ printf \"%#v\" variables }}", "map[string]string{\"code\":\"5.*\", \"direction\":\"inbound\", \"empty\":\"\", \"n\":\"3\"}", nullptr},
      {"{{ printf \"%T %T %T %T %T\" 1 \"s\" 1.5 variables . }}", "int string float64 map[string]string <nil>", nullptr},
      {"{{ printf \"%s\" 42 }}", "%!s(int=42)", nullptr},
      {"{{ printf \"%d\" \"x\" }}", "%!d(string=x)", nullptr},
      {"{{ printf \"%d\" 1e3 }}", "%!d(float64=1000)", nullptr},
      {"{{ printf \"%s %s\" \"a\" }}", "a %!s(MISSING)", nullptr},
      {"{{ printf \"%s\" \"a\" \"b\" 3 }}", "a%!(EXTRA string=b, int=3)", nullptr},
      {"{{ printf \"%%\" }}", "%", nullptr},
      {"{{ printf \"%\" }}", "%!(NOVERB)", nullptr},
      {"{{ printf \"%!\" }}", "%!!(MISSING)", nullptr},
      {"{{ printf \"%[3]s\" \"a\" }}", "%!s(BADINDEX)", nullptr},
      {"{{ printf \"%s\" . }}", "%!s(<nil>)", nullptr},
      {"{{ printf \"%v\" nil }}", "<nil>", nullptr},
      {"{{ printf \"%d %v\" 'a' 0x1F }}", "97 31", nullptr},
      {"{{ printf 3 }}", nullptr, "template: tmpl:1:10: executing \"tmpl\" at <3>: expected string; found 3"},
      {"{{ printf . }}", nullptr, "template: tmpl:1:10: executing \"tmpl\" at <.>: invalid value; expected string"},
      {"{{ printf variables }}", nullptr,
       "template: tmpl:1:10: executing \"tmpl\" at <variables>: wrong type for value; expected string; got map[string]string"},
      {"{{ printf }}", nullptr, "template: tmpl:1:3: executing \"tmpl\" at <printf>: wrong number of args for printf: want at least 1 got 0"},
  });
}

TEST_CASE("literals: strings, raw strings, characters and Go's numbers") {
  check_cases({
      {"{{ \"a\\tb\" }}", "a\tb", nullptr},
      {"{{ `raw\\n` }}", "raw\\n", nullptr},
      {"{{ 'x' }}", "120", nullptr},
      {"{{ 1.5 }}", "1.5", nullptr},
      {"{{ 1.0 }}", "1", nullptr},
      {"{{ -7 }}", "-7", nullptr},
      {"{{ 0x10 }} {{ 0o17 }} {{ 0b101 }} {{ 017 }} {{ 1_000 }}", "16 15 5 15 1000", nullptr},
      {"{{ true }} {{ false }}", "true false", nullptr},
      {"{{ 08 }}", nullptr, "template: tmpl:1: integer overflow: \"08\""},
      {"{{ 99999999999999999999 }}", nullptr, "template: tmpl:1: integer overflow: \"99999999999999999999\""},
      {"{{ 1e400 }}", nullptr, "template: tmpl:1: illegal number syntax: \"1e400\""},
      {"{{ 18446744073709551615 }}", nullptr,
       "template: tmpl:1:3: executing \"tmpl\" at <18446744073709551615>: 18446744073709551615 overflows int"},
      {"{{ 3x }}", nullptr, "template: tmpl:1: bad number syntax: \"3x\""},
      {"{{ \"unterminated }}", nullptr, "template: tmpl:1: unterminated quoted string"},
      {"{{ `unterminated }}", nullptr, "template: tmpl:1: unterminated raw quoted string"},
      {"{{ 'ab' }}", nullptr, "template: tmpl:1: malformed character constant: 'ab'"},
      {"{{ \"\\q\" }}", nullptr, "template: tmpl:1: invalid syntax"},
      {"{{ 1:2 }}", nullptr, "template: tmpl:1: expected :="},
  });
}

TEST_CASE("parse errors from Go's own parse_test.go, with their lines") {
  check_cases({
      {"line1\n{{", nullptr, "template: tmpl:2: unclosed action"},
      {"line1\n{{\"x\"\n\"y\"\n", nullptr, "template: tmpl:4: unclosed action started at tmpl:2"},
      {"{{\n\n\n\n\n", nullptr, "template: tmpl:6: unclosed action started at tmpl:1"},
      {"line1\n{{\nx\n}}", nullptr, "template: tmpl:3: function \"x\" not defined"},
      {"{{/*\nhello\n}}", nullptr, "template: tmpl:1: unclosed comment"},
      {"{{ (1 2 3}}", nullptr, "template: tmpl:1: unclosed left paren"},
      {"{{`x`3}}", nullptr, "template: tmpl:1: unexpected \"3\" in operand"},
      {"{{a#}}", nullptr, "template: tmpl:1: bad character U+0023 '#'"},
      {"{{'a}}", nullptr, "template: tmpl:1: unterminated character constant"},
      {"{{0xi}}", nullptr, "template: tmpl:1: illegal number syntax: \"0xi\""},
      {"{{$x := 23}}{{with $x.y := 3}}{{$x 23}}{{end}}", nullptr, "template: tmpl:1: unexpected \":=\" in operand"},
      {"{{ ( ) }}", nullptr, "template: tmpl:1: missing value for parenthesized pipeline"},
      {"{{ $v := `\n` }} {{", nullptr, "template: tmpl:2: unclosed action"},
      {"{{range $k, $v}}{{end}}", nullptr, "template: tmpl:1: undefined variable \"$v\""},
      {"{{range $k,}}{{end}}", nullptr, "template: tmpl:1: missing value for range"},
      {"{{range $k, .}}{{end}}", nullptr, "template: tmpl:1: range can only initialize variables"},
      {"{{$x := 0}}{{$x +2}}", nullptr, "template: tmpl:1:13: executing \"tmpl\" at <$x>: can't give argument to non-function $x"},
      {"{{$x:=.}}{{$x+2}}", nullptr, "template: tmpl:1: bad character U+002B '+'"},
      {"{{..E}}", nullptr, "template: tmpl:1: unexpected . after term \".\""},
      {"{{12|.}}", nullptr, "template: tmpl:1: non executable command in pipeline stage 2"},
      {"{{block \"foo\"}}hello{{end}}", nullptr, "template: tmpl:1: missing value for block clause"},
      {"{{range 1}}{{else}}{{break}}{{end}}", nullptr, "template: tmpl:1: {{break}} outside {{range}}"},
      {"{{if 1}}a{{else if 2}}b{{end}}{{end}}", nullptr, "template: tmpl:1: unexpected {{end}}"},
      {"{{printf 3, 4}}", nullptr, "template: tmpl:1: unexpected \",\" in operand"},
      {"{{template $v}}", nullptr, "template: tmpl:1: unexpected \"$v\" in template clause"},
      {"{{-\n/*\nhello\n*/\n-}}", "", nullptr},
      {"x\n{{-  3   -}}\ny", "x3y", nullptr},
      {"{{ $x \n := \n 1 \n }}{{ $x }}", "1", nullptr},
      {"{{\n\"x\"\n|\nprintf\n}}", "x", nullptr},
  });
}

TEST_CASE("define, template and block") {
  check_cases({
      {"{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" target }}", "[app]", nullptr},
      {"{{ define \"x\" }}{{ namespace }}{{ end }}a{{ template \"x\" }}b", "ansb", nullptr},
      {"{{ block \"b\" target }}<{{ . }}>{{ end }}", "<app>", nullptr},
      {"{{ template \"nope\" }}", nullptr, "template: tmpl:1:12: executing \"tmpl\" at <{{template \"nope\"}}>: template \"nope\" not defined"},
      {"{{ define \"x\" }}{{ variables.q }}{{ end }}{{ template \"x\" }}", nullptr,
       "template: tmpl:1:19: executing \"x\" at <variables>: map has no entry for key \"q\""},
      {"{{ define \"x\" }}a{{ end }}{{ define \"x\" }}b{{ end }}", nullptr,
       "template: tmpl:1: template: multiple definition of template \"x\""},
  });
}

TEST_CASE("canaryd's limits turn runaway templates into errors, not crashes") {
  const go_template_funcs funcs = flagger_funcs();
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += "(";
  deep = "{{ " + deep;
  CHECK_FALSE(execute_go_template("tmpl", deep, funcs).ok());
  std::string nested;
  for (int i = 0; i < 5000; ++i) nested += "{{ if true }}";
  CHECK(execute_go_template("tmpl", nested, funcs).error == "template: tmpl:1: max expression depth exceeded");
  go_template_result loop = execute_go_template("tmpl", "{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}", funcs);
  CHECK(loop.error.find("exceeded maximum template depth") != std::string::npos);
  CHECK(execute_go_template("tmpl", "{{ range 100000000 }}{{ end }}", funcs).error.find("canaryd's limit") != std::string::npos);
  CHECK(execute_go_template("tmpl", "{{ range 10000000 }}xxxxxxxxxx{{ end }}", funcs).error.find("canaryd's limit") !=
        std::string::npos);
}

// Found by fuzz/metric_query: steps alone did not bound the time. One printf padded to millions
// of bytes, or a large variable read in a loop, cost milliseconds a step, and a 1,468-byte
// template kept canaryd's thread for minutes (fuzz/metric_query/corpus/slow-printf-width).
TEST_CASE("a printf width or precision past the output limit and too many bytes of values are errors, and fast") {
  const go_template_funcs funcs = flagger_funcs();
  CHECK(execute_go_template("tmpl", "{{ range 1000 }}{{ $x := printf \"%8888888d\" 1 }}{{ end }}", funcs).error ==
        "template: tmpl:1:25: executing \"tmpl\" at <printf \"%8888888d\" 1>: error calling printf: width 8888888 "
        "exceeds 1048576 (canaryd's limit)");
  CHECK(execute_go_template("tmpl", "{{ printf \"%.2000000f\" 1.5 }}", funcs).error.find(
            "error calling printf: precision 2000000 exceeds 1048576 (canaryd's limit)") != std::string::npos);
  // A '*' width over a million is Go's own BADWIDTH (intFromArg's tooLarge), not ours.
  CHECK(execute_go_template("tmpl", "{{ printf \"%*d\" 5000000 1 }}", funcs).output == "%!(BADWIDTH)1");
  // At the limit it is Go's behaviour: the padding is written.
  CHECK(execute_go_template("tmpl", "{{ printf \"%1048576d\" 7 | len }}", funcs).output == "1048576");
  // A megabyte read again and again: stopped at 8 MiB of values, not after 100,000 copies.
  CHECK(execute_go_template("tmpl", "{{ $x := printf \"%1000000d\" 1 }}{{ range 100000 }}{{ $y := $x }}{{ end }}", funcs).error ==
        "template: tmpl: execution exceeds 8388608 bytes of values (canaryd's limit)");
  // No value over the output limit either, so an escaping function never works on more.
  CHECK(execute_go_template("tmpl", "{{ $x := printf \"%1000000d\" 1 }}{{ printf \"%s%s\" $x $x | len }}", funcs).error ==
        "template: tmpl: a value exceeds 1048576 bytes (canaryd's limit)");
  // Real queries are nowhere near: a 100-entry range over variables with escaping stays well under.
  std::map<std::string, std::string> many;
  for (int i = 0; i < 100; ++i) many["k" + std::to_string(i)] = std::string(200, 'v');
  go_template_funcs with_vars = funcs;
  with_vars.maps["variables"] = many;
  CHECK(execute_go_template("tmpl", "{{ range $k, $v := variables }}{{ $k }}={{ $v | printf \"%q\" | js | urlquery }},{{ end }}",
                            with_vars)
            .ok());
}

TEST_CASE("render_query gives Flagger's errors around Go's") {
  query_vars v;
  v.target = "app";
  rendered_query parse = render_query("{{ deployment }}", v);
  CHECK(parse.error == "template parsing failed: template: tmpl:1: function \"deployment\" not defined");
  rendered_query exec = render_query("x{d=\"{{ variables.direction }}\"}", v);
  CHECK(exec.error == "template excution failed: template: tmpl:1:8: executing \"tmpl\" at <variables>: map has no entry for key \"direction\"");
  CHECK(exec.query.empty());
}
