// Chapter 12, basic suite: up-projection with values you can read, the
// README's worked example through both the explicit and the absorbed path,
// attention on the concatenation [content | rope], causality, the cache
// formula by hand, the module next to the library's MLA with the same
// weights, and the mistakes of this chapter, each named: a wrong scale,
// RoPE on the compressed part, caching K/V instead of the latent, a RoPE key
// per head, and W_uk folded in with the wrong transpose.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "attention/kv_cache.h"
#include "attention/mla.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "latent_attention.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

// ---- a double-precision oracle, written here --------------------------------
// Explicit MLA on flat row-major vectors:
//   q [B,H,T,d], qr [B,H,T,r], k [B,H,S,d], kr [B,1,S,r], v [B,H,S,dv]
// score = (q.k + qr.kr) * scale, query i sees key j <= offset + i.
struct Sizes {
  int64_t B, H, T, S, d, r, dv;
};
std::vector<double> oracle(const std::vector<double>& q, const std::vector<double>& qr,
                           const std::vector<double>& k, const std::vector<double>& kr,
                           const std::vector<double>& v, const Sizes& n, int64_t offset, double scale) {
  std::vector<double> out(n.B * n.H * n.T * n.dv, 0.0);
  for (int64_t b = 0; b < n.B; ++b)
    for (int64_t h = 0; h < n.H; ++h)
      for (int64_t i = 0; i < n.T; ++i) {
        const int64_t last = std::min(offset + i, n.S - 1);
        std::vector<double> s(last + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < n.d; ++c)
            dot += q[((b * n.H + h) * n.T + i) * n.d + c] * k[((b * n.H + h) * n.S + j) * n.d + c];
          for (int64_t c = 0; c < n.r; ++c)
            dot += qr[((b * n.H + h) * n.T + i) * n.r + c] * kr[(b * n.S + j) * n.r + c];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= last; ++j)
          for (int64_t c = 0; c < n.dv; ++c)
            out[((b * n.H + h) * n.T + i) * n.dv + c] += s[j] / z * v[((b * n.H + h) * n.S + j) * n.dv + c];
      }
  return out;
}

// up-projection in double: lat [B,S,L] (or [B,1,S,L]), w [H*d, L] -> [B,H,S,d].
std::vector<double> expand_heads(const std::vector<double>& lat, const std::vector<double>& w,
                                 int64_t B, int64_t S, int64_t L, int64_t H, int64_t d) {
  std::vector<double> out(B * H * S * d, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t l = 0; l < L; ++l) acc += lat[(b * S + s) * L + l] * w[(h * d + c) * L + l];
          out[((b * H + h) * S + s) * d + c] = acc;
        }
  return out;
}

// The README's worked example: B = 1, H = 2, d = 1, r = 2, L = 2, T = S = 2.
struct Example {
  const float c1 = std::cos(1.0f), s1 = std::sin(1.0f);
  Tensor latents = from_vector({1, 0, /**/ 0, 2}, {1, 1, 2, 2});     // c_0, c_1
  Tensor w_up_k = from_vector({1, 1, /**/ 2, -1}, {2, 2});           // head 0 row, head 1 row
  Tensor w_up_v = from_vector({1, 0, /**/ 0, 1}, {2, 2});
  Tensor k = from_vector({1, 2, /**/ 2, -2}, {1, 2, 2, 1});          // c_j . W_uk[h]
  Tensor v = from_vector({1, 0, /**/ 0, 2}, {1, 2, 2, 1});           // c_j . W_uv[h]
  Tensor k_rope = from_vector({1, 0, /**/ c1, s1}, {1, 1, 2, 2});    // [1, 0] rotated at 0 and 1
  Tensor q = from_vector({1, 1, /**/ 1, 0.5f}, {1, 2, 2, 1});
  // head 0: [0, 1] at 0, [1, 0] at 1;  head 1: [1, 0] at 0, [0, 1] at 1 (rotated)
  Tensor q_rope = from_vector({0, 1, c1, s1, /**/ 1, 0, -s1, c1}, {1, 2, 2, 2});
};
const std::vector<double> kExampleWeights = {1, 0, 0.3009545, 0.6990455, /**/ 1, 0, 0.6612517, 0.3387483};
const std::vector<double> kExampleOut = {1, 0.3009545, /**/ 0, 0.6774967};

