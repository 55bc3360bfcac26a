// Attention dropout (attention/dropout.cpp, core/attention_dropout.h):
//   - the dense path drops exactly the entries an independent Philox oracle
//     says, and scales the rest by 1 / (1 - p);
//   - a block of the matrix (the banded window path) drops what the whole
//     matrix drops there;
//   - dense, banded-window and flash paths with the same stream agree on
//     outputs and gradients (kernels and whole models), and pass gradcheck
//     with a fixed stream;
//   - every softmax variant drops while training only: evaluation,
//     forward_cached and a module without a source draw nothing and equal
//     the output without dropout;
//   - variants without probabilities (linear, student:) refuse an explicit
//     attention dropout.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "attention/flash.h"
#include "attention/kernel.h"
#include "attention/multi_head.h"
#include "attention/positions.h"
#include "attention/registry.h"
#include "attention/window.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "testcases/philox_oracle.h"

using namespace attn;

namespace {

// The oracle of every keep decision: testcases/philox_oracle.h.

const AttentionDropoutArgs kDrop{0x5eed5eedULL, 7, 300, 0.4f};

// |a - b| <= tol * max|a| + 1e-6, elementwise.
::testing::AssertionResult close(const Tensor& a_t, const Tensor& b_t, double tol = 2e-5) {
  const auto a = a_t.to_vector(), b = b_t.to_vector();
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ";
  double scale = 0;
  for (float x : a) scale = std::max(scale, std::fabs(static_cast<double>(x)));
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::fabs(static_cast<double>(a[i]) - b[i]) <= tol * scale + 1e-6))
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i]
                                           << " (scale " << scale << ")";
  return ::testing::AssertionSuccess();
}

// A call of the multi-head kernels on random q [B, H, T, d], k/v [B, Hkv, T, d].
AttentionCall random_call(int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t d, uint64_t seed,
                          bool alibi = false) {
  Generator g(seed);
  AttentionCall c;
  c.q = randn({B, H, T, d}, g).set_requires_grad();
  c.k = randn({B, Hkv, T, d}, g).set_requires_grad();
  c.v = randn({B, Hkv, T, d}, g).set_requires_grad();
  c.scale = 1.0f / std::sqrt(static_cast<float>(d));
  if (alibi) c.alibi = alibi_slopes(H);
  c.dropout = kDrop;
  return c;
}

struct Grads {
  Tensor out, dq, dk, dv;
};

// The kernel's output and the gradients of sum(out * r) for q, k, v.
Grads run_kernel(const AttentionKernel& kernel, const AttentionCall& c0) {
  AttentionCall c = c0;
  c.q = c0.q.detach().set_requires_grad();
  c.k = c0.k.detach().set_requires_grad();
  c.v = c0.v.detach().set_requires_grad();
  const Tensor out = kernel(c);
  Generator g(99);
  sum(mul(out, randn(out.shape(), g))).backward();
  return {out, c.q.grad(), c.k.grad(), c.v.grad()};
}

void expect_same(const Grads& a, const Grads& b, const std::string& what) {
  EXPECT_TRUE(close(a.out, b.out)) << what << ": out";
  EXPECT_TRUE(close(a.dq, b.dq, 1e-4)) << what << ": dq";
  EXPECT_TRUE(close(a.dk, b.dk, 1e-4)) << what << ": dk";
  EXPECT_TRUE(close(a.dv, b.dv, 1e-4)) << what << ": dv";
}

}  // namespace

// ---------------------------------------------------------------------------
// The keying, on the dense path.

