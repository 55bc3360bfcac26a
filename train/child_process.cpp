#include "train/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"

extern char** environ;

namespace attn {

#if defined(__SANITIZE_ADDRESS__)
#define ATTNLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATTNLAB_ASAN 1
#endif
#endif

bool memory_limit_supported() {
#ifdef ATTNLAB_ASAN
  return false;
#else
  return true;
#endif
}

namespace {

// The child's environment: ours, with `extra` ("NAME=value") replacing or
// adding entries. Built before fork: between fork and exec only
// async-signal-safe calls are allowed, and building strings is not one.
std::vector<std::string> child_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const std::string& x : extra)
      if (x.substr(0, x.find('=')) == name) replaced = true;
    if (!replaced) out.push_back(entry);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In the child, after fork: limits, own process group, output into the pipe.
[[noreturn]] void become_child(int out_fd, const ChildLimits& limits, char** argv, char** envp) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // a grader that is killed takes its test along
  dup2(out_fd, STDOUT_FILENO);
  dup2(out_fd, STDERR_FILENO);
  close(out_fd);
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  const rlim_t cpu = static_cast<rlim_t>(std::ceil(limits.timeout_s)) + 1;
  const rlimit cpu_limit{cpu, cpu + 1};
  setrlimit(RLIMIT_CPU, &cpu_limit);
  if (limits.memory_mb > 0 && memory_limit_supported()) {
    const rlim_t bytes = static_cast<rlim_t>(limits.memory_mb) * 1024 * 1024;
    const rlimit data{bytes, bytes};
    setrlimit(RLIMIT_DATA, &data);
  }
  execve(argv[0], argv, envp);
  const char msg[] = "cannot start the program\n";
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  _exit(127);
}

}  // namespace

ChildResult run_limited(const std::vector<std::string>& argv_in, const ChildLimits& limits,
                        const std::vector<std::string>& env) {
  check(!argv_in.empty(), "run_limited: no program given");
  check(limits.timeout_s > 0, "run_limited: timeout must be > 0 s, got ", limits.timeout_s);
  std::vector<std::string> argv_copy = argv_in;
  std::vector<std::string> env_copy = child_environment(env);
  std::vector<char*> argv = c_strings(argv_copy), envp = c_strings(env_copy);

  int fds[2];
  check(pipe2(fds, O_CLOEXEC) == 0, "run_limited: cannot make a pipe: ", std::strerror(errno));
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    fail("run_limited: cannot fork: ", std::strerror(errno));
  }
  if (pid == 0) {
    close(fds[0]);
    become_child(fds[1], limits, argv.data(), envp.data());
  }
  setpgid(pid, pid);  // also here, so the group exists before any kill below
  close(fds[1]);

  ChildResult r;
  const auto deadline = start + std::chrono::duration<double>(limits.timeout_s);
  char buf[8192];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // every writer closed its end: the child (and its children) ended
    // Keep the end: the last lines say where a test was when it stopped.
    r.output.append(buf, static_cast<std::size_t>(n));
    if (r.output.size() > limits.max_output) r.output.erase(0, r.output.size() - limits.max_output);
  }
  close(fds[0]);
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  kill(-pid, SIGKILL);  // anything the child left running in its group
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_rss_mb = usage.ru_maxrss / 1024;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

std::string signal_description(int sig) {
  switch (sig) {
    case SIGSEGV: return "segmentation fault (SIGSEGV)";
    case SIGABRT: return "aborted (SIGABRT)";
    case SIGFPE: return "arithmetic error (SIGFPE)";
    case SIGBUS: return "bus error (SIGBUS)";
    case SIGILL: return "illegal instruction (SIGILL)";
    case SIGKILL: return "killed (SIGKILL)";
    case SIGXCPU: return "CPU time limit (SIGXCPU)";
    default: return str("signal ", sig, " (", strsignal(sig), ")");
  }
}

}  // namespace attn
