// A scratch file for targets whose reader takes a path: an anonymous
// in-memory file (memfd) reached as /proc/self/fd/N. Writing it costs no
// disk I/O, and nothing is left behind, however the fuzzer exits.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <string>

namespace attn_fuzz {

struct Scratch {
  int fd;
  std::string path;
  explicit Scratch(const char* name) : fd(::memfd_create(name, MFD_CLOEXEC)) {
    if (fd < 0) __builtin_trap();  // the machine, not attnlab, is broken
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  // Replaces the file's contents with `bytes`; returns its path.
  const std::string& write(const std::string& bytes) const {
    if (::ftruncate(fd, 0) != 0) __builtin_trap();
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n <= 0) __builtin_trap();
      done += static_cast<std::size_t>(n);
    }
    return path;
  }
};

}  // namespace attn_fuzz
