// The end-to-end check most chapters finish with: does a tiny GPT built on
// the student's attention learn? The task, "repeat the previous token", is
// solved only by attending one position back, so the loss falls when the
// attention lets each query read its predecessor, and stays near log(5)
// when it does not (a future leak, a wrong mask, a gradient that does not
// flow). Header-only, like lesson_test.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "nn/gpt.h"

namespace lesson_test {

struct TinyTraining {
  float first_loss = 0, last_loss = 0;  // at the first and the last step
};

// Trains a one-layer GPT (vocab 5, embd 16, `heads` heads, blocks of `block`
// tokens, 8 sequences) with `attention` for `steps` steps of plain Adam
// (lr 0.02, betas 0.9 / 0.999), written here so that the suites depend on
// nothing in train/. Position 0 has no previous token: it predicts itself.
inline TinyTraining train_previous_token(const std::string& attention, int64_t heads = 2,
                                         int64_t block = 8, int steps = 60) {
  using namespace attn;
  GPTConfig c;
  c.vocab = 5;
  c.block_size = block;
  c.layers = 1;
  c.heads = heads;
  c.embd = 16;
  c.attention = attention;
  GPT model(c, 7);
  const int64_t B = 8, T = block;
  Generator data_gen(8);
  std::vector<int64_t> ids, targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(static_cast<int64_t>(data_gen.below(5)));
      targets.push_back(t == 0 ? ids.back() : ids[ids.size() - 2]);
    }
  const Tensor x = from_ints(ids, {B, T}), y = from_ints(targets, {B, T});
  const std::vector<Tensor*> params = model.parameters();
  std::vector<std::vector<float>> m1(params.size()), m2(params.size());
  TinyTraining r;
  for (int step = 1; step <= steps; ++step) {
    model.zero_grad();
    const Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    (step == 1 ? r.first_loss : r.last_loss) = loss.item();
    for (std::size_t p = 0; p < params.size(); ++p) {
      if (!params[p]->grad().defined()) continue;
      const std::vector<float> g = params[p]->grad().to_vector();
      float* w = params[p]->data<float>();
      m1[p].resize(g.size());
      m2[p].resize(g.size());
      const float c1 = 1 - std::pow(0.9f, float(step)), c2 = 1 - std::pow(0.999f, float(step));
      for (std::size_t i = 0; i < g.size(); ++i) {
        m1[p][i] = 0.9f * m1[p][i] + 0.1f * g[i];
        m2[p][i] = 0.999f * m2[p][i] + 0.001f * g[i] * g[i];
        w[i] -= 0.02f * (m1[p][i] / c1) / (std::sqrt(m2[p][i] / c2) + 1e-8f);
      }
    }
  }
  return r;
}

}  // namespace lesson_test
