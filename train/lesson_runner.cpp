#include "train/lesson_runner.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "core/error.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

fs::path binary_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

// The suites are built in the lessons/ folder of the build tree, next to
// which the attnlab binary sits.
fs::path suite_program(const std::string& chapter, const std::string& level) {
  return binary_dir() / "lessons" / ("lesson" + chapter.substr(0, 2) + "_" + level + "_student");
}

// Runs a suite quietly and reads gtest's summary lines.
SuiteStatus run_quietly(const std::string& chapter, const std::string& level) {
  SuiteStatus s{chapter, level, "not built"};
  const fs::path prog = suite_program(chapter, level);
  if (!fs::exists(prog)) return s;
  const std::string cmd = "ATTNLAB_THREADS=1 OPENBLAS_NUM_THREADS=1 '" + prog.string() + "' 2>&1";
  std::FILE* pipe = popen(cmd.c_str(), "r");
  check(pipe != nullptr, "lesson: cannot run ", prog.string());
  std::array<char, 4096> buf{};
  std::string out;
  while (std::fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  const int rc = pclose(pipe);
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(\[  PASSED  \] (\d+) test)"))) s.passed = std::stoi(m[1]);
  if (std::regex_search(out, m, std::regex(R"(\[  FAILED  \] (\d+) test)"))) s.failed = std::stoi(m[1]);
  // Every failing test that reached the stub reports NotImplemented.
  std::size_t stub_hits = 0;
  for (std::size_t p = out.find("implement "); p != std::string::npos; p = out.find("implement ", p + 1))
    ++stub_hits;
  if (rc == 0) s.state = "pass";
  else if (s.passed == 0 && stub_hits > 0) s.state = "not started";
  else s.state = "fail";
  return s;
}

}  // namespace

std::string build_dir() { return binary_dir().string(); }

std::string find_chapter(const std::string& wanted) {
  for (const std::string& c : lesson_chapters()) {
    const std::string num = c.substr(0, 2), name = c.substr(3);
    if (wanted == c || wanted == num || wanted == name ||
        (wanted.size() == 1 && "0" + wanted == num))
      return c;
  }
  std::string list;
  for (const std::string& c : lesson_chapters()) list += (list.empty() ? "" : ", ") + c;
  fail("lesson: no chapter '", wanted, "'; chapters: ", list);
}

std::vector<std::string> lesson_chapters() {
  std::vector<std::string> out;
  const fs::path root = fs::path(ATTNLAB_SOURCE_DIR) / "lessons";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.size() > 3 && std::isdigit(static_cast<unsigned char>(name[0])) &&
        std::isdigit(static_cast<unsigned char>(name[1])) && name[2] == '_')
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<SuiteStatus> lesson_status(const std::string& only) {
  std::vector<SuiteStatus> rows;
  const std::vector<std::string> chapters =
      only.empty() ? lesson_chapters() : std::vector<std::string>{find_chapter(only)};
  for (const std::string& c : chapters)
    for (const char* level : {"basic", "advanced"}) rows.push_back(run_quietly(c, level));
  return rows;
}

int lesson_test(const std::string& wanted, const std::string& level) {
  const std::string chapter = find_chapter(wanted);
  check(level.empty() || level == "basic" || level == "advanced", "lesson: --level must be basic or ",
        "advanced, got '", level, "'");
  int worst = 0;
  for (const char* l : {"basic", "advanced"}) {
    if (!level.empty() && level != l) continue;
    const fs::path prog = suite_program(chapter, l);
    check(fs::exists(prog), "lesson: '", prog.string(), "' is not built; run cmake --build --preset ",
          "student (or default) first");
    std::printf("== %s %s (your code: lessons/%s)\n", chapter.c_str(), l, chapter.c_str());
    std::fflush(stdout);
    const std::string cmd = "ATTNLAB_THREADS=1 OPENBLAS_NUM_THREADS=1 '" + prog.string() + "'";
    const int rc = std::system(cmd.c_str());
    worst = std::max(worst, rc == 0 ? 0 : 1);
  }
  return worst;
}

}  // namespace attn