TEST(AttentionDropout, DensePathDropsExactlyTheOraclesEntries) {
  const int64_t B = 2, H = 3, Tq = 7, Tk = 9;
  Generator g(1);
  const Tensor w = randn({B, H, Tq, Tk}, g);
  const auto x = w.to_vector(), y = drop_attention_weights(w, kDrop, Tq, Tk).to_vector();
  const float scale = 1.0f / (1.0f - kDrop.p);
  int64_t dropped = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i)
        for (int64_t j = 0; j < Tk; ++j) {
          const int64_t n = ((b * H + h) * Tq + i) * Tk + j;
          const bool keep = philox_oracle::keep(kDrop, b, h, i, j, Tq, Tk);
          dropped += !keep;
          ASSERT_EQ(y[n], keep ? x[n] * scale : 0.0f) << "b " << b << " h " << h << " i " << i << " j " << j;
        }
  EXPECT_NEAR(static_cast<double>(dropped) / (B * H * Tq * Tk), kDrop.p, 0.1);
  // It is the dropout op on the [B, H, Tq, Tk] weights, rows as samples.
  EXPECT_EQ(y, dropout(w, kDrop.p, {kDrop.seed, kDrop.offset}, kDrop.first_sample).to_vector());
}

TEST(AttentionDropout, DenseKernelOutputIsTheDroppedWeightsTimesV) {
  // out = (P * Z) V with P the undropped causal softmax, in double.
  AttentionCall c = random_call(2, 2, 1, 6, 3, 2);
  c.want_weights = true;
  const auto out = dense_causal_attention(c).to_vector();
  const auto P = c.weights.to_vector(), v = c.v.to_vector();
  const double scale = 1.0f / (1.0f - kDrop.p);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t e = 0; e < 3; ++e) {
          double want = 0;
          for (int64_t j = 0; j <= i; ++j)
            if (philox_oracle::keep(kDrop, b, h, i, j, 6, 6))
              want += P[((b * 2 + h) * 6 + i) * 6 + j] * scale * v[(b * 6 + j) * 3 + e];
          EXPECT_NEAR(out[((b * 2 + h) * 6 + i) * 3 + e], want, 1e-5);
        }
}

TEST(AttentionDropout, ABlockDropsWhatTheWholeMatrixDropsThere) {
  // The banded window path drops [B, H, rows, cols] blocks of the matrix.
  const int64_t Tq = 11, Tk = 13;
  Generator g(3);
  const Tensor w = randn({2, 2, Tq, Tk}, g);
  const Tensor whole = drop_attention_weights(w, kDrop, Tq, Tk);
  const std::array<int64_t, 4> blocks[] = {{3, 8, 1, 6}, {0, 11, 5, 13}, {10, 11, 0, 13}};
  for (const auto& [r0, r1, c0, c1] : blocks) {
    const Tensor block = slice(slice(w, 2, r0, r1), 3, c0, c1).contiguous();
    const Tensor got = drop_attention_weights(block, kDrop, Tq, Tk, r0, c0);
    EXPECT_EQ(got.to_vector(), slice(slice(whole, 2, r0, r1), 3, c0, c1).contiguous().to_vector())
        << "rows " << r0 << ".." << r1 << " keys " << c0 << ".." << c1;
  }
  // Its backward applies the same decisions to the gradient.
  Tensor b = randn({1, 2, 4, 5}, g).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return drop_attention_weights(in[0], kDrop, 9, 12, 2, 3); }, {b});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_THROW(drop_attention_weights(b, kDrop, 9, 12, 7, 3), Error);  // rows 7..11 of 9
}

// ---------------------------------------------------------------------------
// Dense, banded and flash paths drop the same entries.

TEST(AttentionDropout, DenseAndFlashKernelsAgree) {
  struct Case {
    const char* what;
    int64_t B, H, Hkv, T, d;
    bool alibi;
  };
  for (const Case& k : {Case{"MHA", 2, 2, 2, 9, 4, false}, Case{"GQA + ALiBi", 1, 4, 2, 17, 8, true},
                        Case{"several tiles", 1, 2, 1, 150, 8, false}}) {
    const AttentionCall c = random_call(k.B, k.H, k.Hkv, k.T, k.d, 10 + k.T, k.alibi);
    expect_same(run_kernel(dense_causal_attention, c), run_kernel(flash_kernel(0), c), k.what);
    // Without dropout both differ from the dropped result.
    AttentionCall none = c;
    none.dropout = {};
    EXPECT_FALSE(close(run_kernel(flash_kernel(0), none).out, run_kernel(flash_kernel(0), c).out)) << k.what;
  }
}

