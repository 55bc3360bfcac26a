#include "train/lesson_grade.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/files.h"
#include "train/lesson_runner.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

fs::path chapter_dir(const std::string& chapter) { return fs::path(ATTNLAB_SOURCE_DIR) / "lessons" / chapter; }

fs::path suite_path(const std::string& chapter, const std::string& suite, const std::string& impl) {
  return fs::path(build_dir()) / "lessons" / ("lesson" + chapter.substr(0, 2) + "_" + suite + "_" + impl);
}

std::vector<fs::path> sources_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && (e.path().extension() == ".cpp" || e.path().extension() == ".cu"))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The folder of a chapter's hidden tests in DIR: DIR/NN_name or DIR/NN.
fs::path hidden_folder(const std::string& hidden, const std::string& chapter) {
  for (const fs::path& p : {fs::path(hidden) / chapter, fs::path(hidden) / chapter.substr(0, 2)})
    if (fs::is_directory(p)) return p;
  return {};
}

// Builds lessonNN_hidden_{student,solution} from the teacher's files: the
// build has one such target per chapter (lessons/CMakeLists.txt), compiled
// from build/lessons/hidden/lessonNN_hidden.cpp, which this writes to
// include the teacher's files. Same flags as the chapter's own suites, and
// no reconfiguring of the student's build.
void build_hidden(const std::string& chapter, const std::vector<fs::path>& files) {
  const std::string num = chapter.substr(0, 2);
  std::string text = "// Written by `attnlab lesson grade --hidden`: the teacher's tests of chapter " + chapter + ".\n";
  for (const fs::path& f : files) text += "#include \"" + fs::canonical(f).string() + "\"\n";
  const fs::path wrapper = fs::path(build_dir()) / "lessons" / "hidden" / ("lesson" + num + "_hidden.cpp");
  check(fs::exists(wrapper), "lesson grade: --hidden: this build has no hidden-test target for ", chapter, " (",
        wrapper.string(), " is missing); configure it again with cmake");
  if (read_file(wrapper.string()) != text) write_text_atomically(wrapper.string(), text);  // unchanged: no rebuild
  ChildLimits build_limits;
  build_limits.timeout_s = 600;
  const ChildResult r = run_limited({ATTNLAB_CMAKE_COMMAND, "--build", build_dir(), "--target",
                                     "lesson" + num + "_hidden_student", "lesson" + num + "_hidden_solution"},
                                    build_limits);
  if (r.timed_out || r.exit_code != 0) {
    std::fprintf(stderr, "%s\n", last_chars(r.output, 6000).c_str());
    fail("lesson grade: --hidden: the hidden tests of ", chapter, " do not build against the student's library ",
         "(the compiler's output is above)");
  }
}

}  // namespace

void check_not_the_solution(const std::string& chapter, const std::string& source_dir, const std::string& build) {
  const fs::path dir = fs::path(source_dir) / "lessons" / chapter;
  // Whitespace aside, so that re-indenting a copy does not pass.
  auto squeeze = [](const std::string& text) {
    std::string s;
    for (const char c : text)
      if (!std::isspace(static_cast<unsigned char>(c))) s += c;
    return s;
  };
  for (const fs::path& sol : sources_in(dir / "solution")) {
    const fs::path mine = dir / sol.filename();
    if (fs::exists(mine) && squeeze(read_file(mine.string())) == squeeze(read_file(sol.string())))
      fail("lesson grade: ", chapter, ": lessons/", chapter, "/", sol.filename().string(),
           " has the reference solution's text (solution/", sol.filename().string(),
           "); refusing to grade the solution as a student's work");
  }
  // The build's own record: which files went into the student's library.
  const fs::path commands = fs::path(build) / "compile_commands.json";
  if (!fs::exists(commands)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(commands.string()));
  } catch (const nlohmann::json::exception&) {
    return;  // not ours to judge; the content check above still holds
  }
  const std::string target = "lesson" + chapter.substr(0, 2) + "_student.dir";
  const std::string solution_dir = (dir / "solution").string() + "/";
  for (const auto& entry : j) {
    const std::string file = entry.value("file", ""), out = entry.value("output", entry.value("command", ""));
    if (contains(out, target) && file.rfind(solution_dir, 0) == 0)
      fail("lesson grade: ", chapter, ": the build compiles ", file, " into the student's library (",
           target.substr(0, target.size() - 4), ", per ", commands.string(),
           "); refusing to grade the solution as a student's work");
  }
}