// RoPE in double: pairs (i, i + r/2) rotated by pos * 10000^(-2i/r).
std::vector<double> rotate(std::vector<double> x, int64_t rows, int64_t r, int64_t pos) {
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t i = 0; i < r / 2; ++i) {
      const double a = pos * std::pow(10000.0, -2.0 * i / r);
      double& x1 = x[row * r + i];
      double& x2 = x[row * r + i + r / 2];
      const double y1 = x1 * std::cos(a) - x2 * std::sin(a), y2 = x1 * std::sin(a) + x2 * std::cos(a);
      x1 = y1, x2 = y2;
    }
  return x;
}

// y = x W^T + b in double for one row.
std::vector<double> affine(const std::vector<double>& x, const Tensor& w, const Tensor& b) {
  const std::vector<double> W = values(w), bv = b.defined() ? values(b) : std::vector<double>();
  const int64_t out = w.shape()[0], in = w.shape()[1];
  std::vector<double> y(out);
  for (int64_t o = 0; o < out; ++o) {
    double s = bv.empty() ? 0.0 : bv[o];
    for (int64_t i = 0; i < in; ++i) s += x[i] * W[o * in + i];
    y[o] = s;
  }
  return y;
}

// Module and library MLA with the same, enlarged weights (so attention is
// far from uniform and mistakes show).
void randomise(Module& m, uint64_t seed, float scale = 0.5f) {
  auto sd = m.state_dict();
  for (auto& [name, t] : sd) t = random_tensor(t.shape(), seed++, scale);
  m.load_state_dict(sd);
}

AttentionConfig config(int64_t C, int64_t H) {
  AttentionConfig c;
  c.embd = C;
  c.heads = H;
  c.block_size = 64;
  return c;
}

}  // namespace

// ----------------------------------------------------------------- up_project

TEST(UpProject, EachHeadGetsItsOwnRowsOfWup) {
  // latent c_t = [t + 1, 10 (t + 1)]; W_up rows [1,0],[0,1] (head 0) and
  // [2,0],[0,2] (head 1): head 0 copies the latent, head 1 doubles it.
  const Tensor latent = from_vector({1, 10, 2, 20, 3, 30}, {1, 3, 2});
  const Tensor w = from_vector({1, 0, 0, 1, /**/ 2, 0, 0, 2}, {4, 2});
  EXPECT_TRUE(close("up_project(latent [1,3,2], w_up [4,2], heads 2)",
                    lesson12::up_project(latent, w, 2),
                    {1, 10, 2, 20, 3, 30, /**/ 2, 20, 4, 40, 6, 60}, {1, 2, 3, 2}))
      << "out[0, h, t, :] = c_t @ w_up[2h : 2h+2, :]^T. Head 1 must hold 2x the latent. If the "
         "values are right but in the wrong places, split as [B, T, H, d] and then transpose(1, 2)";
}

TEST(UpProject, RowsThatDoNotSplitIntoHeadsAreRejected) {
  EXPECT_TRUE(rejects("up_project(w_up with 5 rows, heads 2)",
                      [] { lesson12::up_project(random_tensor({1, 3, 4}, 1), random_tensor({5, 4}, 2), 2); },
                      "5 rows cannot be cut into 2 heads of equal size"));
}

// -------------------------------------------------------------- mla_attention

