// `attnlab bench attention`: time and peak memory of attention methods
// against sequence length, forward and forward+backward, with a table and
// log-log plots. Absolute times depend on the machine; the shapes of the
// curves (T^2 against T) and where they cross are the lesson.
#pragma once
#include <string>
#include <vector>

namespace attn {

struct BenchAttentionOptions {
  std::vector<int64_t> lengths = {128, 256, 512, 1024, 2048, 4096, 8192, 16384};
  std::vector<std::string> methods;  // empty = all
  int64_t heads = 4, dim = 64, window = 256;
  // Sparse patterns: strided local band (0 = window) and stride, and the
  // block-sparse pattern's block.
  int64_t sparse_local = 0, sparse_stride = 16, sparse_block = 64;
  bool backward = true;
  int repeats = 3;
  double max_dense_gib = 4.0;  // skip methods whose T x T buffers would exceed this
  std::string device = "cpu";
  // Products: fp32, tf32 (a GPU's TF32 setting, for cuBLAS; flash attention
  // stays 3xTF32) or bf16 (bfloat16 autocast, autograd/autocast.h).
  std::string precision = "fp32";
  std::string out = "runs/bench_attention";
};

struct BenchRow {
  std::string method;
  int64_t length;
  double forward_ms = -1, backward_ms = -1;  // -1 = skipped
  std::size_t forward_peak = 0, backward_peak = 0;
  std::string note;
};

std::vector<std::string> bench_attention_methods();
std::vector<BenchRow> bench_attention(const BenchAttentionOptions& options);

}  // namespace attn
