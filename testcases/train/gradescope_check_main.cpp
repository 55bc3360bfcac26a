// gradescope_check results.json: our schema check (gradescope_check.h) as a
// command, for the grader's end-to-end test and for a teacher's own
// run_autograder. Prints the problems; exit status 1 if there are any.
#include <cstdio>
#include <fstream>

#include "gradescope_check.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gradescope_check results.json\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "%s: not valid JSON (%s)\n", argv[1], e.what());
    return 1;
  }
  const std::vector<std::string> bad = attn_test::gradescope_problems(j);
  for (const std::string& b : bad) std::fprintf(stderr, "%s: %s\n", argv[1], b.c_str());
  if (bad.empty()) std::printf("%s: valid (%zu tests, score %s)\n", argv[1], j["tests"].size(), j["score"].dump().c_str());
  return bad.empty() ? 0 : 1;
}
