// The container image without a container engine: scripts/image check compares every shared
// library the shipped binaries load (ldd) with the files the Containerfile's runtime stages
// install (dpkg -L over their packages and dependencies), and the tools Flagger's manifests call.
// It passes on the Containerfile and fails, naming the library and its package, when a package
// is taken out of a copy.
#include <doctest/doctest.h>

#include <fstream>

#include "tests/e2e/harness.hpp"

using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

run_result check_image(const std::filesystem::path& containerfile) {
  return run({"python3", (source_root() / "scripts" / "image").string(), "check", "--containerfile",
              containerfile.string(), "--build", build_root().string()},
             300s);
}

// A copy of the Containerfile with `from` replaced by `to` (the check must see the change).
std::filesystem::path edited(const temp_dir& dir, const std::string& from, const std::string& to) {
  std::string text = read_text(source_root() / "Containerfile");
  auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  text.replace(at, from.size(), to);
  auto p = dir.path() / "Containerfile";
  std::ofstream(p) << text;
  return p;
}

}  // namespace

TEST_CASE("every library canaryd and canary-loadtester load, and wget, hey and kubectl, come from the image's packages") {
  auto r = check_image(source_root() / "Containerfile");
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("libboost_url.so.1.81.0 (libboost-url1.81.0)") != std::string::npos);
  CHECK(r.out.find("image check: 0 gap(s)") != std::string::npos);
}

TEST_CASE("a runtime stage without libboost-url1.81.0 fails the check, naming the library and its package") {
  temp_dir dir;
  auto r = check_image(edited(dir, "libboost-url1.81.0 ", ""));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("GAP /usr/local/bin/canaryd: libboost_url.so.1.81.0") != std::string::npos);
  CHECK(r.out.find("is in package libboost-url1.81.0") != std::string::npos);
}

TEST_CASE("a runtime stage without wget, or a load tester without hey, fails the check") {
  temp_dir dir;
  auto r = check_image(edited(dir, "libyaml-cpp0.7 wget", "libyaml-cpp0.7"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("GAP wget: package wget is not installed by stage runtime") != std::string::npos);
  temp_dir dir2;
  auto r2 = check_image(edited(dir2, "bash curl hey jq", "bash curl jq"));
  INFO(r2.out << r2.err);
  CHECK(r2.exit_code == 1);
  CHECK(r2.out.find("GAP hey: package hey is not installed by stage loadtester") != std::string::npos);
}