TEST(MlaAttention, ReadmeWorkedExample) {
  // Token 1, head 0: raw scores [1 + cos 1, 2 + 1] = [1.5403, 3], times
  // 1/sqrt(d + r) = 1/sqrt(3) -> weights [0.3010, 0.6990], out 0.3010.
  const Example e;
  Tensor w;
  const Tensor out = lesson12::mla_attention(e.q, e.q_rope, e.k, e.k_rope, e.v, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_TRUE(close("weights", w, kExampleWeights, {1, 2, 2, 2}));
  EXPECT_TRUE(close("out", out, kExampleOut, {1, 2, 2, 1}));
}

TEST(MlaAttention, IsAttentionOnTheConcatenation) {
  // [q, q_rope] . [k, k_rope] = q.k + q_rope.k_rope: MLA's two-part score is
  // ordinary attention on concatenated vectors of size d + r.
  const int64_t B = 2, H = 3, T = 5, d = 4, r = 2;
  const Tensor q = random_tensor({B, H, T, d}, 10), qr = random_tensor({B, H, T, r}, 11),
               k = random_tensor({B, H, T, d}, 12), kr = random_tensor({B, 1, T, r}, 13),
               v = random_tensor({B, H, T, 3}, 14);
  const Tensor want = scaled_dot_product_attention(
      cat({q, qr}, -1), cat({k, cat({kr, kr, kr}, 1)}, -1), v, causal_mask(T, T, 0, Device::cpu()),
      1.0f / std::sqrt(float(d + r)));
  EXPECT_TRUE(close("mla_attention vs attention on [q | q_rope], [k | k_rope]",
                    lesson12::mla_attention(q, qr, k, kr, v), want))
      << "the shared k_rope [B, 1, S, r] goes to every head; the scale is 1/sqrt(d + r)";
}

TEST(MlaAttention, CausalWithAnOffset) {
  // Two queries at positions 3, 4 over 5 keys: query 0 must give weight 0 to key 4.
  const Tensor q = random_tensor({1, 2, 2, 4}, 20), qr = random_tensor({1, 2, 2, 2}, 21),
               k = random_tensor({1, 2, 5, 4}, 22), kr = random_tensor({1, 1, 5, 2}, 23),
               v = random_tensor({1, 2, 5, 2}, 24);
  Tensor w;
  lesson12::mla_attention(q, qr, k, kr, v, 3, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out when it is non-null";
  const std::vector<double> wv = values(w);
  for (int64_t h = 0; h < 2; ++h) {
    EXPECT_NEAR(wv[(h * 2 + 0) * 5 + 4], 0.0, 1e-7)
        << "head " << h << ": the query at position 3 sees key 4 (the future): keep j <= offset + i";
    EXPECT_GT(wv[(h * 2 + 0) * 5 + 3], 0.0) << "head " << h << ": the query at position 3 must see key 3";
    EXPECT_GT(wv[(h * 2 + 1) * 5 + 4], 0.0) << "head " << h << ": the query at position 4 must see key 4";
  }
}

// ------------------------------------------------------------------ absorbed

TEST(Absorbed, ReadmeWorkedExample) {
  // Head 0 in latent space: q_lat = 1 * [1, 1]; q_lat . c_0 = 1 = q . k_0,
  // q_lat . c_1 = 2 = q . k_1. Same scores, same weights, same output.
  const Example e;
  Tensor w;
  const Tensor out = lesson12::mla_attention_absorbed(e.q, e.q_rope, e.latents, e.k_rope, e.w_up_k,
                                                      e.w_up_v, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_TRUE(close("absorbed weights", w, kExampleWeights, {1, 2, 2, 2}));
  EXPECT_TRUE(close("absorbed out", out, kExampleOut, {1, 2, 2, 1}));
}

TEST(Absorbed, EqualsTheExplicitPath) {
  const int64_t B = 2, H = 4, T = 3, S = 7, d = 4, r = 2, L = 6, offset = 4;
  const Tensor q = random_tensor({B, H, T, d}, 30), qr = random_tensor({B, H, T, r}, 31),
               lat = random_tensor({B, 1, S, L}, 32), kr = random_tensor({B, 1, S, r}, 33),
               wk = random_tensor({H * d, L}, 34), wv = random_tensor({H * 3, L}, 35);
  const Tensor c = squeeze(lat, 1);
  const Tensor k = reshape(transpose(reshape(matmul(c, transpose(wk, 0, 1)), {B, S, H, d}), 1, 2), {B, H, S, d});
  const Tensor v = reshape(transpose(reshape(matmul(c, transpose(wv, 0, 1)), {B, S, H, 3}), 1, 2), {B, H, S, 3});
  const std::vector<double> want = oracle(values(q), values(qr), values(k), values(kr), values(v),
                                          {B, H, T, S, d, r, 3}, offset, 1 / std::sqrt(double(d + r)));
  EXPECT_TRUE(close("mla_attention_absorbed (3 queries at positions 4..6 over 7 cached tokens)",
                    lesson12::mla_attention_absorbed(q, qr, lat, kr, wk, wv, offset), want,
                    {B, H, T, 3}, 2e-4))
      << "absorbed must give exactly the explicit path's numbers";
}

// --------------------------------------------------------------- cache size

TEST(CacheSize, FormulaByHand) {
  // DeepSeek-V2: 60 layers, latent 512, RoPE key 64, bf16: 60 * 576 * 2 bytes.
  EXPECT_EQ(lesson12::mla_cache_bytes_per_token(60, 512, 64, 2), 69120)
      << "layers * (latent + rope_dim) * bytes_per_value: no factor 2 (K and V both come out of "
         "the one cached latent) and no heads (nothing per head is cached)";
  // Our char GPT (4 layers, embd 128: latent 32, rope_dim 16), float32.
  EXPECT_EQ(lesson12::mla_cache_bytes_per_token(4, 32, 16), 768)
      << "bytes_per_value defaults to 4 (float32)";
  EXPECT_EQ(lesson12::mla_cache_bytes_per_token(1, 1, 2, 4), 12);
}

// ------------------------------------------------------------------- module

TEST(Module, ProjectRotatesOnlyTheRopeParts) {
  // Tokens at positions 3, 4 (offset 3). q and the latent are plain
  // projections; q_rope and k_rope are projections rotated by their position.
  Generator gen(40);
  const int64_t C = 8, H = 2, L = 4, r = 4, T = 2, offset = 3;
  lesson12::LatentAttention m(C, H, L, r, gen);
  randomise(m, 41);
  const Tensor x = random_tensor({1, T, C}, 42);
  const auto p = m.project(x, offset);
  auto sd = m.state_dict();
  std::vector<double> q, qr, lat, kr;
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<double> xt = values(select(select(x, 0, 0), 0, t));
    const auto qt = affine(xt, sd.at("wq.weight"), sd.at("wq.bias"));
    const auto qrt = rotate(affine(xt, sd.at("wq_rope.weight"), sd.at("wq_rope.bias")), H, r, offset + t);
    const auto lt = affine(xt, sd.at("w_down_kv.weight"), sd.at("w_down_kv.bias"));
    const auto krt = rotate(affine(xt, sd.at("w_k_rope.weight"), sd.at("w_k_rope.bias")), 1, r, offset + t);
    q.insert(q.end(), qt.begin(), qt.end());
    qr.insert(qr.end(), qrt.begin(), qrt.end());
    lat.insert(lat.end(), lt.begin(), lt.end());
    kr.insert(kr.end(), krt.begin(), krt.end());
  }
  // q, qr were built token-major [T, H, *]; compare per head.
  auto head_major = [&](const std::vector<double>& tm, int64_t width) {
    std::vector<double> hm;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < width; ++c) hm.push_back(tm[(t * H + h) * width + c]);
    return hm;
  };
  EXPECT_TRUE(close("project().q (no rotation)", p.q, head_major(q, C / H), {1, H, T, C / H}));
  EXPECT_TRUE(close("project().q_rope (rotated at positions 3, 4)", p.q_rope, head_major(qr, r), {1, H, T, r}))
      << "rotate q_rope with attn::rope_tables(T, r, offset, 10000, 1, device) and attn::apply_rope";
  EXPECT_TRUE(close("project().latent (never rotated)", p.latent, lat, {1, 1, T, L}))
      << "the latent must stay unrotated: a position-dependent rotation of c cannot be folded into W_uk";
  EXPECT_TRUE(close("project().k_rope (rotated at positions 3, 4)", p.k_rope, kr, {1, 1, T, r}));
}

TEST(Module, ExplicitPathMatchesTheLibrary) {
  Generator gen(50);
  const int64_t C = 12, H = 3, L = 5, r = 2;
  MultiHeadLatentAttention lib(config(C, H), L, r, gen);
  randomise(lib, 51);
  lesson12::LatentAttention m(C, H, L, r, gen);
  m.load_state_dict(lib.state_dict());
  const Tensor x = random_tensor({2, 6, C}, 52);
  EXPECT_TRUE(close("forward(x) vs attn::MultiHeadLatentAttention with the same weights", m.forward(x),
                    lib.forward(x), 2e-4));
}

TEST(Module, AbsorbedPathMatchesTheLibrary) {
  // Prefill 4 tokens, then decode 1: both through forward_cached.
  Generator gen(60);
  const int64_t C = 12, H = 3, L = 5, r = 2;
  MultiHeadLatentAttention lib(config(C, H), L, r, gen);
  randomise(lib, 61);
  lesson12::LatentAttention m(C, H, L, r, gen);
  m.load_state_dict(lib.state_dict());
  NoGradGuard no_grad;
  KVCache mine(1, 1, CacheLayout{1, L, r}, 8, Device::cpu()), theirs(1, 1, CacheLayout{1, L, r}, 8, Device::cpu());
  const Tensor x = random_tensor({1, 5, C}, 62);
  const Tensor prompt = narrow(x, 1, 0, 4), next = narrow(x, 1, 4, 1);
  EXPECT_TRUE(close("forward_cached(prefill of 4 tokens)", m.forward_cached(prompt, mine, 0),
                    lib.forward_cached(prompt, theirs, 0), 2e-4));
  mine.commit(4), theirs.commit(4);
  EXPECT_TRUE(close("forward_cached(token at position 4)", m.forward_cached(next, mine, 0),
                    lib.forward_cached(next, theirs, 0), 2e-4))
      << "the new token sits at position cache.length() = 4 (RoPE and mask)";
}

// ----------------------------------------------------------------- mistakes

TEST(Mistakes, WrongScale) {
  // d = 4, r = 2, L = 8: every plausible wrong denominator gives other numbers.
  const int64_t B = 1, H = 2, T = 4, d = 4, r = 2, L = 8;
  const Tensor q = random_tensor({B, H, T, d}, 70, 1.5f), qr = random_tensor({B, H, T, r}, 71, 1.5f),
               lat = random_tensor({B, 1, T, L}, 72), kr = random_tensor({B, 1, T, r}, 73, 1.5f),
               wk = random_tensor({H * d, L}, 74), wv = random_tensor({H * d, L}, 75);
  const auto k = expand_heads(values(lat), values(wk), B, T, L, H, d);
  const auto v = expand_heads(values(lat), values(wv), B, T, L, H, d);
  const Tensor kt = from_vector(std::vector<float>(k.begin(), k.end()), {B, H, T, d});
  const Tensor vt = from_vector(std::vector<float>(v.begin(), v.end()), {B, H, T, d});
  const Sizes n{B, H, T, T, d, r, d};
  auto with_scale = [&](double s) { return oracle(values(q), values(qr), k, values(kr), v, n, 0, s); };
  const std::vector<std::pair<std::string, double>> wrong = {
      {"1/sqrt(d) (the content part only)", 1 / std::sqrt(double(d))},
      {"1/sqrt(r) (the RoPE part only)", 1 / std::sqrt(double(r))},
      {"1/sqrt(L) (the latent size)", 1 / std::sqrt(double(L))},
      {"1/sqrt(L + r) (the absorbed vector size)", 1 / std::sqrt(double(L + r))},
      {"1 (no scale at all)", 1.0}};
  auto diagnose = [&](const Tensor& got) {
    for (const auto& [name, s] : wrong)
      if (close("", got, with_scale(s), {B, H, T, d}, 1e-4))
        return "your output matches the scale " + name +
               ": the score is a dot product of vectors of size d + r, so divide by sqrt(d + r)";
    return std::string("(the scale is 1/sqrt(d + r) = 1/sqrt(6) here)");
  };
  const std::vector<double> right = with_scale(1 / std::sqrt(double(d + r)));
  const Tensor explicit_out = lesson12::mla_attention(q, qr, kt, kr, vt);
  EXPECT_TRUE(close("mla_attention", explicit_out, right, {B, H, T, d})) << diagnose(explicit_out);
  const Tensor absorbed_out = lesson12::mla_attention_absorbed(q, qr, lat, kr, wk, wv);
  EXPECT_TRUE(close("mla_attention_absorbed", absorbed_out, right, {B, H, T, d}, 2e-4))
      << diagnose(absorbed_out);
}

TEST(Mistakes, RopeOnTheCompressedPartBreaksAbsorption) {
  // With the RoPE projections zeroed, positions must play no part in the
  // content score: a model that also rotates q, k = c W_uk or the latent c
  // gives other numbers, and its explicit and absorbed paths disagree.
  Generator gen(80);
  const int64_t C = 8, H = 2, L = 4, r = 4, T = 5;
  lesson12::LatentAttention m(C, H, L, r, gen);
  randomise(m, 81, 0.6f);
  auto sd = m.state_dict();
  for (const char* name : {"wq_rope.weight", "wq_rope.bias", "w_k_rope.weight", "w_k_rope.bias"})
    sd[name] = zeros(sd.at(name).shape());
  m.load_state_dict(sd);
  const Tensor x = random_tensor({1, T, C}, 82);
  // The oracle: content scores only, no rotation anywhere.
  std::vector<double> q, lat;
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<double> xt = values(select(select(x, 0, 0), 0, t));
    const auto qt = affine(xt, sd.at("wq.weight"), sd.at("wq.bias"));
    const auto lt = affine(xt, sd.at("w_down_kv.weight"), sd.at("w_down_kv.bias"));
    q.insert(q.end(), qt.begin(), qt.end());
    lat.insert(lat.end(), lt.begin(), lt.end());
  }
  const int64_t d = C / H;
  std::vector<double> qh(H * T * d);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t c = 0; c < d; ++c) qh[(h * T + t) * d + c] = q[t * C + h * d + c];
  const auto k = expand_heads(lat, values(sd.at("w_up_k.weight")), 1, T, L, H, d);
  const auto v = expand_heads(lat, values(sd.at("w_up_v.weight")), 1, T, L, H, d);
  const std::vector<double> o = oracle(qh, std::vector<double>(H * T * r, 0.0), k,
                                       std::vector<double>(T * r, 0.0), v, {1, H, T, T, d, r, d}, 0,
                                       1 / std::sqrt(double(d + r)));
  const Tensor heads_out = from_vector(std::vector<float>(o.begin(), o.end()), {1, H, T, d});
  const Tensor want = m.merge(heads_out);
  const Tensor got = m.forward(x);
  EXPECT_TRUE(close("forward(x) with the RoPE projections zeroed", got, want, 2e-4))
      << "positions leaked into the content part: RoPE belongs on q_rope and k_rope only, never "
         "on q, on k = c W_uk or on the latent c";
  KVCache cache(1, 1, m.cache_layout(), T, Device::cpu());
  const Tensor cached = m.forward_cached(x, cache, 0);
  EXPECT_TRUE(close("forward_cached(x) (absorbed) vs forward(x) (explicit)", cached, got, 2e-4))
      << "the absorbed and explicit paths disagree: q_h . (R_j c_j W_uk[h]^T) cannot be rewritten "
         "as (q_h W_uk[h]) . c_j once a position-dependent rotation sits between c and W_uk";
}

