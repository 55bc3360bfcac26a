// The safetensors reader (the format is described in safetensors.h).
//
// The reader treats every file as hostile: each number in the header is
// checked before it is used to index or allocate anything, so a corrupted or
// malicious file gives a one-line error, never a crash or a huge allocation.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "train/safetensors.h"
#include "train/safetensors_detail.h"

namespace attn::safetensors {

// Tensor bytes come from disk with plain memcpy, so the host must store
// numbers the way the format does.
static_assert(std::endian::native == std::endian::little,
              "safetensors_read.cpp assumes a little-endian host");

namespace {

using namespace detail;
using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB too: real
// headers are a few MB at most, and a bigger one is a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// One header entry after its checks: a tensor and where its bytes are.
struct Entry {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // [begin, end) in the data buffer
};

// A JSON value for an error message, short and on one line. Objects and
// long arrays are only named: dumping a hostile, deeply nested value would
// be long and would recurse deeply.
std::string describe(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) {
    const bool flat = std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_primitive(); });
    if (!flat || v.size() > 8) return "an array of " + std::to_string(v.size()) + " elements";
  }
  return shorten(v.dump());
}

// Bytes 0..7: the header length, little-endian (decoded byte by byte so the
// code reads the same on any host).
uint64_t read_header_length(const std::string& bytes, const std::string& source) {
  if (bytes.size() < 8)
    bad(source, "file is ", bytes.size(),
        " bytes long, too short for the 8-byte header length that starts every safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > kMaxHeaderBytes)
    bad(source, "header length is ", n, " bytes, more than the limit of ", kMaxHeaderBytes,
        " (not a safetensors file, or a corrupted one)");
  if (n > bytes.size() - 8)
    bad(source, "header length is ", n, " bytes but only ", bytes.size() - 8,
        " bytes follow the length field (the file is truncated)");
  if (n == 0) bad(source, "header is empty, expected a JSON object");
  return n;
}

// The header text -> a JSON object, refusing duplicate tensor names (a JSON
// parser would silently keep one of them and hide the other).
json parse_header_json(std::string_view text, const std::string& source) {
  // The spec says the header must begin with '{' (no leading spaces).
  if (text[0] != '{')
    bad(source, "header must be a JSON object starting with '{', but its first byte is ",
        in_quotes(std::string(1, text[0])));
  std::set<std::string> names;
  std::string duplicate;
  auto watch_names = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && duplicate.empty() &&
        !names.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), watch_names);
  } catch (const json::exception& e) {
    // Syntax errors, bad UTF-8, numbers like 1e999 that overflow a double.
    // what() is "[json.exception.parse_error.101] parse error at ...": keep the useful part.
    std::string what = e.what();
    const std::size_t skip = what.find("] ");
    if (skip != std::string::npos) what = what.substr(skip + 2);
    bad(source, "header is not valid JSON: ", shorten(what, 200));
  }
  if (!header.is_object()) bad(source, "header is ", describe(header), ", expected a JSON object");
  if (!duplicate.empty()) bad(source, "header names tensor ", in_quotes(duplicate), " twice");
  return header;
}

// "__metadata__": an object whose values are all strings.
std::map<std::string, std::string> parse_metadata(const json& value, const std::string& source) {
  if (!value.is_object())
    bad(source, "__metadata__ is ", describe(value), ", expected an object of string values");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      bad(source, "__metadata__ entry ", in_quotes(key), " is ", describe(v), ", expected a string");
    metadata.emplace(key, v.get<std::string>());
  }
  return metadata;
}

DType parse_dtype(const std::string& name, const json& entry, const std::string& source) {
  const json& v = entry["dtype"];
  if (!v.is_string())
    bad(source, "tensor ", in_quotes(name), " has dtype ", describe(v), ", expected a string such as \"F32\"");
  const std::string& text = v.get_ref<const std::string&>();
  if (text == "F32") return DType::Float32;
  if (text == "I64") return DType::Int64;
  if (text == "BOOL") return DType::Bool;
  if (text == "BF16") return DType::BFloat16;
  bad(source, "tensor ", in_quotes(name), " has dtype ", in_quotes(text),
      ", which attnlab does not support (supported: F32, BF16, I64, BOOL)");
}

Shape parse_shape(const std::string& name, const json& entry, const std::string& source) {
  const json& v = entry["shape"];
  if (!v.is_array())
    bad(source, "tensor ", in_quotes(name), " has shape ", describe(v),
        ", expected an array of non-negative integers");
  Shape shape;
  for (std::size_t i = 0; i < v.size(); ++i) {
    // nlohmann reads a non-negative integer as "unsigned", -3 as "integer"
    // and 2.5 or 1e30 as "float"; only the first is a size.
    const json& d = v[i];
    if (!d.is_number_unsigned() ||
        d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(source, "tensor ", in_quotes(name), " has shape ", describe(v), ": dimension ", i, " is ",
          describe(d), ", expected a non-negative integer");
    shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  return shape;
}

// numel(shape) * element size, refusing shapes whose sizes multiply past 64
// bits (the product would wrap around to a small, "valid" looking size).
// Zeros are skipped while checking: Tensor's numel() multiplies left to
// right, so [2^32, 2^32, 0] would overflow there before reaching the 0.
uint64_t byte_size(const std::string& name, const Shape& shape, DType dtype,
                   const std::string& source) {
  const auto limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t bytes = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d == 0) continue;
    if (bytes > limit / static_cast<uint64_t>(d))
      bad(source, "tensor ", in_quotes(name), " has shape ", shape_str(shape),
          ": the product of its sizes overflows 64 bits");
    bytes *= static_cast<uint64_t>(d);
  }
  const bool empty = std::find(shape.begin(), shape.end(), 0) != shape.end();
  return empty ? 0 : bytes;
}

