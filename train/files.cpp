#include "train/files.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace attn {

std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned> written{0};
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(written++);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = temporary_name(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  check(f != nullptr, "cannot write '", tmp, "': ", std::strerror(errno));
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool flushed = std::fflush(f) == 0;
  const int err = errno;
  std::fclose(f);
  if (!wrote || !flushed) {
    std::remove(tmp.c_str());
    fail("writing '", tmp, "' failed: ", std::strerror(err), "; '", path, "' was left as it was");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("cannot rename '", tmp, "' to '", path, "': ", ec.message());
  }
}

void make_output_folder(const std::string& path, const std::string& option) {
  namespace fs = std::filesystem;
  check(!path.empty(), option, " is empty; expected a folder");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st)) {
    check(fs::is_directory(st), option, " '", path,
          "' is a file, expected a folder (the file was left as it was); choose another folder");
    return;
  }
  fs::create_directories(path, ec);
  check(!ec, option, " '", path, "': cannot create the folder: ", ec.message());
}

}  // namespace attn