TEST(AttentionDropout, BandedWindowMaskedWindowAndFlashWindowAgree) {
  // Chunks of the banded path start at unaligned keys and rows.
  for (int64_t window : {3, 20}) {
    const AttentionCall c = random_call(2, 2, 1, 90, 4, 20 + window, window == 3);
    const std::string what = "window " + std::to_string(window);
    const Grads banded = run_kernel(
        [window](const AttentionCall& call) { return window_attention_banded(call, window, 7); }, c);
    expect_same(banded, run_kernel([window](const AttentionCall& call) {
                  return window_attention_masked(call, window);
                }, c), what + " masked");
    expect_same(banded, run_kernel(flash_kernel(window), c), what + " flash");
  }
}

TEST(AttentionDropout, GradcheckWithAFixedStream) {
  AttentionCall c = random_call(1, 2, 1, 6, 3, 30);
  const GradFn through = [&c](const std::vector<Tensor>& in) {
    AttentionCall call = c;
    call.q = in[0], call.k = in[1], call.v = in[2];
    return dense_causal_attention(call);
  };
  GradcheckResult r = gradcheck(through, {c.q, c.k, c.v});
  EXPECT_TRUE(r.ok) << "dense: " << r.message;
  FlashOptions o;
  o.dropout = kDrop;
  o.window = 4;
  r = gradcheck([o](const std::vector<Tensor>& in) { return flash_attention(in[0], in[1], in[2], o); },
                {c.q, c.k, c.v});
  EXPECT_TRUE(r.ok) << "flash: " << r.message;
  r = gradcheck(
      [&c](const std::vector<Tensor>& in) {
        AttentionCall call = c;
        call.q = in[0], call.k = in[1], call.v = in[2];
        return window_attention_banded(call, 2, 2);
      },
      {c.q, c.k, c.v});
  EXPECT_TRUE(r.ok) << "banded window: " << r.message;
}

// ---------------------------------------------------------------------------
// Whole models: same weights, same stream, dense against flash.

namespace {

GPTConfig small_config(const std::string& attention, float attn_dropout) {
  GPTConfig c;
  c.vocab = 11;
  c.block_size = 24;
  c.layers = 2;
  c.heads = 4;
  c.embd = 16;
  c.attention = attention;
  c.attn_dropout = attn_dropout;
  return c;
}

const Tensor& model_ids() {
  static const Tensor ids = [] {
    std::vector<int64_t> v(2 * 20);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>((i * 7 + 3) % 11);
    return from_ints(v, {2, 20});
  }();
  return ids;
}

// Logits and every parameter gradient of a training forward at
// first_sample 40, from the model's stream as it is.
std::vector<Tensor> train_outputs(GPT& m) {
  m.train();
  m.dropout_source().first_sample = 40;
  const Tensor logits = m.forward(model_ids());
  sum(mul(logits, logits)).backward();
  std::vector<Tensor> out{logits};
  for (auto& [name, p] : m.named_parameters()) out.push_back(p->grad());
  return out;
}

}  // namespace

TEST(AttentionDropout, DenseAndFlashModelsAgree) {
  for (const char* pair : {"mha|flash", "gqa:kv_heads=2,alibi|flash:kv_heads=2,alibi",
                           "mha:rope|flash:rope", "window:size=5|flash:window=5"}) {
    const std::string s(pair);
    GPT dense(small_config(s.substr(0, s.find('|')), 0.3f), 3);
    GPT flash(small_config(s.substr(s.find('|') + 1), 0.3f), 3);
    flash.load_state_dict(dense.state_dict());
    const auto a = train_outputs(dense), b = train_outputs(flash);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_TRUE(close(a[0], b[0])) << pair << ": logits";
    for (size_t i = 1; i < a.size(); ++i) EXPECT_TRUE(close(a[i], b[i], 1e-4)) << pair << ": gradient " << i;
    // Both drew one stream per layer, nothing else (dropout is 0).
    EXPECT_EQ(dense.dropout_source().offset, 2u);
    EXPECT_EQ(flash.dropout_source().offset, 2u);
    // And the dropout changed the logits.
    GPT plain(small_config(s.substr(0, s.find('|')), 0.0f), 3);
    EXPECT_FALSE(close(train_outputs(plain)[0], a[0])) << pair;
  }
}