std::pair<uint64_t, uint64_t> parse_offsets(const std::string& name, const json& entry,
                                            const std::string& source) {
  const json& v = entry["data_offsets"];
  const bool ok = v.is_array() && v.size() == 2 && v[0].is_number_unsigned() &&
                  v[1].is_number_unsigned() && v[0].get<uint64_t>() <= v[1].get<uint64_t>();
  if (!ok)
    bad(source, "tensor ", in_quotes(name), " has data_offsets ", describe(v),
        ", expected two non-negative integers [begin, end] with begin <= end");
  return {v[0].get<uint64_t>(), v[1].get<uint64_t>()};
}

// One tensor's header entry, checked on its own (the checks between
// tensors are in check_layout).
Entry parse_entry(const std::string& name, const json& value, uint64_t buffer_bytes,
                  const std::string& source) {
  if (name.empty()) bad(source, "header has a tensor with an empty name");
  if (!value.is_object())
    bad(source, "tensor ", in_quotes(name), " is ", describe(value),
        ", expected an object with dtype, shape and data_offsets");
  for (const auto& [key, v] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      bad(source, "tensor ", in_quotes(name), " has an unknown field ", in_quotes(key),
          " (expected dtype, shape and data_offsets)");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!value.contains(field)) bad(source, "tensor ", in_quotes(name), " has no \"", field, "\" field");

  Entry e;
  e.name = name;
  e.dtype = parse_dtype(name, value, source);
  e.shape = parse_shape(name, value, source);
  std::tie(e.begin, e.end) = parse_offsets(name, value, source);
  const uint64_t expected = byte_size(name, e.shape, e.dtype, source);
  if (e.end - e.begin != expected)
    bad(source, "tensor ", in_quotes(name), " has data_offsets [", e.begin, ", ", e.end, "] (",
        e.end - e.begin, " bytes) but its shape ", shape_str(e.shape), " of ",
        format_dtype(e.dtype), " needs ", expected, " bytes");
  if (e.end > buffer_bytes)
    bad(source, "tensor ", in_quotes(name), " has data_offsets [", e.begin, ", ", e.end,
        "] but the data buffer has ", buffer_bytes, " bytes");
  return e;
}

// The tensors' byte ranges must tile the data buffer exactly: sorted by
// position, each must start where the previous one ended, and the last must
// end at the end of the file. Overlaps would let two tensors alias the same
// bytes; holes would hide data nobody checks.
void check_layout(std::vector<Entry> entries, uint64_t buffer_bytes, const std::string& source) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;         // bytes [0, covered) belong to the tensors seen so far
  const Entry* last = nullptr;  // the tensor that ends at `covered`
  for (const Entry& e : entries) {
    if (e.begin < covered)
      bad(source, "tensors ", in_quotes(last->name), " (data_offsets [", last->begin, ", ", last->end,
          "]) and ", in_quotes(e.name), " (data_offsets [", e.begin, ", ", e.end, "]) overlap");
    if (e.begin > covered)
      bad(source, "bytes [", covered, ", ", e.begin, ") of the data buffer belong to no tensor (",
          last ? "between " + in_quotes(last->name) + " and " : std::string("before "), in_quotes(e.name),
          ")");
    covered = e.end;
    last = &e;
  }
  if (covered != buffer_bytes)
    bad(source, "bytes [", covered, ", ", buffer_bytes,
        ") at the end of the data buffer belong to no tensor");
}

// Copies one tensor's bytes out of the buffer (its range was checked).
Tensor read_tensor(const Entry& e, std::string_view buffer, const std::string& source) {
  Tensor t = empty(e.shape, e.dtype);
  const char* src = buffer.data() + e.begin;
  const std::size_t bytes = e.end - e.begin;
  if (e.dtype == DType::Bool) {
    // A bool is one byte, 0 or 1; any other value is not a bool.
    for (std::size_t i = 0; i < bytes; ++i)
      if (src[i] != 0 && src[i] != 1)
        bad(source, "tensor ", in_quotes(e.name), " is BOOL but its byte ", i, " is ",
            static_cast<int>(static_cast<unsigned char>(src[i])), " (expected 0 or 1)");
  }
  if (bytes > 0) std::memcpy(bytes_of(t), src, bytes);
  return t;
}

std::string read_file(const std::string& path) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.fd < 0) fail("safetensors: cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) fail("safetensors: cannot open '", path, "': ", std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("safetensors: cannot open '", path, "': ", std::strerror(EISDIR));
  std::string bytes;
  if (S_ISREG(st.st_mode)) bytes.reserve(static_cast<std::size_t>(st.st_size));
  char chunk[1 << 16];
  for (;;) {
    const ssize_t got = ::read(file.fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail("safetensors: cannot read '", path, "': ", std::strerror(errno));
    if (got == 0) return bytes;
    bytes.append(chunk, static_cast<std::size_t>(got));
  }
}

}  // namespace

Checkpoint load(const std::string& path) { return parse(read_file(path), path); }

Checkpoint parse(const std::string& bytes, const std::string& source) {
  const uint64_t header_bytes = read_header_length(bytes, source);
  const std::string_view file(bytes);
  const json header = parse_header_json(file.substr(8, header_bytes), source);
  const std::string_view buffer = file.substr(8 + header_bytes);

  Checkpoint out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__")
      out.metadata = parse_metadata(value, source);
    else
      entries.push_back(parse_entry(key, value, buffer.size(), source));
  }
  check_layout(entries, buffer.size(), source);
  for (const Entry& e : entries) out.tensors.emplace(e.name, read_tensor(e, buffer, source));
  return out;
}

}  // namespace attn::safetensors
