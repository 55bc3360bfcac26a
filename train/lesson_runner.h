// `attnlab lesson list | test NN | status`: runs a chapter's suites on the
// student's code (the lessonNN_<level>_student programs built next to the
// attnlab binary) and says, per suite, whether it passes, fails, or has not
// been started (every failure is the stub's NotImplemented).
#pragma once
#include <string>
#include <vector>

namespace attn {

struct SuiteStatus {
  std::string chapter;  // "04_gqa"
  std::string level;    // basic | advanced
  std::string state;    // pass | fail | not started | not built
  int passed = 0, failed = 0;
};

// Chapters found in the source tree's lessons/ folder, in order.
std::vector<std::string> lesson_chapters();
// "04", "4", "04_gqa" or "gqa" -> "04_gqa"; an unknown one is an error that
// lists the chapters.
std::string find_chapter(const std::string& wanted);
// The build folder the running attnlab binary sits in: its lessons/ folder
// holds the suites.
std::string build_dir();
std::vector<SuiteStatus> lesson_status(const std::string& only_chapter = "");
// Runs one chapter's suites with their full output; returns the exit status.
int lesson_test(const std::string& chapter, const std::string& level = "");

}  // namespace attn
