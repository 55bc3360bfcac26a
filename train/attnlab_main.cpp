// The `attnlab` command. For now one subcommand, `demo`: fit a small MLP to
// y = sin(x) with the autograd engine and plain gradient descent, and print
// the loss falling.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>

#include "autograd/engine.h"
#include "autograd/ops.h"

namespace {

int run_demo(int steps, uint64_t seed) {
  using namespace attn;
  Generator gen(seed);
  const int64_t n = 256, hidden = 32;
  const Tensor x = reshape(arange(-3.0, 3.0, 6.0 / n, DType::Float32), {n, 1});
  const Tensor y = sin(x);
  // Small random weights; biases start at zero.
  Tensor w1 = mul(randn({1, hidden}, gen), 1.0f).set_requires_grad();
  Tensor b1 = zeros({hidden}).set_requires_grad();
  Tensor w2 = mul(randn({hidden, 1}, gen), 1.0f / std::sqrt(static_cast<float>(hidden))).set_requires_grad();
  Tensor b2 = zeros({1}).set_requires_grad();
  std::vector<Tensor*> params = {&w1, &b1, &w2, &b2};
  const float lr = 0.05f;
  for (int step = 0; step <= steps; ++step) {
    const Tensor pred = add(matmul(tanh(add(matmul(x, w1), b1)), w2), b2);
    const Tensor loss = mean(square(sub(pred, y)));
    for (Tensor* p : params) p->zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;  // the update itself is not part of the graph
      for (Tensor* p : params) *p = sub(*p, mul(p->grad(), lr)).set_requires_grad();
    }
    if (step % (steps / 10 > 0 ? steps / 10 : 1) == 0)
      std::printf("step %5d  mse %.6f\n", step, loss.item());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"attnlab: a from-scratch training framework for learning attention"};
  app.require_subcommand(1);
  int steps = 2000;
  uint64_t seed = 0;
  auto* demo = app.add_subcommand("demo", "fit a small MLP to sin(x) with autograd");
  demo->add_option("--steps", steps, "gradient steps")->check(CLI::Range(1, 1000000));
  demo->add_option("--seed", seed, "random seed");
  CLI11_PARSE(app, argc, argv);
  try {
    if (demo->parsed()) return run_demo(steps, seed);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnlab: %s\n", e.what());
    return 1;
  }
  return 0;
}
