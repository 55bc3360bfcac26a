// One process per rank (launch.h).
#include "train/launch.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/comm/nccl_library.h"
#include "core/error.h"

namespace attn {

namespace {

volatile sig_atomic_t g_signal = 0;  // a SIGINT or SIGTERM to pass on
void remember(int s) { g_signal = s; }

std::string hex(const char* bytes, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// The child's side of fork(): its own process group, death with the
// launcher, its place in the job, then the command.
[[noreturn]] void become_rank(const LaunchOptions& o, int rank, const std::string& nccl_id,
                              const std::vector<std::string>& command, pid_t launcher) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != launcher) _exit(137);  // the launcher died before prctl
  setenv("ATTNLAB_RANK", std::to_string(rank).c_str(), 1);
  setenv("ATTNLAB_WORLD_SIZE", std::to_string(o.ranks).c_str(), 1);
  setenv("ATTNLAB_LOCAL_RANK", std::to_string(rank).c_str(), 1);
  if (!nccl_id.empty()) setenv("ATTNLAB_NCCL_ID", nccl_id.c_str(), 1);
  std::vector<char*> argv;
  for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  std::fprintf(stderr, "attnlab launch: rank %d: cannot run '%s': %s\n", rank, argv[0], std::strerror(errno));
  _exit(127);
}

int status_of(int wait_status) {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

}  // namespace

int launch(const LaunchOptions& o, const std::vector<std::string>& command) {
  check(o.ranks >= 1, "launch: --nproc must be at least 1, got ", o.ranks);
  check(o.grace_s >= 0, "launch: --grace must be >= 0 seconds, got ", o.grace_s);
  check(!command.empty(), "launch: no command to run; write it after --, e.g. attnlab launch --nproc 2 -- "
                          "attnlab train ...");
  std::string nccl_id;
  if (o.nccl) {
    comm::NcclUniqueId id{};
    const comm::NcclLibrary& lib = comm::nccl_library();  // fails, saying how to get it
    check(lib.ncclGetUniqueId(&id) == comm::kNcclSuccess, "launch: ncclGetUniqueId failed");
    nccl_id = hex(id.bytes, sizeof id.bytes);
  }
  struct sigaction sa {};
  sa.sa_handler = remember;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  const pid_t me = getpid();
  std::vector<pid_t> ranks;
  for (int r = 0; r < o.ranks; ++r) {
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      for (pid_t p : ranks) kill(-p, SIGKILL);
      fail("launch: fork failed for rank ", r, ": ", std::strerror(errno));
    }
    if (pid == 0) become_rank(o, r, nccl_id, command, me);
    setpgid(pid, pid);  // also here: whichever of the two runs first
    ranks.push_back(pid);
  }

  using Clock = std::chrono::steady_clock;
  int alive = o.ranks, result = 0;
  bool stopping = false, forwarded = false;
  Clock::time_point kill_at{};
  std::vector<bool> done(ranks.size(), false);
  auto signal_all = [&](int s) {
    for (std::size_t i = 0; i < ranks.size(); ++i)
      if (!done[i]) kill(-ranks[i], s);
  };
  while (alive > 0) {
    if (g_signal) {  // the ranks stop (and save) on their own: no SIGKILL after it
      signal_all(g_signal);
      g_signal = 0;
      forwarded = true;
    }
    int st = 0;
    const pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid > 0) {
      for (std::size_t i = 0; i < ranks.size(); ++i)
        if (ranks[i] == pid) done[i] = true, --alive;
      if (status_of(st) != 0 && result == 0) {
        result = status_of(st);
        if (!stopping && !forwarded && alive > 0) {
          std::fprintf(stderr, "attnlab launch: a rank ended with status %d: stopping the other %d\n", result,
                       alive);
          signal_all(SIGTERM);
          stopping = true;
          kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(o.grace_s));
        }
      }
      continue;
    }
    if (stopping && Clock::now() >= kill_at) {
      signal_all(SIGKILL);
      stopping = false;  // once
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace attn
