// The grader (train/lesson_grade.h) on a fake suite
// (testcases/train/grade_fixture/fixture_suite.cpp): each test alone under
// limits, a test that loops or allocates without bound or crashes costs
// only its own points, points follow grading.json, and the reports are
// valid Gradescope JSON and well-formed JUnit XML. The real chapters are
// graded end to end by testcases/train/lesson_grade.sh.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "testcases/train/gradescope_check.h"
#include "train/lesson_grade.h"

namespace fs = std::filesystem;
using namespace attn;

namespace {

std::string fixture() { return (fs::read_symlink("/proc/self/exe").parent_path() / "grade_fixture_suite").string(); }

std::map<std::string, TestResult> by_name(const std::vector<TestResult>& results) {
  std::map<std::string, TestResult> out;
  for (const TestResult& t : results) out[t.name] = t;
  return out;
}

std::vector<TestResult> grade_fixture(const std::string& behaviour, const GradingWeights& w = {}) {
  setenv("GRADE_FIXTURE_BEHAVIOUR", behaviour.c_str(), 1);
  ChildLimits limits;
  limits.timeout_s = 1;
  limits.memory_mb = 256;
  std::vector<TestResult> r = grade_program(fixture(), "basic", w, limits);
  unsetenv("GRADE_FIXTURE_BEHAVIOUR");
  return r;
}

// The misbehaving run, once for the tests that read it (it takes the 1 s timeout).
const std::vector<TestResult>& misbehaving() {
  static const std::vector<TestResult> results = grade_fixture("misbehave");
  return results;
}

double total(const std::vector<TestResult>& r, bool max) {
  double s = 0;
  for (const TestResult& t : r) s += max ? t.max_points : t.points;
  return s;
}

// A temporary folder with files, removed at the end of the test.
struct Scratch {
  fs::path dir;
  Scratch() {
    std::string templ = (fs::temp_directory_path() / "grade-test-XXXXXX").string();
    EXPECT_NE(mkdtemp(templ.data()), nullptr);
    dir = templ;
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    fs::create_directories((dir / name).parent_path());
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(LessonGrade, EachMisbehavingTestCostsOnlyItsOwnPoints) {
  const std::vector<TestResult>& results = misbehaving();
  ASSERT_EQ(results.size(), 9u) << "the DISABLED_ test is not graded, every other one is";
  const auto r = by_name(results);
  EXPECT_EQ(r.at("Fixture.Passes").outcome, Outcome::passed);
  EXPECT_EQ(r.at("Fixture.PassesToo").outcome, Outcome::passed);
  EXPECT_EQ(r.at("Fixture.Passes").points, 1.0);
  EXPECT_EQ(r.at("Fixture.Fails").outcome, Outcome::failed);
  EXPECT_NE(r.at("Fixture.Fails").message.find("divide by the row's sum"), std::string::npos)
      << "the student's message reaches the report: " << r.at("Fixture.Fails").message;
  EXPECT_EQ(r.at("Fixture.Loops").outcome, Outcome::timed_out);
  EXPECT_LT(r.at("Fixture.Loops").seconds, 5.0) << "the endless loop is killed at the 1 s limit";
  EXPECT_NE(r.at("Fixture.Loops").message.find("--timeout-s 1"), std::string::npos) << r.at("Fixture.Loops").message;
  if (memory_limit_supported()) {
    EXPECT_EQ(r.at("Fixture.Allocates").outcome, Outcome::out_of_memory) << r.at("Fixture.Allocates").message;
    EXPECT_NE(r.at("Fixture.Allocates").message.find("--memory-mb 256"), std::string::npos);
  } else {
    EXPECT_EQ(r.at("Fixture.Allocates").outcome, Outcome::skipped);
  }
  EXPECT_EQ(r.at("Fixture.Segfaults").outcome, Outcome::crashed);
  EXPECT_EQ(r.at("Fixture.Aborts").outcome, Outcome::crashed);
  if (memory_limit_supported()) {  // a sanitizer turns a segfault into its own report and exit status
    EXPECT_NE(r.at("Fixture.Segfaults").message.find("SIGSEGV"), std::string::npos) << r.at("Fixture.Segfaults").message;
  }
  EXPECT_NE(r.at("Fixture.Aborts").message.find("SIGABRT"), std::string::npos) << r.at("Fixture.Aborts").message;
  EXPECT_EQ(r.at("Fixture.ExitsEarly").outcome, Outcome::crashed);
  EXPECT_NE(r.at("Fixture.ExitsEarly").message.find("in the middle of the test"), std::string::npos)
      << r.at("Fixture.ExitsEarly").message;
  EXPECT_EQ(r.at("Fixture.Skips").outcome, Outcome::skipped);
  EXPECT_EQ(r.at("Fixture.Skips").max_points, 0.0) << "a skipped test counts neither way";
  for (const TestResult& t : results) {
    if (t.outcome != Outcome::passed) {
      EXPECT_EQ(t.points, 0.0) << t.name;
    }
  }
  EXPECT_EQ(total(results, false), 2.0);
}

TEST(LessonGrade, OneBrokenTestDropsTheScoreByExactlyItsWeight) {
  Scratch s;
  const GradingWeights w = load_grading_weights(
      s.write("grading.json", R"({"suites": {"basic": 10}, "tests": [{"pattern": "Fixture.F*", "points": 3}]})"));
  const std::vector<TestResult> good = grade_fixture("pass", w), broken = grade_fixture("one_broken", w);
  // Fixture.Fails is worth 3 points, the other eight share 10; one of them
  // is skipped, and its share is not counted.
  EXPECT_DOUBLE_EQ(total(good, true), 3.0 + 7 * (10.0 / 8));
  EXPECT_DOUBLE_EQ(total(good, false), total(good, true));
  EXPECT_DOUBLE_EQ(total(broken, true), total(good, true));
  EXPECT_DOUBLE_EQ(total(good, false) - total(broken, false), 3.0);
  EXPECT_EQ(by_name(broken).at("Fixture.Fails").outcome, Outcome::failed);
}

TEST(GradingWeights, DefaultsPatternsAndSharedPoints) {
  const std::vector<std::string> names = {"Softmax.A", "Mistakes.B", "Mistakes.C", "Masks.D"};
  EXPECT_EQ(test_points(GradingWeights{}, "basic", names), std::vector<double>(4, 1.0)) << "no grading.json: 1 each";
  Scratch s;
  const GradingWeights w =
      load_grading_weights(s.write("g.json", R"({"tests": [{"pattern": "Mistakes.*", "points": 5}]})"));
  EXPECT_EQ(test_points(w, "basic", names), (std::vector<double>{20, 5, 5, 20})) << "basic's default 40, shared";
  EXPECT_EQ(test_points(w, "advanced", {"X.Y", "X.Z"}), (std::vector<double>{30, 30}));
  EXPECT_EQ(test_points(w, "hidden", {"H.A"}), (std::vector<double>{20}));
  EXPECT_TRUE(wildcard_match("Mistakes.*", "Mistakes.ScaleBySqrtD"));
  EXPECT_TRUE(wildcard_match("*.Grad?heck*", "Advanced.GradcheckSmall"));
  EXPECT_FALSE(wildcard_match("Mistakes.*", "Softmax.Mistakes"));
  EXPECT_FALSE(wildcard_match("A?", "A"));
}

TEST(GradingWeights, BadFileNamesTheFileAndTheField) {
  Scratch s;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"suites\": {\"basic\": \"forty\"}}", "g.json: suites.basic: expected a number of points in 0..1000000, got \"forty\""},
      {"{\"suites\": {\"basics\": 40}}", "g.json: suites.basics: no such suite; expected basic, advanced or hidden"},
      {"{\"test\": []}", "g.json: test: unknown field; expected suites or tests"},
      {"{\"tests\": [{\"pattern\": \"\", \"points\": 1}]}", "g.json: tests[0].pattern: expected a non-empty"},
      {"{\"tests\": [{\"pattern\": \"A.*\", \"points\": -1}]}", "g.json: tests[0].points: expected a number of points"},
      {"{\"tests\": [{\"pattern\": \"A.*\"}]}", "g.json: tests[0]: expected {\"pattern\""},
      {"{\"suites\": ", "g.json: not valid JSON"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string path = s.write("g.json", text);
    const std::string msg = error_of([&path] { load_grading_weights(path); });
    EXPECT_NE(msg.find(expected), std::string::npos) << text << " -> " << msg;
  }
}

TEST(LessonGrade, GradescopeResultsPassOurSchemaCheck) {
  GradeReport report;
  report.note = "test";
  report.chapters.push_back({"01_softmax_attention", "graded", misbehaving()});
  TestResult hidden;
  hidden.suite = "hidden";
  hidden.name = "Hidden.Extra";
  hidden.outcome = Outcome::passed;
  hidden.points = hidden.max_points = 2;
  report.chapters[0].tests.push_back(hidden);
  const nlohmann::json j = nlohmann::json::parse(report_gradescope(report));
  EXPECT_EQ(attn_test::gradescope_problems(j), std::vector<std::string>{});
  EXPECT_DOUBLE_EQ(j["score"].get<double>(), 4.0);
  EXPECT_EQ(j["tests"].size(), 10u);
  EXPECT_EQ(j["tests"].back()["visibility"], "after_due_date") << "hidden tests show after the due date";
  EXPECT_EQ(j["tests"][0]["visibility"], "visible");
  bool loops_named = false;
  for (const auto& t : j["tests"])
    if (t["name"] == "01_softmax_attention / basic / Fixture.Loops")
      loops_named = t["output"].get<std::string>().rfind("timed out: ", 0) == 0;
  EXPECT_TRUE(loops_named) << "the endless loop is reported by name, as timed out";
  // The checker itself catches what it must.
  nlohmann::json bad = j;
  bad["tests"][0].erase("max_score");
  bad["tests"][1]["visibility"] = "later";
  bad["tests"][2]["maxscore"] = 1;
  bad["score"] = 99;
  EXPECT_EQ(attn_test::gradescope_problems(bad).size(), 4u);
}

TEST(LessonGrade, JunitReportEscapesAndCountsEveryTest) {
  GradeReport report;
  TestResult t;
  t.suite = "basic";
  t.name = "A.B";
  t.message = "expected <1> & got \"2\"\x01";
  report.chapters.push_back({"01_x", "graded", {t}});
  t.name = "A.C";
  t.outcome = Outcome::timed_out;
  report.chapters[0].tests.push_back(t);
  t.name = "A.D";
  t.outcome = Outcome::passed;
  report.chapters[0].tests.push_back(t);
  const std::string xml = report_junit(report);
  EXPECT_NE(xml.find("tests=\"3\" failures=\"1\" errors=\"1\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("<failure message=\"expected &lt;1&gt; &amp; got &quot;2&quot;?\" type=\"failed\">"),
            std::string::npos) << xml;
  EXPECT_NE(xml.find("<error message=\"expected &lt;1&gt;"), std::string::npos);
  EXPECT_NE(xml.find("type=\"timed_out\""), std::string::npos);
  EXPECT_NE(xml.find("<testcase name=\"A.D\" classname=\"01_x.basic\""), std::string::npos);
  EXPECT_EQ(xml.find('\x01'), std::string::npos);
}

TEST(LessonGrade, StubChapterIsNotStarted) {
  TestResult stub;
  stub.name = "Softmax.A";
  stub.message = "unknown file: Failure\nC++ exception with description \"01 softmax_attention: implement softmax in "
                 "lessons/01_softmax_attention/softmax_attention.cpp\" thrown in the test body.";
  ChapterResult c{"01_softmax_attention", "graded", {stub, stub}};
  EXPECT_TRUE(mark_not_started(c));
  EXPECT_EQ(c.state, "not started");
  EXPECT_EQ(c.tests[0].message.rfind("not started", 0), 0u);
  TestResult rejects = stub;  // a suite's rejects() on a stub passes the stub's message on
  rejects.message = "Value of: rejects(\"ntk_base with scale 0.5\", ...)\n  Actual: false (ntk_base with scale 0.5: not "
                    "implemented yet (lesson 06 (RoPE): ntk_base is not implemented yet - see lessons/06_rope/README.md))";
  ChapterResult c2{"06_rope", "graded", {stub, rejects}};
  EXPECT_TRUE(mark_not_started(c2));
  TestResult wrong = stub;
  wrong.message = "Expected equality of these values";
  ChapterResult started{"01_softmax_attention", "graded", {stub, wrong}};
  EXPECT_FALSE(mark_not_started(started)) << "one real failure: the student has started";
  TestResult passed = stub;
  passed.outcome = Outcome::passed;
  ChapterResult half{"01_softmax_attention", "graded", {stub, passed}};
  EXPECT_FALSE(mark_not_started(half));
}

TEST(LessonGrade, RefusesToGradeTheSolutionAsStudentCode) {
  Scratch s;
  s.write("lessons/99_demo/demo.cpp", "int f() { throw 1; }\n");
  s.write("lessons/99_demo/solution/demo.cpp", "int f() {\n  return 1;\n}\n");
  const std::string src = s.dir.string(), build = (s.dir / "build").string();
  fs::create_directories(build);
  EXPECT_EQ(error_of([&] { check_not_the_solution("99_demo", src, build); }), "") << "a stub is the student's";
  s.write("lessons/99_demo/demo.cpp", "int f() { return 1; }");  // the solution, re-indented
  EXPECT_EQ(error_of([&] { check_not_the_solution("99_demo", src, build); }),
            "lesson grade: 99_demo: lessons/99_demo/demo.cpp has the reference solution's text "
            "(solution/demo.cpp); refusing to grade the solution as a student's work");
  s.write("lessons/99_demo/demo.cpp", "int f() { return 2; }");
  const nlohmann::json commands = {{{"directory", build},
                                    {"file", src + "/lessons/99_demo/solution/demo.cpp"},
                                    {"output", "lessons/CMakeFiles/lesson99_student.dir/99_demo/solution/demo.cpp.o"}}};
  s.write("build/compile_commands.json", commands.dump());
  EXPECT_NE(error_of([&] { check_not_the_solution("99_demo", src, build); })
                .find("the build compiles " + src + "/lessons/99_demo/solution/demo.cpp into the student's library"),
            std::string::npos);
}

TEST(LessonGrade, BadOptionsAreClearErrors) {
  GradeOptions o;
  o.timeout_s = 0;
  EXPECT_EQ(error_of([&] { check_grade_options(o); }), "lesson grade: --timeout-s must be in (0, 3600] seconds, got 0");
  o = GradeOptions{};
  o.memory_mb = 10;
  EXPECT_EQ(error_of([&] { check_grade_options(o); }),
            "lesson grade: --memory-mb must be 0 (no limit) or in 256..1048576, got 10");
  o = GradeOptions{};
  o.format = "xml";
  EXPECT_EQ(error_of([&] { check_grade_options(o); }),
            "lesson grade: --format must be table, gradescope or junit, got 'xml'");
  o = GradeOptions{};
  o.chapters = {"99"};
  EXPECT_EQ(error_of([&] { check_grade_options(o); }).rfind("lesson: no chapter '99'; chapters: 01_softmax_attention", 0),
            0u);
  o = GradeOptions{};
  o.hidden = "/nonexistent/hidden";
  EXPECT_EQ(error_of([&] { check_grade_options(o); }), "lesson grade: --hidden '/nonexistent/hidden': no such folder");
}

TEST(LessonGrade, TableSaysWhatWentWrongInOneLine) {
  auto failed = [](const std::string& name, const std::string& message) {
    TestResult t;
    t.suite = "basic";
    t.name = name;
    t.message = message;
    t.max_points = 1;
    return t;
  };
  GradeReport report;
  report.chapters.push_back(
      {"01_softmax_attention", "graded",
       {failed("Mistakes.Scale", "basic_test.cpp:210\nThe difference between scale and want is 0.75, which exceeds "
                                 "2e-3, where\nscale evaluates to 1,\nwant evaluates to 0.25, and\n2e-3 evaluates to "
                                 "0.002.\nyour scores are 4x too large: did you forget to divide by sqrt(d_k)?"),
        failed("Attention.Readme", "basic_test.cpp:103\nValue of: close(\"weights\", w, {1, 0}, {1, 2})\n  Actual: "
                                   "false (weights: 1 of 2 elements differ; first at [0,1]: expected 0, got 0.5)\n"
                                   "Expected: true\n\nbasic_test.cpp:106\nValue of: close(\"out\", ...)"),
        failed("Softmax.Hand", "C++ exception with description \"shape mismatch\" thrown in the test body.")}});
  const std::string table = report_table(report);
  EXPECT_NE(table.find("Mistakes.Scale (1): failed: your scores are 4x too large: did you forget to divide by "
                       "sqrt(d_k)?\n"),
            std::string::npos) << table;
  EXPECT_NE(table.find("Attention.Readme (1): failed: weights: 1 of 2 elements differ; first at [0,1]: expected 0, "
                       "got 0.5\n"),
            std::string::npos) << table;
  EXPECT_NE(table.find("Softmax.Hand (1): failed: C++ exception with description \"shape mismatch\""),
            std::string::npos) << table;
  EXPECT_NE(table.find(" 0 / 3      0      3 "), std::string::npos) << "points, passed, failed: " << table;
}
