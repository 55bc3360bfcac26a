// The safetensors file format: how attnlab stores tensors on disk.
//
// Hugging Face's safetensors is a deliberately simple format, so that a file
// from a stranger can be read without running any of its code:
//
//   bytes 0..7     N, the length of the header, a little-endian uint64
//   bytes 8..8+N   the header: UTF-8 JSON, one object, maybe padded with
//                  trailing spaces so that the data starts 8-byte aligned
//   the rest       the data buffer: every tensor's bytes, back to back
//
// The header maps each tensor name to where its bytes are:
//
//   {"__metadata__": {"step": "100"},                        <- optional
//    "wte": {"dtype": "F32", "shape": [65, 32], "data_offsets": [0, 8320]}}
//
// data_offsets are [begin, end) byte positions relative to the start of the
// data buffer. Tensors are stored row-major, contiguous and little-endian.
// The ranges must tile the buffer exactly: no overlaps, no unused bytes.
// "__metadata__" is a free-form string -> string map (attnlab keeps the
// training step, the model config, ... there).
//
// attnlab supports the dtypes F32 (Float32), I64 (Int64) and BOOL (Bool,
// one byte, 0 or 1). Files written here open in Python with
// `safetensors.numpy.load_file` or `safetensors.torch.load_file`.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace attn::safetensors {

struct Checkpoint {
  std::map<std::string, Tensor> tensors;        // CPU tensors, by name
  std::map<std::string, std::string> metadata;  // the "__metadata__" object
};

// Saves `tensors` (on any device, any layout) and `metadata` to `path`.
// Names must be unique, non-empty, valid UTF-8 and not "__metadata__".
// The output depends only on the inputs (same inputs -> identical bytes).
//
// The file is written to "<path>.tmp-<pid>-<n>" in the same folder, flushed to
// disk (fsync) and then renamed over `path`, so an existing file is never
// damaged, even when writing fails (full disk, missing folder): it is
// either the old file or the complete new one. Errors name the path and the
// reason the operating system gave.
void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {});

// Reads and checks a file written by save() or by any safetensors writer
// (with supported dtypes). Every problem is an attn::Error of one line,
// "safetensors: <path>: <what is wrong>".
Checkpoint load(const std::string& path);

// Parses the bytes of a whole file held in memory; `source` names it in
// error messages. load() uses it, and so can fuzzers: it never reads out of
// bounds and never allocates more than the size of `bytes` for tensors.
Checkpoint parse(const std::string& bytes, const std::string& source);

}  // namespace attn::safetensors