// ---------------------------------------------------------------------------
// Only training drops: every softmax variant.

namespace {

const char* const kSoftmaxVariants[] = {
    "mha", "gqa:kv_heads=2", "mqa", "mha:rope", "mha:alibi", "window:size=3", "window:size=3,alibi",
    "sparse:local=2,stride=3", "blocksparse:block=3", "mla", "flash", "flash:window=3,kv_heads=2"};

std::shared_ptr<Attention> build(const std::string& spec, float p) {
  AttentionConfig c;
  c.embd = 16;
  c.heads = 4;
  c.block_size = 16;
  c.dropout = p;
  Generator g(5);  // the same weights for every p
  return make_attention(spec, c, g);
}

Tensor input_x() {
  Generator g(6);
  return randn({2, 9, 16}, g);
}

}  // namespace

TEST(AttentionDropout, EveryVariantDropsWhileTrainingOnly) {
  for (const char* spec : kSoftmaxVariants) {
    SCOPED_TRACE(spec);
    const auto plain = build(spec, 0.0f), dropping = build(spec, 0.5f);
    DropoutSource source{11, 0, 0};
    dropping->set_dropout_source(&source);
    NoGradGuard no_grad;
    const auto want = plain->forward(input_x()).to_vector();
    // Training with a source: one stream drawn, some weights dropped.
    const auto dropped = dropping->forward(input_x()).to_vector();
    EXPECT_NE(dropped, want);
    EXPECT_EQ(source.offset, 1u);
    // The same stream again gives the same output: a fixed stream is a fixed mask.
    source.offset = 0;
    EXPECT_EQ(dropping->forward(input_x()).to_vector(), dropped);
    // Evaluation: nothing drawn, the output without dropout.
    source.offset = 5;
    dropping->eval();
    EXPECT_EQ(dropping->forward(input_x()).to_vector(), want);
    EXPECT_EQ(source.offset, 5u);
    // Training without a source: no dropout either.
    dropping->train();
    dropping->set_dropout_source(nullptr);
    EXPECT_EQ(dropping->forward(input_x()).to_vector(), want);
  }
}

TEST(AttentionDropout, ForwardCachedNeverDrops) {
  for (const char* spec : kSoftmaxVariants) {
    const auto plain = build(spec, 0.0f), dropping = build(spec, 0.5f);
    if (plain->cache_layout().heads == 0) continue;  // no cache: nothing to decode with
    SCOPED_TRACE(spec);
    DropoutSource source{11, 3, 0};
    dropping->set_dropout_source(&source);  // and training() is on
    NoGradGuard no_grad;
    KVCache a(1, 2, plain->cache_layout(), 16, Device::cpu()), b(1, 2, plain->cache_layout(), 16, Device::cpu());
    const Tensor x = input_x();
    for (int64_t t = 0; t < 3; ++t) {  // a prefix of 3, then single tokens
      const Tensor step = t == 0 ? narrow(x, 1, 0, 3) : narrow(x, 1, t + 2, 1);
      EXPECT_EQ(dropping->forward_cached(step, b, 0).to_vector(), plain->forward_cached(step, a, 0).to_vector());
      a.commit(step.shape()[1]);
      b.commit(step.shape()[1]);
    }
    EXPECT_EQ(source.offset, 3u);
  }
}

