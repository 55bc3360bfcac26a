#include "train/grade_weights.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace attn {

namespace {

const std::map<std::string, double> kDefaultSuitePoints = {{"basic", 40}, {"advanced", 60}, {"hidden", 20}};

double points_field(const nlohmann::json& v, const std::string& file, const std::string& field) {
  if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > 1e6)
    fail(file, ": ", field, ": expected a number of points in 0..1000000, got ", v.dump());
  return v.get<double>();
}

}  // namespace

GradingWeights load_grading_weights(const std::string& path) {
  GradingWeights w;
  if (!std::filesystem::exists(path)) return w;
  std::ifstream in(path);
  check(in.good(), path, ": cannot read the file");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  check(j.is_object(), path, ": expected a JSON object with \"suites\" and/or \"tests\", got ", j.type_name());
  w.from_file = true;
  w.suite_points = kDefaultSuitePoints;
  for (const auto& [key, value] : j.items()) {
    if (key == "suites") {
      check(value.is_object(), path, ": suites: expected an object like {\"basic\": 40, \"advanced\": 60}, got ",
            value.dump());
      for (const auto& [suite, points] : value.items()) {
        check(kDefaultSuitePoints.count(suite) == 1, path, ": suites.", suite,
              ": no such suite; expected basic, advanced or hidden");
        w.suite_points[suite] = points_field(points, path, "suites." + suite);
      }
    } else if (key == "tests") {
      check(value.is_array(), path, ": tests: expected a list like [{\"pattern\": \"Mistakes.*\", \"points\": 2}], got ",
            value.dump());
      for (std::size_t i = 0; i < value.size(); ++i) {
        const nlohmann::json& rule = value[i];
        const std::string at = "tests[" + std::to_string(i) + "]";
        check(rule.is_object() && rule.contains("pattern") && rule.contains("points") && rule.size() == 2, path, ": ",
              at, ": expected {\"pattern\": \"Suite.Name*\", \"points\": N}, got ", rule.dump());
        check(rule["pattern"].is_string() && !rule["pattern"].get<std::string>().empty(), path, ": ", at,
              ".pattern: expected a non-empty test name pattern, got ", rule["pattern"].dump());
        w.tests.push_back({rule["pattern"].get<std::string>(), points_field(rule["points"], path, at + ".points")});
      }
    } else {
      fail(path, ": ", key, ": unknown field; expected suites or tests");
    }
  }
  return w;
}

std::vector<double> test_points(const GradingWeights& w, const std::string& suite,
                                const std::vector<std::string>& names) {
  std::vector<double> points(names.size(), 1.0);
  if (!w.from_file) return points;
  std::vector<bool> by_pattern(names.size(), false);
  std::size_t shared = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    for (const PatternPoints& rule : w.tests)
      if (wildcard_match(rule.pattern, names[i])) {
        points[i] = rule.points;
        by_pattern[i] = true;
        break;
      }
    if (!by_pattern[i]) ++shared;
  }
  const auto it = w.suite_points.find(suite);
  const double suite_total = it == w.suite_points.end() ? 0.0 : it->second;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (!by_pattern[i]) points[i] = suite_total / static_cast<double>(shared);
  return points;
}

bool wildcard_match(const std::string& pattern, const std::string& name) {
  // Classic two-pointer match: remember the last `*` and retry from there.
  std::size_t p = 0, n = 0, star = std::string::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace attn
