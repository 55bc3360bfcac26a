#include "attention/positions.h"

#include <cmath>

#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

RopeTables rope_tables(int64_t positions, int64_t head_dim, int64_t offset, float base,
                       float ntk_scale, const Device& device) {
  check(head_dim % 2 == 0, "rope: head dim must be even to form pairs, got ", head_dim);
  check(base > 1, "rope: base must be > 1, got ", base);
  check(ntk_scale >= 1, "rope: ntk scale must be >= 1, got ", ntk_scale);
  const int64_t half = head_dim / 2;
  const double b = base * std::pow(static_cast<double>(ntk_scale),
                                   static_cast<double>(head_dim) / std::max<int64_t>(head_dim - 2, 1));
  std::vector<float> c(positions * half), s(positions * half);
  for (int64_t t = 0; t < positions; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(t + offset) * std::pow(b, -2.0 * i / head_dim);
      c[t * half + i] = static_cast<float>(std::cos(angle));
      s[t * half + i] = static_cast<float>(std::sin(angle));
    }
  return {from_vector(c, {positions, half}, device), from_vector(s, {positions, half}, device)};
}

Tensor apply_rope(const Tensor& x, const RopeTables& r) {
  const int64_t d = x.shape().back(), half = d / 2;
  check(r.cos.shape()[1] == half && x.shape()[x.dim() - 2] == r.cos.shape()[0],
        "rope: tables of shape ", shape_str(r.cos.shape()), " do not fit x of shape ",
        shape_str(x.shape()));
  const Tensor x1 = slice(x, -1, 0, half), x2 = slice(x, -1, half, d);
  // (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos): a 2-D rotation per pair.
  return cat({sub(mul(x1, r.cos), mul(x2, r.sin)), add(mul(x1, r.sin), mul(x2, r.cos))}, -1);
}

std::vector<float> alibi_slopes(int64_t heads) {
  check(heads >= 1, "alibi: heads must be >= 1, got ", heads);
  auto power_of_two_slopes = [](int64_t n) {
    std::vector<float> s(n);
    for (int64_t k = 1; k <= n; ++k) s[k - 1] = static_cast<float>(std::pow(2.0, -8.0 * k / n));
    return s;
  };
  int64_t p = 1;
  while (p * 2 <= heads) p *= 2;
  std::vector<float> slopes = power_of_two_slopes(p);
  const std::vector<float> extra = power_of_two_slopes(2 * p);
  for (int64_t i = 0; static_cast<int64_t>(slopes.size()) < heads; i += 2) slopes.push_back(extra[i]);
  return slopes;
}

Tensor alibi_bias(int64_t heads, int64_t tq, int64_t tk, int64_t offset, const Device& device) {
  return alibi_bias(alibi_slopes(heads), tq, tk, offset, device);
}

Tensor alibi_bias(const std::vector<float>& m, int64_t tq, int64_t tk, int64_t offset,
                  const Device& device) {
  const int64_t heads = static_cast<int64_t>(m.size());
  std::vector<float> bias(heads * tq * tk);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < tq; ++i)
      for (int64_t j = 0; j < tk; ++j)
        bias[(h * tq + i) * tk + j] = -m[h] * static_cast<float>(std::abs(i + offset - j));
  return from_vector(bias, {heads, tq, tk}, device);
}

}  // namespace attn
