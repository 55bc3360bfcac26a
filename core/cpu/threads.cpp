// The thread setting (core/threads.h): our pool's size, and OpenBLAS kept
// at one thread of its own.
#include "core/threads.h"

#include <cblas.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "core/error.h"

namespace attn {

namespace {

int read_int(const std::string& path) {
  std::ifstream f(path);
  int v = -1;
  f >> v;
  return f ? v : -1;
}

int initial_threads() {
  // OpenBLAS would otherwise start a thread per core and run them beside
  // ours; every product is split by our pool instead (core/cpu/matmul.cpp).
  openblas_set_num_threads(1);
  if (const char* env = std::getenv("ATTNLAB_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    check(end != env && *end == '\0' && n >= 1 && n <= 1024,
          "ATTNLAB_THREADS must be a whole number in 1..1024, got '", env, "'");
    return static_cast<int>(n);
  }
  return physical_cores();
}

std::atomic<int>& setting() {
  static std::atomic<int> threads{initial_threads()};
  return threads;
}

}  // namespace

int physical_cores() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
    return std::max(1u, std::thread::hardware_concurrency());
  // Hardware threads of one core share its (package, core id): count pairs.
  std::set<std::pair<int, int>> cores;
  int unknown = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    const std::string topo = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const int package = read_int(topo + "physical_package_id"), core = read_int(topo + "core_id");
    if (package < 0 || core < 0)
      ++unknown;  // no topology (some containers): count the CPU as a core
    else
      cores.insert({package, core});
  }
  return std::max(1, static_cast<int>(cores.size()) + unknown);
}

int num_threads() { return setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  check(n >= 1 && n <= 1024, "--threads must be in 1..1024, got ", n);
  setting().store(n, std::memory_order_relaxed);
}

}  // namespace attn
