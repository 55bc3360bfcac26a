// The thread setting and the pool: every CPU kernel gives bitwise the same
// result on 1, 2 and 3 threads (the determinism contract of DESIGN.md), on
// shapes big enough to be cut into many chunks; bad settings are refused;
// an exception inside a chunk reaches the caller; a parallel_for inside a
// chunk runs inline instead of deadlocking.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <vector>

#include "autograd/ops.h"
#include "core/cpu/parallel.h"
#include "core/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/threads.h"

namespace {

using namespace attn;
using Outputs = std::vector<std::vector<float>>;

// Restores the thread count a test started with.
struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

// Runs `compute` at 1, 2 and 3 threads and expects every output bitwise equal.
void expect_same_on_any_thread_count(const char* what, const std::function<Outputs()>& compute) {
  ThreadsGuard guard;
  set_num_threads(1);
  const Outputs one = compute();
  for (int threads : {2, 3}) {
    set_num_threads(threads);
    const Outputs many = compute();
    ASSERT_EQ(one.size(), many.size());
    for (size_t k = 0; k < one.size(); ++k) {
      ASSERT_EQ(one[k].size(), many[k].size()) << what;
      for (size_t i = 0; i < one[k].size(); ++i)
        ASSERT_EQ(one[k][i], many[k][i]) << what << ": output " << k << " element " << i
                                         << " differs between 1 and " << threads << " threads";
    }
  }
}

Tensor random(const Shape& shape, uint64_t seed, bool grad = false) {
  Generator g(seed);
  Tensor t = randn(shape, g);
  if (grad) t.set_requires_grad();
  return t;
}

// Forward and every input gradient of f, for an upstream gradient of ones
// scaled by a random tensor (so every element's gradient differs).
Outputs forward_backward(const std::vector<Tensor>& inputs, const std::function<Tensor()>& f) {
  const Tensor y = f();
  const Tensor upstream = random(y.shape(), 99);
  sum(mul(y, upstream)).backward();
  Outputs out{y.to_vector()};
  for (const Tensor& x : inputs) out.push_back(x.grad().to_vector());
  return out;
}

TEST(Threads, ElementwiseAndBroadcast) {
  expect_same_on_any_thread_count("gelu, add with broadcast, transposed views", [] {
    const Tensor x = random({300, 1000}, 1), bias = random({1000}, 2);
    return Outputs{gelu(x).to_vector(), add(x, bias).to_vector(),
                   exp(transpose(x, 0, 1)).to_vector(), contiguous(transpose(x, 0, 1)).to_vector()};
  });
}

TEST(Threads, Reductions) {
  expect_same_on_any_thread_count("sum over rows, over columns, of all, max", [] {
    const Tensor x = random({3000, 64}, 3);
    return Outputs{sum(x, {0}).to_vector(), sum(x, {1}).to_vector(), sum(x).to_vector(),
                   max(x, 1).to_vector(), sum(transpose(x, 0, 1), {1}).to_vector()};
  });
}

TEST(Threads, NormsForwardAndBackward) {
  expect_same_on_any_thread_count("layer_norm", [] {
    const Tensor x = random({700, 96}, 4, true), w = random({96}, 5, true), b = random({96}, 6, true);
    return forward_backward({x, w, b}, [&] { return layer_norm(x, w, b); });
  });
  expect_same_on_any_thread_count("rms_norm", [] {
    const Tensor x = random({700, 96}, 7, true), w = random({96}, 8, true);
    return forward_backward({x, w}, [&] { return rms_norm(x, w); });
  });
}

TEST(Threads, SoftmaxesAndCrossEntropy) {
  expect_same_on_any_thread_count("softmax", [] {
    const Tensor x = random({500, 300}, 9, true);
    return forward_backward({x}, [&] { return softmax(x, 1); });
  });
  expect_same_on_any_thread_count("log_softmax", [] {
    const Tensor x = random({500, 300}, 10, true);
    return forward_backward({x}, [&] { return log_softmax(x, 1); });
  });
  expect_same_on_any_thread_count("causal_softmax", [] {
    const Tensor x = random({2, 3, 100, 100}, 11, true);
    return forward_backward({x}, [&] { return causal_softmax(x, 0.125f, 0, {0.5f, 0.25f, 0.125f}); });
  });
  expect_same_on_any_thread_count("causal_softmax_dropout", [] {
    const Tensor x = random({2, 3, 100, 100}, 13, true);
    AttentionDropoutArgs d;
    d.seed = 7;
    d.p = 0.2f;
    return forward_backward({x}, [&] { return causal_softmax_dropout(x, 0.125f, 0, {}, d); });
  });
  expect_same_on_any_thread_count("cross_entropy", [] {
    const Tensor z = random({900, 65}, 12, true);
    std::vector<int64_t> t(900);
    for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int64_t>(i * 7 % 65);
    return forward_backward({z}, [&] { return cross_entropy(z, from_ints(t, {900})); });
  });
}

TEST(Threads, MatrixProducts) {
  expect_same_on_any_thread_count("matmul cut by rows, by columns, batched", [] {
    const Tensor a = random({700, 300}, 13, true), b = random({300, 500}, 14, true);
    const Tensor c = random({100, 64}, 15, true), d = random({64, 2000}, 16, true);
    const Tensor q = random({16, 64, 32}, 17, true), k = random({16, 32, 64}, 18, true);
    Outputs out = forward_backward({a, b}, [&] { return matmul(a, b); });
    for (auto& o : forward_backward({c, d}, [&] { return matmul(c, d); })) out.push_back(o);
    for (auto& o : forward_backward({q, k}, [&] { return matmul(q, k); })) out.push_back(o);
    return out;
  });
  expect_same_on_any_thread_count("linear with bias and GELU epilogue", [] {
    const Tensor x = random({600, 128}, 19, true), w = random({512, 128}, 20, true),
                 b = random({512}, 21, true);
    return forward_backward({x, w, b}, [&] { return linear(x, w, b, LinearActivation::Gelu); });
  });
}

TEST(Threads, EmbeddingGradientAddsRepeatedRowsInOrder) {
  expect_same_on_any_thread_count("embedding backward", [] {
    const Tensor table = random({65, 200}, 22, true);
    std::vector<int64_t> ids(4000);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i * i % 65);
    return forward_backward({table}, [&] { return embedding(table, from_ints(ids, {4000})); });
  });
}

