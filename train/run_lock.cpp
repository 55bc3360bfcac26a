// The run folder's lock (run_lock.h).
#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

// The PID the holder wrote into the lock file, or 0 when it has not yet.
long written_pid(int fd) {
  char text[32] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  return n > 0 ? std::atol(text) : 0;
}

// Whether the open file `fd` is the one `path` names now.
bool is_file_at(int fd, const fs::path& path) {
  struct stat open_file {}, named {};
  return ::fstat(fd, &open_file) == 0 && ::stat(path.c_str(), &named) == 0 &&
         open_file.st_dev == named.st_dev && open_file.st_ino == named.st_ino;
}

}  // namespace

RunLock RunLock::take(const fs::path& folder, const std::string& who) {
  const fs::path file = folder / kFileName;
  for (;;) {
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail(who, ": cannot create the lock file '", file.string(), "': ", std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const long pid = written_pid(fd);
      ::close(fd);
      if (err != EWOULDBLOCK) fail(who, ": cannot lock '", file.string(), "': ", std::strerror(err));
      fail(who, ": '", folder.string(), "' is being written by another attnlab process (",
           pid > 0 ? "PID " + std::to_string(pid) : std::string("its PID is not written yet"),
           "); wait until it ends, or choose another --out");
    }
    // The holder before us removes the file when it ends. If it did so
    // between our open() and our flock(), we hold a file that nobody else
    // can find any more: open the one that is there now instead.
    if (!is_file_at(fd, file)) {
      ::close(fd);
      continue;
    }
    RunLock lock;
    lock.fd_ = fd;
    lock.file_ = file;
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
      fail(who, ": cannot write the lock file '", file.string(), "': ", std::strerror(errno));
    return lock;
  }
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(other.fd_), file_(std::move(other.file_)) { other.fd_ = -1; }

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    file_ = std::move(other.file_);
    other.fd_ = -1;
  }
  return *this;
}

RunLock::~RunLock() { release(); }

void RunLock::moved_to(const fs::path& folder) { file_ = folder / kFileName; }

void RunLock::release() {
  if (fd_ < 0) return;
  // Removed while still held, so that no process can lock this file after
  // us and believe it owns the folder (take() checks the name, too).
  if (is_file_at(fd_, file_)) ::unlink(file_.c_str());
  ::close(fd_);
  fd_ = -1;
}

}  // namespace attn
