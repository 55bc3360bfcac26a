// Errors that name the op, the bad value and what was expected.
//
// Every user-facing check in attnlab goes through `fail(...)`, which glues its
// arguments into one message and throws attn::Error. Tests assert on the text.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace attn {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Raised by lesson stubs and by features a build does not include.
struct NotImplemented : Error {
  using Error::Error;
};

// A device allocator that cannot serve a request (the CPU's and the GPU's
// alike): its own type, so that training can say which step ran out and
// which options to lower, whichever device it runs on.
struct OutOfMemory : Error {
  using Error::Error;
};

template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(str(args...));
}

template <class... Args>
void check(bool ok, const Args&... args) {
  if (!ok) fail(args...);
}

}  // namespace attn
