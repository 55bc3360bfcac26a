// Our own check of a results.json against Gradescope's autograder format:
// the fields a course platform needs are there with the right types, no
// field is misspelt, visibilities are ones Gradescope knows, and the total
// is the sum of the tests. Returns the problems found (empty = valid).
#pragma once
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace attn_test {

inline std::vector<std::string> gradescope_problems(const nlohmann::json& j) {
  std::vector<std::string> bad;
  const std::set<std::string> visibilities = {"hidden", "after_due_date", "after_published", "visible"};
  const std::set<std::string> top_fields = {"score", "execution_time", "output", "output_format",
                                            "test_output_format", "test_name_format", "visibility",
                                            "stdout_visibility", "extra_data", "tests", "leaderboard"};
  const std::set<std::string> test_fields = {"score", "max_score", "status", "name", "name_format", "number",
                                             "output", "output_format", "tags", "visibility", "extra_data"};
  if (!j.is_object()) return {"the top level is not an object"};
  for (const auto& item : j.items())
    if (top_fields.count(item.key()) == 0) bad.push_back("unknown top-level field '" + item.key() + "'");
  if (!j.contains("score") || !j["score"].is_number()) bad.push_back("score: missing or not a number");
  if (!j.contains("tests") || !j["tests"].is_array()) return bad.push_back("tests: missing or not a list"), bad;
  for (const char* f : {"visibility", "stdout_visibility"})
    if (j.contains(f) && (!j[f].is_string() || visibilities.count(j[f].get<std::string>()) == 0))
      bad.push_back(std::string(f) + ": not one of hidden, after_due_date, after_published, visible");
  if (j.contains("execution_time") && !j["execution_time"].is_number()) bad.push_back("execution_time: not a number");
  if (j.contains("output") && !j["output"].is_string()) bad.push_back("output: not a string");
  double sum = 0;
  for (std::size_t i = 0; i < j["tests"].size(); ++i) {
    const nlohmann::json& t = j["tests"][i];
    const std::string at = "tests[" + std::to_string(i) + "]";
    if (!t.is_object()) {
      bad.push_back(at + ": not an object");
      continue;
    }
    for (const auto& item : t.items())
      if (test_fields.count(item.key()) == 0) bad.push_back(at + ": unknown field '" + item.key() + "'");
    if (!t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().empty())
      bad.push_back(at + ".name: missing or empty");
    for (const char* f : {"score", "max_score"})
      if (!t.contains(f) || !t[f].is_number() || t[f].get<double>() < 0)
        bad.push_back(at + "." + f + ": missing or not a number >= 0");
    if (t.contains("score") && t.contains("max_score") && t["score"].is_number() && t["max_score"].is_number() &&
        t["score"].get<double>() > t["max_score"].get<double>() + 1e-9)
      bad.push_back(at + ": score above max_score");
    if (!t.contains("output") || !t["output"].is_string()) bad.push_back(at + ".output: missing or not a string");
    if (!t.contains("visibility") || !t["visibility"].is_string() ||
        visibilities.count(t["visibility"].get<std::string>()) == 0)
      bad.push_back(at + ".visibility: missing or not one of hidden, after_due_date, after_published, visible");
    if (t.contains("status") && t["status"] != "passed" && t["status"] != "failed")
      bad.push_back(at + ".status: not passed or failed");
    if (t.contains("score") && t["score"].is_number()) sum += t["score"].get<double>();
  }
  if (j["score"].is_number() && std::abs(j["score"].get<double>() - sum) > 1e-6 * (1 + sum))
    bad.push_back("score: " + j["score"].dump() + " is not the sum of the tests' scores, " + std::to_string(sum));
  return bad;
}

}  // namespace attn_test