TEST(Mistakes, CachingUpProjectedKvInsteadOfTheLatent) {
  // 4 heads of 8 with a latent of 8 and a RoPE key of 4: MHA would cache
  // 2 * 4 * 8 = 64 floats per token, MLA caches 8 + 4 = 12.
  Generator gen(90);
  const int64_t C = 32, H = 4, L = 8, r = 4, capacity = 128;
  lesson12::LatentAttention m(C, H, L, r, gen);
  const CacheLayout layout = m.cache_layout();
  const std::size_t before = cpu_allocator().stats().current;
  const KVCache cache(1, 1, layout, capacity, Device::cpu());
  const std::size_t bytes = cpu_allocator().stats().current - before;
  const std::size_t per_token = bytes / capacity;
  EXPECT_EQ(per_token, std::size_t((L + r) * 4))
      << "a cache built from your cache_layout() {heads " << layout.heads << ", k_dim " << layout.k_dim
      << ", v_dim " << layout.v_dim << "} allocates " << per_token << " bytes per token; MLA caches "
      << "the latent (" << L << " floats) and the shared RoPE key (" << r << "): " << (L + r) * 4
      << " bytes."
      << (per_token >= std::size_t(2 * H * (C / H) * 4)
              ? " That is at least MHA's 2 * H * d floats: you cache the up-projected K and V "
                "instead of the latent they come from."
              : "");
  EXPECT_EQ(lesson12::mla_cache_bytes_per_token(1, L, r), (L + r) * 4)
      << "mla_cache_bytes_per_token(1 layer, latent " << L << ", rope_dim " << r
      << "): one latent and one RoPE key, 4 bytes each value";
}

