// Runs one program as a child process under a time limit and a memory
// limit, and says how it ended: the grader's sandbox for a student's code.
//
// The child gets its own process group (a kill reaches anything it
// started), a limit on the memory it allocates (RLIMIT_DATA: the heap and
// private writable mappings; an allocation past it fails, which C++
// reports as std::bad_alloc; code, shared libraries and address space
// reserved without write access, as CUDA reserves it, do not count; not
// yet run on a GPU under the grader), a CPU-time limit one second past the
// wall-clock limit (a backstop should the parent die) and no core files.
// The parent kills the whole group with SIGKILL when the wall-clock limit
// passes, and the child dies with the parent should the grader be killed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attn {

struct ChildLimits {
  double timeout_s = 60;    // wall clock, > 0
  int64_t memory_mb = 0;    // allocated memory (RLIMIT_DATA); 0 = no limit
  std::size_t max_output = 64 * 1024;  // the last bytes of stdout+stderr kept (the rest is read and dropped)
};

struct ChildResult {
  bool timed_out = false;   // killed by us at the wall-clock limit
  int exit_code = -1;       // when it exited on its own
  int signal = 0;           // when a signal ended it (SIGSEGV, SIGABRT, SIGKILL, SIGXCPU, ...)
  double seconds = 0;       // wall clock
  int64_t peak_rss_mb = 0;  // the child's peak resident memory
  std::string output;       // stdout and stderr, interleaved as written
};

// Whether the memory limit can be enforced in this build: a sanitizer
// build's children map terabytes of shadow memory at start-up, which the
// limit would refuse, so there it is left off.
bool memory_limit_supported();

// Runs argv[0] (a path) with argv[1..] and `env` added to (or replacing
// entries of) this process's environment. Throws only when the child cannot
// be started at all (no fork, no pipe); an exec failure is exit code 127.
ChildResult run_limited(const std::vector<std::string>& argv, const ChildLimits& limits,
                        const std::vector<std::string>& env = {});

// "segmentation fault (SIGSEGV)" and the like, for reports.
std::string signal_description(int signal);

}  // namespace attn
