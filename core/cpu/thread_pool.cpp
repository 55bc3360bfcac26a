// The CPU thread pool behind parallel_for (core/cpu/parallel.h).
//
// Why our own and not OpenMP: at the end of an OpenMP parallel region every
// thread of the team must check in, even one the operating system has set
// aside to run another program. A training step runs some 500 short
// regions, so on a laptop that is also running a browser each region waits
// for a time slice: measured on 2 cores with one compile job beside it, an
// OpenMP step went from 54 ms to 1.3 s. Here chunks are claimed from a
// shared counter instead of handed out in advance: a thread that is not
// running claims nothing, the others (the caller included) take its share,
// and the caller waits only for chunks already being worked on.
//
// Workers spin for a short while after a job (the next one usually follows
// within microseconds), then sleep on a condition variable.
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/cpu/parallel.h"

namespace attn::cpu {

namespace {

// Set on a thread while it runs chunks: a parallel_for inside a chunk runs
// inline rather than waiting for the pool it is part of.
thread_local bool t_inside_pool = false;

struct Job {
  ChunkFn fn = nullptr;
  void* ctx = nullptr;
  int64_t chunks = 0;
  int helpers = 0;                  // workers 0..helpers-1 may join
  std::atomic<int64_t> next{0};     // the next chunk to claim
  std::atomic<int64_t> done{0};     // chunks finished
  std::exception_ptr error;         // the first exception a chunk threw
  std::mutex error_mutex;
};

// Runs chunks of `job` until none are left to claim.
void work_on(Job& job) {
  const bool was_inside = t_inside_pool;
  t_inside_pool = true;
  for (int64_t c; (c = job.next.fetch_add(1, std::memory_order_relaxed)) < job.chunks;) {
    try {
      job.fn(job.ctx, c);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job.error_mutex);
      if (!job.error) job.error = std::current_exception();
    }
    job.done.fetch_add(1, std::memory_order_release);
  }
  t_inside_pool = was_inside;
}

class Pool {
 public:
  // Runs one job on the caller and up to `helpers` workers. Jobs come from
  // one thread at a time (the mutex), as kernels are called.
  void run(Job& job) {
    std::lock_guard<std::mutex> one_job(run_mutex_);
    grow(job.helpers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleeping_.load(std::memory_order_acquire) > 0) wake_.notify_all();
    work_on(job);
    while (job.done.load(std::memory_order_acquire) < job.chunks) std::this_thread::yield();
    // Workers may still hold a pointer to the job: wait until they let go.
    std::unique_lock<std::mutex> lock(mutex_);
    job_ = nullptr;
    released_.wait(lock, [&] { return busy_ == 0; });
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  void grow(int helpers) {
    while (static_cast<int>(workers_.size()) < helpers) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { worker(index); });
      workers_.back().detach();  // the pool lives as long as the process
    }
  }

  void worker(int index) {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      // Spin a fraction of a millisecond for the next job, then sleep.
      for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin)
        pause();
      std::unique_lock<std::mutex> lock(mutex_);
      if (generation_.load(std::memory_order_acquire) == seen) {
        sleeping_.fetch_add(1, std::memory_order_acq_rel);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        sleeping_.fetch_sub(1, std::memory_order_acq_rel);
      }
      seen = generation_.load(std::memory_order_acquire);
      Job* job = job_;
      if (job == nullptr || index >= job->helpers) continue;
      ++busy_;
      lock.unlock();
      work_on(*job);
      lock.lock();
      if (--busy_ == 0) released_.notify_all();
    }
  }

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, released_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleeping_{0};
  Job* job_ = nullptr;  // guarded by mutex_
  int busy_ = 0;        // workers inside job_, guarded by mutex_
  std::vector<std::thread> workers_;
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: detached workers may outlive main()
  return *p;
}

}  // namespace

void run_chunks(int64_t chunks, int threads, ChunkFn fn, void* ctx) {
  if (threads <= 1 || chunks <= 1 || t_inside_pool) {
    for (int64_t c = 0; c < chunks; ++c) fn(ctx, c);
    return;
  }
  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.chunks = chunks;
  job.helpers = static_cast<int>(std::min<int64_t>(threads, chunks)) - 1;
  pool().run(job);
}

}  // namespace attn::cpu