TEST(Threads, AdamW) {
  expect_same_on_any_thread_count("adamw", [] {
    std::vector<float> p = random({100000}, 23).to_vector(), g = random({100000}, 24).to_vector();
    std::vector<float> m(p.size(), 0.1f), v(p.size(), 0.2f);
    const Backend::AdamWTensor t{p.data(), g.data(), m.data(), v.data(),
                                 static_cast<int64_t>(p.size()), 0.1f};
    cpu_backend().adamw(&t, 1, {1e-3f, 0.9f, 0.99f, 1e-8f, 0.1f, 0.01f});
    return Outputs{p, m, v};
  });
}

TEST(Threads, SettingIsCheckedAndKept) {
  ThreadsGuard guard;
  EXPECT_GE(physical_cores(), 1);
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  for (int bad : {0, -1, 1025}) {
    try {
      set_num_threads(bad);
      ADD_FAILURE() << "set_num_threads(" << bad << ") was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--threads must be in 1..1024, got " + std::to_string(bad)),
                std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(num_threads(), 3);
}

TEST(Threads, PoolRunsEveryChunkOnceAndPassesExceptionsOn) {
  ThreadsGuard guard;
  set_num_threads(3);
  std::vector<std::atomic<int>> hits(1000);
  cpu::parallel_for(1000, 7, [&](int64_t b, int64_t e) {
    // A parallel_for inside a chunk runs inline on this thread.
    cpu::parallel_for(e - b, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) hits[b + i]++;
    });
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << "element " << i;
  EXPECT_EQ(cpu::chunk_count(1000, 7), 143);
  EXPECT_THROW(cpu::parallel_for(100, 1, [](int64_t b, int64_t) {
                 if (b == 57) throw std::runtime_error("chunk 57");
               }),
               std::runtime_error);
  // The pool still works after a chunk threw.
  std::atomic<int64_t> total{0};
  cpu::parallel_for(100, 1, [&](int64_t b, int64_t) { total += b; });
  EXPECT_EQ(total.load(), 4950);
}

}  // namespace
