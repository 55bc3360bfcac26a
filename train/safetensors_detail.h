// Small pieces shared by the safetensors reader (safetensors_read.cpp) and
// writer (safetensors_write.cpp): error messages, dtype names, raw bytes.
// Internal to those two files; the format is described in safetensors.h.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace attn::safetensors::detail {

// Every error starts "safetensors: <source>: ".
template <class... Args>
[[noreturn]] void bad(const std::string& source, const Args&... args) {
  fail("safetensors: ", source, ": ", args...);
}

inline const char* format_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
    case DType::BFloat16: return "BF16";
  }
  return "?";
}

// Where a tensor's first byte is (data<T>() counts its offset in elements).
inline char* bytes_of(const Tensor& t) {
  return static_cast<char*>(t.impl()->storage->data) + t.offset() * dtype_size(t.dtype());
}

// Cuts long text (a 1 MB tensor name, a JSON parser's "last read" token) so
// that an error message stays readable. Never splits a UTF-8 character.
inline std::string shorten(const std::string& s, std::size_t max = 120) {
  if (s.size() <= max) return s;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

// A name in single quotes for an error message, kept on one line: control
// characters (a newline in a name) are shown as \xNN. (Not called
// "quoted": std::quoted would win overload resolution for non-const strings.)
inline std::string in_quotes(const std::string& name) {
  std::string out = "'";
  for (char c : shorten(name)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "'";
}

// The header is JSON, and JSON text must be UTF-8. nlohmann refuses to
// write a string that is not, so asking it is the simplest validator.
inline bool is_valid_utf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

// A file descriptor that closes itself, however the function is left.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

}  // namespace attn::safetensors::detail
