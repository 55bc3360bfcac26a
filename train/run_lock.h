// One writer per run folder: a process that writes a run folder holds an
// exclusive flock(2) on "<folder>/.attnlab.lock" for as long as it writes.
//
// flock belongs to the open file, so the kernel releases it when the
// process ends in any way, kill -9 included: a lock is never left stale.
// The holder writes its PID into the file, so that a second writer can be
// told who holds it. flock may not exclude processes on other machines on
// some network file systems (older NFS): there, two hosts can still write
// one folder at once.
#pragma once
#include <filesystem>
#include <string>

namespace attn {

class RunLock {
 public:
  // Takes the lock of `folder` (which must exist), or fails with one line:
  // "<who>: '<folder>' is being written by another attnlab process (PID n);
  // ...". Fails at once; never waits.
  static RunLock take(const std::filesystem::path& folder, const std::string& who);

  RunLock() = default;
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  // Removes the lock file (when it is still this lock's) and releases it.
  ~RunLock();

  bool held() const { return fd_ >= 0; }
  // The folder was renamed to `folder` (RunFolder's swap): the lock file
  // moved with it.
  void moved_to(const std::filesystem::path& folder);

  static constexpr const char* kFileName = ".attnlab.lock";

 private:
  void release();
  int fd_ = -1;
  std::filesystem::path file_;
};

}  // namespace attn