void check_grade_options(const GradeOptions& o) {
  check(o.timeout_s > 0 && o.timeout_s <= 3600, "lesson grade: --timeout-s must be in (0, 3600] seconds, got ",
        o.timeout_s);
  // Below 256 MB, OpenBLAS cannot get its work buffer and retries forever:
  // every test would time out instead of running.
  check(o.memory_mb == 0 || (o.memory_mb >= 256 && o.memory_mb <= 1048576),
        "lesson grade: --memory-mb must be 0 (no limit) or in 256..1048576, got ", o.memory_mb);
  check(o.format == "table" || o.format == "gradescope" || o.format == "junit",
        "lesson grade: --format must be table, gradescope or junit, got '", o.format, "'");
  for (const std::string& c : o.chapters) find_chapter(c);
  if (!o.output.empty()) {
    const fs::path parent = fs::absolute(o.output).parent_path();
    check(fs::is_directory(parent), "lesson grade: --output '", o.output, "': the folder ", parent.string(),
          " does not exist");
    check(!fs::is_directory(o.output), "lesson grade: --output '", o.output, "' is a folder; give a file name ",
          "such as results.json");
  }
  if (!o.hidden.empty()) {
    check(fs::is_directory(o.hidden), "lesson grade: --hidden '", o.hidden, "': no such folder");
    int chapters = 0;
    for (const auto& e : fs::directory_iterator(o.hidden)) {
      if (!e.is_directory()) continue;
      const std::string name = e.path().filename().string();
      std::string found;
      try {
        found = find_chapter(name);
      } catch (const Error&) {
        fail("lesson grade: --hidden '", o.hidden, "': folder '", name, "' names no chapter (expected NN_name, ",
             "e.g. 01_softmax_attention)");
      }
      check(!sources_in(e.path()).empty(), "lesson grade: --hidden '", o.hidden, "': folder '", name,
            "' holds no .cpp test file");
      ++chapters;
    }
    check(chapters > 0, "lesson grade: --hidden '", o.hidden, "': no chapter folder in it (expected ", o.hidden,
          "/NN_name/*.cpp, e.g. ", o.hidden, "/01_softmax_attention/extra_test.cpp)");
  }
}

int lesson_grade(const GradeOptions& o) {
  check_grade_options(o);
  std::vector<std::string> chapters;
  for (const std::string& c : o.chapters) chapters.push_back(find_chapter(c));
  if (chapters.empty()) chapters = lesson_chapters();
  const std::string impl = o.solution ? "solution" : "student";

  // Every check before any test runs: weights readable, the student's code
  // really the student's, the build not older than the code.
  std::vector<GradingWeights> weights;
  for (const std::string& c : chapters) {
    weights.push_back(load_grading_weights((chapter_dir(c) / "grading.json").string()));
    if (o.solution || !fs::exists(suite_path(c, "basic", impl))) continue;
    check_not_the_solution(c, ATTNLAB_SOURCE_DIR, build_dir());
    const auto built = fs::last_write_time(suite_path(c, "basic", impl));
    for (const fs::path& src : sources_in(chapter_dir(c)))
      check(fs::last_write_time(src) <= built, "lesson grade: ", c, ": ", src.filename().string(),
            " changed after the suites were built; build again (cmake --build --preset student) before grading");
  }

  ChildLimits limits;
  limits.timeout_s = o.timeout_s;
  limits.memory_mb = o.memory_mb;
  GradeReport report;
  report.note = str("attnlab lesson grade: ", o.solution ? "the reference solution (teacher's check)" : "the student's code",
                    ", each test alone, limits ", o.timeout_s, " s and ",
                    o.memory_mb == 0 ? std::string("no memory limit")
                    : memory_limit_supported() ? str(o.memory_mb, " MB")
                                               : std::string("no memory limit (a sanitizer build cannot enforce one)"),
                    " per test");
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < chapters.size(); ++i) {
    const std::string& c = chapters[i];
    ChapterResult cr{c, "graded", {}};
    for (const char* suite : {"basic", "advanced"}) {
      const fs::path prog = suite_path(c, suite, impl);
      if (!fs::exists(prog)) continue;
      const fs::path twin = suite_path(c, suite, "solution");
      const std::vector<TestResult> r =
          grade_program(prog.string(), suite, weights[i], limits, fs::exists(twin) ? twin.string() : "");
      cr.tests.insert(cr.tests.end(), r.begin(), r.end());
    }
    if (cr.tests.empty()) {
      cr.state = "not built";
      report.chapters.push_back(cr);
      continue;
    }
    const fs::path hidden = o.hidden.empty() ? fs::path() : hidden_folder(o.hidden, c);
    if (!hidden.empty()) {
      build_hidden(c, sources_in(hidden));
      const std::vector<TestResult> r = grade_program(suite_path(c, "hidden", impl).string(), "hidden", weights[i],
                                                      limits, suite_path(c, "hidden", "solution").string());
      cr.tests.insert(cr.tests.end(), r.begin(), r.end());
    }
    mark_not_started(cr);
    report.chapters.push_back(cr);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::string text = o.format == "gradescope" ? report_gradescope(report)
                           : o.format == "junit"    ? report_junit(report)
                                                    : report_table(report);
  if (o.output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    write_text_atomically(o.output, text);
    std::printf("lesson grade: %.2f / %.2f points; %s report written to %s\n", report.points(), report.max_points(),
                o.format.c_str(), o.output.c_str());
  }
  return 0;
}

}  // namespace attn