TEST(Mistakes, RopeKeyPerHeadInsteadOfShared) {
  Generator gen(100);
  const int64_t C = 12, H = 3, L = 4, r = 2;
  lesson12::LatentAttention m(C, H, L, r, gen);
  const auto p = m.project(random_tensor({2, 5, C}, 101), 0);
  EXPECT_EQ(p.k_rope.shape(), (Shape{2, 1, 5, r}))
      << "project().k_rope is " << shape_str(p.k_rope.shape()) << ": the RoPE key is ONE vector of r "
      << "values per token shared by all " << H << " heads (that is why it costs only r floats in "
      << "the cache); only the queries have a RoPE part per head";
  EXPECT_EQ(p.q_rope.shape(), (Shape{2, H, 5, r})) << "q_rope has one part per head";
  EXPECT_EQ(p.latent.shape(), (Shape{2, 1, 5, L})) << "the latent is cached once per token: [B, 1, T, L]";
  const CacheLayout layout = m.cache_layout();
  EXPECT_TRUE(layout.heads == 1 && layout.k_dim == L && layout.v_dim == r)
      << "cache_layout() is {" << layout.heads << ", " << layout.k_dim << ", " << layout.v_dim
      << "}, expected {1, L = " << L << ", r = " << r << "}: one latent and one shared RoPE key per token";
}