TEST(AttentionDropout, GptEvaluationAndCachedDecodingDrawNothing) {
  GPTConfig c = small_config("gqa:kv_heads=2", 0.3f);
  GPT model(c, 4);
  c.attn_dropout = 0;
  GPT plain(c, 4);
  NoGradGuard no_grad;
  model.eval();
  EXPECT_EQ(model.forward(model_ids()).to_vector(), plain.forward(model_ids()).to_vector());
  EXPECT_EQ(model.dropout_source().offset, 0u);
  // The KV-cache path, even in training mode: attention draws nothing (and
  // --dropout 0 leaves the rest nothing to draw).
  model.train();
  KVCache cache = model.make_cache(2);
  const Tensor prefix = narrow(model_ids(), 1, 0, 5);
  KVCache plain_cache = plain.make_cache(2);
  EXPECT_EQ(model.forward_cached(prefix, cache).to_vector(), plain.forward_cached(prefix, plain_cache).to_vector());
  EXPECT_EQ(model.dropout_source().offset, 0u);
  // A training forward draws one stream per layer.
  model.forward(model_ids());
  EXPECT_EQ(model.dropout_source().offset, 2u);
}

TEST(AttentionDropout, SurgeryKeepsTheModelsSource) {
  GPT model(small_config("mha", 0.3f), 4);
  for (auto& block : model.blocks()) {
    AttentionConfig ac = model.config().attention_config();
    Generator g(1);
    block->set_attention(make_attention("mqa", ac, g));
  }
  NoGradGuard no_grad;
  model.forward(model_ids());
  EXPECT_EQ(model.dropout_source().offset, 2u);  // the new attention draws from the model's stream
}

// ---------------------------------------------------------------------------
// Variants without attention probabilities.

TEST(AttentionDropout, VariantsWithoutProbabilitiesRefuseAnExplicitValue) {
  try {
    build("linear", 0.1f);
    FAIL() << "linear took attention dropout";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "attention linear: has no attention dropout (linear attention never forms the probabilities "
              "to drop); --attn-dropout must be 0 for it, got 0.1 (left out, it follows --dropout and is 0 "
              "for this variant)");
  }
  EXPECT_NO_THROW(build("linear", 0.0f));
  EXPECT_EQ(attention_dropout_unsupported("linear:kv_heads=2"), "linear attention never forms the probabilities to drop");
  for (const char* spec : kSoftmaxVariants) EXPECT_EQ(attention_dropout_unsupported(spec), "") << spec;
  // A student variant: chapter interfaces have no attention dropout.
  register_attention("student:dropout_probe", "a test variant",
                     [](const VariantSpec&, const AttentionConfig& c, Generator& g) -> std::shared_ptr<Attention> {
                       return std::make_shared<MultiHeadAttention>(c, c.heads, g);
                     });
  EXPECT_NE(attention_dropout_unsupported("student:dropout_probe").find("chapter"), std::string::npos);
  try {
    build("student:dropout_probe", 0.2f);
    FAIL() << "a student variant took attention dropout";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention student:dropout_probe: has no attention dropout (its "
                                         "chapter's interface has no attention dropout); --attn-dropout "
                                         "must be 0 for it, got 0.2"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(build("student:dropout_probe", 0.0f));
  // And a GPT built with it says the same.
  EXPECT_THROW(GPT(small_config("linear", 0.1f), 1), Error);
}

TEST(AttentionDropout, ConfigStoresItAndOldConfigsReadZero) {
  GPTConfig c = small_config("mha", 0.25f);
  EXPECT_EQ(GPTConfig::from_json(c.to_json()).attn_dropout, 0.25f);
  EXPECT_EQ(c.attention_config().dropout, 0.25f);
  std::string old = c.to_json();
  const std::size_t at = old.find(",\"attn_dropout\":");
  ASSERT_NE(at, std::string::npos) << old;
  old.erase(at, old.find_first_of(",}", at + 1) - at);  // a config stored before the option existed
  ASSERT_EQ(old.find("attn_dropout"), std::string::npos) << old;
  EXPECT_EQ(GPTConfig::from_json(old).attn_dropout, 0.0f);
}
