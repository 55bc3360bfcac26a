// The safetensors writer (the format is described in safetensors.h): a
// deterministic header, tensors aligned to their element size, and a
// temporary file renamed over the target only once it is complete on disk.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "train/files.h"
#include "train/safetensors.h"
#include "train/safetensors_detail.h"

namespace attn::safetensors {

// Tensor bytes go to disk with plain memcpy, so the host must store numbers
// the way the format does.
static_assert(std::endian::native == std::endian::little,
              "safetensors_write.cpp assumes a little-endian host");

namespace {

using namespace detail;

// The temporary file that becomes `path`. Until commit() succeeds, the
// destructor removes it, so a failed save leaves nothing behind.
class TempFile {
 public:
  explicit TempFile(const std::string& path)
      : path_(path), tmp_(temporary_name(path)) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail_os("create");
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const char* data, std::size_t n) {
    while (n > 0) {  // write() may write less than asked
      const ssize_t done = ::write(fd_, data, n);
      if (done < 0 && errno == EINTR) continue;
      if (done < 0) fail_os("write");
      data += done;
      n -= static_cast<std::size_t>(done);
    }
  }

  // fsync before rename: otherwise a crash right after the rename could
  // leave `path` naming a file whose data never reached the disk.
  void commit() {
    if (::fsync(fd_) != 0) fail_os("flush");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_os("close");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail_os("rename");
    committed_ = true;
    // Make the rename itself durable too. Best effort: the file is already
    // complete and in place, and some file systems refuse to fsync a folder.
    std::string folder = std::filesystem::path(path_).parent_path().string();
    Fd dir(::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.fd >= 0) (void)::fsync(dir.fd);
  }

 private:
  // "cannot write 'x.tmp-12': No space left on device (saving 'x'; ...)".
  // `action` is a plain C string so that nothing runs before errno is read.
  [[noreturn]] void fail_os(const char* action) {
    const int err = errno;
    const std::string target = std::strcmp(action, "rename") == 0 ? " to '" + path_ + "'" : "";
    fail("safetensors: cannot ", action, " '", tmp_, "'", target, ": ", std::strerror(err),
         " (saving '", path_, "'; any existing file there was left as it was)");
  }
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// A tensor ready to be written: on the CPU, contiguous.
struct Outgoing {
  std::string name;
  Tensor t;
  uint64_t bytes() const { return static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype()); }
};

// Checks the names, brings every tensor to the host and puts them in the
// order their bytes are written (see the comment inside).
std::vector<Outgoing> prepare(const std::string& path,
                              const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::vector<Outgoing> out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (name.empty()) bad(path, "cannot save tensor #", i, ": its name is empty");
    if (name == "__metadata__")
      bad(path, "cannot save a tensor named '__metadata__': the format reserves that name");
    if (!is_valid_utf8(name)) bad(path, "cannot save tensor ", in_quotes(name), ": its name is not valid UTF-8");
    if (!seen.insert(name).second) bad(path, "cannot save two tensors named ", in_quotes(name));
    if (!t.defined()) bad(path, "cannot save tensor ", in_quotes(name), ": it is undefined (an empty Tensor())");
    out.push_back({name, t.to(Device::cpu()).contiguous()});
  }
  // Bytes are written largest element first (I64, F32, BF16, then BOOL),
  // by name within a size. As the data buffer starts 8-byte aligned, every
  // tensor then starts at a multiple of its element size, which readers
  // that map the file in place (PyTorch via safetensors) rely on.
  std::sort(out.begin(), out.end(), [](const Outgoing& a, const Outgoing& b) {
    const std::size_t sa = dtype_size(a.t.dtype()), sb = dtype_size(b.t.dtype());
    return sa != sb ? sa > sb : a.name < b.name;
  });
  return out;
}

// The JSON header, padded with spaces to a multiple of 8 bytes. Tensors are
// listed by name (the writer's order above only decides the offsets);
// ordered_json keeps insertion order, so the text is deterministic.
std::string make_header(const std::string& path, const std::vector<Outgoing>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  for (const auto& [key, value] : metadata)
    if (!is_valid_utf8(key) || !is_valid_utf8(value))
      bad(path, "cannot save metadata entry ", in_quotes(key), ": it is not valid UTF-8");
  std::map<std::string, nlohmann::ordered_json> entries;
  uint64_t offset = 0;
  for (const Outgoing& o : tensors) {
    nlohmann::ordered_json entry;
    entry["dtype"] = format_dtype(o.t.dtype());
    entry["shape"] = o.t.shape();
    entry["data_offsets"] = {offset, offset + o.bytes()};
    entries.emplace(o.name, std::move(entry));
    offset += o.bytes();
  }
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (auto& [name, entry] : entries) header[name] = std::move(entry);
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata) {
  if (path.empty()) fail("safetensors: cannot save: the path is empty");
  // Everything that can fail on the inputs fails before a file is touched.
  const std::vector<Outgoing> outgoing = prepare(path, tensors);
  const std::string header = make_header(path, outgoing, metadata);

  char length[8];
  uint64_t n = header.size();
  for (char& byte : length) {  // little-endian, whatever the host
    byte = static_cast<char>(n & 0xFF);
    n >>= 8;
  }
  TempFile file(path);
  file.write(length, sizeof length);
  file.write(header.data(), header.size());
  for (const Outgoing& o : outgoing) file.write(bytes_of(o.t), o.bytes());
  file.commit();
}

}  // namespace attn::safetensors