TEST(Mistakes, AbsorbedPathTransposesWukWrongly) {
  // d = L = dv = 3, so a wrongly transposed W_uk or W_uv still has the right
  // shape and only the numbers can tell.
  const int64_t B = 1, H = 2, T = 4, d = 3, r = 2, L = 3;
  const Tensor q = random_tensor({B, H, T, d}, 110), qr = random_tensor({B, H, T, r}, 111),
               lat = random_tensor({B, 1, T, L}, 112), kr = random_tensor({B, 1, T, r}, 113),
               wk = random_tensor({H * d, L}, 114, 1.5f), wv = random_tensor({H * d, L}, 115);
  const Sizes n{B, H, T, T, d, r, d};
  const double scale = 1 / std::sqrt(double(d + r));
  auto explicit_with = [&](const std::vector<double>& wk_flat, const std::vector<double>& wv_flat) {
    return oracle(values(q), values(qr), expand_heads(values(lat), wk_flat, B, T, L, H, d), values(kr),
                  expand_heads(values(lat), wv_flat, B, T, L, H, d), n, 0, scale);
  };
  // Each head's [d, L] block transposed (q @ W_uk[h]^T instead of q @ W_uk[h]).
  auto per_head_t = [&](const Tensor& w) {
    const std::vector<double> f = values(w);
    std::vector<double> t(f.size());
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < d; ++i)
        for (int64_t l = 0; l < L; ++l) t[(h * d + i) * L + l] = f[(h * d + l) * L + i];
    return t;
  };
  const Tensor got = lesson12::mla_attention_absorbed(q, qr, lat, kr, wk, wv);
  std::string why = "compare with the explicit path: q_lat = q @ view(w_up_k, {H, d, L}) (no transpose), "
                    "out = mixed @ transpose(view(w_up_v, {H, dv, L}), 1, 2)";
  if (close("", got, explicit_with(per_head_t(wk), values(wv)), {B, H, T, d}, 1e-4))
    why = "you multiply q by W_uk[h]^T: k_h = c W_uk[h]^T, so q . k_h = (q @ W_uk[h]) . c; the block "
          "of head h is view(w_up_k, {H, d, L})[h], used as is";
  else if (close("", got, explicit_with(values(wk), per_head_t(wv)), {B, H, T, d}, 1e-4))
    why = "W_uk is right but W_uv is folded in untransposed: v_h = c W_uv[h]^T, so "
          "out_h = (sum_j p_j c_j) @ W_uv[h]^T";
  EXPECT_TRUE(close("mla_attention_absorbed with d = L", got, explicit_with(values(wk), values(wv)),
                    {B, H, T, d}, 2e-4))
      << why;
}
