// Positions inside attention: RoPE rotates q and k, ALiBi biases the scores.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace attn {

// ---- RoPE ----
// Pairs dimension i with i + d/2 ("half-split" pairing, as in GPT-NeoX and
// Llama's Hugging Face port) and rotates each pair by the angle pos * f_i,
// f_i = base^(-2i/d). A dot product of two rotated vectors then depends only
// on the distance between their positions.
//
// NTK-aware scaling stretches the context by `ntk_scale` without
// fine-tuning by raising the base: base * scale^(d / (d - 2)). The fastest
// pairs barely change, the slowest are slowed by the full factor.
struct RopeTables {
  Tensor cos, sin;  // [T, d/2]
};
RopeTables rope_tables(int64_t positions, int64_t head_dim, int64_t offset, float base,
                       float ntk_scale, const Device& device);
// x [..., T, d] rotated by the tables' rows (T of them).
Tensor apply_rope(const Tensor& x, const RopeTables& tables);

// ---- ALiBi ----
// Head h adds -m_h * (i - j) to the score of query i and key j: a linear
// penalty on distance, with a different slope per head. For n a power of 2
// the slopes are 2^(-8 k / n), k = 1..n; otherwise take the slopes for the
// power of two below n and fill up with every other slope of twice that.
std::vector<float> alibi_slopes(int64_t heads);
// [H, Tq, Tk] bias for queries at positions offset..offset+Tq-1.
Tensor alibi_bias(int64_t heads, int64_t tq, int64_t tk, int64_t offset, const Device& device);
// The same with the given slopes, one per head.
Tensor alibi_bias(const std::vector<float>& slopes, int64_t tq, int64_t tk, int64_t offset,
                  const Device& device);

}  // namespace attn
