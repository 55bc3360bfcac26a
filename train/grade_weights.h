// How many points each test of a chapter is worth: the chapter's optional
// lessons/NN_name/grading.json (documented in lessons/README.md).
//
//   {
//     "suites": {"basic": 40, "advanced": 60, "hidden": 20},
//     "tests": [{"pattern": "Mistakes.*", "points": 2}]
//   }
//
// A test whose name ("Suite.Name") matches a pattern (first match wins;
// `*` any run of characters, `?` one) is worth exactly that pattern's
// points; the suite's points are shared equally by its other tests. With a
// grading.json, a suite it does not name gets the default (basic 40,
// advanced 60, hidden 20). Without one, every test is worth 1 point.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace attn {

struct PatternPoints {
  std::string pattern;
  double points = 0;
};

struct GradingWeights {
  bool from_file = false;                     // false: every test is worth 1 point
  std::map<std::string, double> suite_points;  // basic / advanced / hidden
  std::vector<PatternPoints> tests;
};

// Reads `path`; a missing file gives the one-point-per-test weights. A bad
// file is an error naming the file and the field.
GradingWeights load_grading_weights(const std::string& path);

// The points of each test of one suite (`suite`: basic, advanced, hidden),
// in the order of `names`.
std::vector<double> test_points(const GradingWeights& w, const std::string& suite,
                                const std::vector<std::string>& names);

// gtest-style wildcard match: `*` any run of characters, `?` one character.
bool wildcard_match(const std::string& pattern, const std::string& name);

}  // namespace attn
