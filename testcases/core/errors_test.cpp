// Error messages, asserted by content: every user-facing check names the op,
// the offending value and what was expected (core/error.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace {

using attn::Device;
using attn::DType;
using attn::Tensor;
using ::testing::HasSubstr;

// The statement must throw attn::Error whose message contains `text`.
#define EXPECT_ERROR(stmt, text)                                            \
  do {                                                                      \
    EXPECT_THROW(stmt, attn::Error);                                        \
    try {                                                                   \
      stmt;                                                                 \
    } catch (const attn::Error& e) {                                        \
      EXPECT_THAT(std::string(e.what()), HasSubstr(text)) << "from " #stmt; \
    }                                                                       \
  } while (0)

TEST(Errors, MatmulShapes) {
  const Tensor a = attn::zeros({2, 3}), b = attn::zeros({4, 5});
  EXPECT_ERROR(attn::matmul(a, b), "matmul: shapes [2,3] and [4,5] do not match: 3 != 4");
  EXPECT_ERROR(attn::matmul(attn::zeros({7, 2, 3}), b), "matmul: shapes [7,2,3] and [4,5] do not match: 3 != 4");
  EXPECT_ERROR(attn::matmul(attn::zeros({3}), attn::zeros({4})), "matmul: shapes [3] and [4] do not match: 3 != 4");
  EXPECT_ERROR(attn::matmul(attn::zeros({2, 2, 3}), attn::zeros({3, 3, 4})), "cannot be broadcast");
  EXPECT_ERROR(attn::matmul(attn::zeros({}), b), "matmul: inputs must have at least 1 dim");
}

TEST(Errors, Broadcasting) {
  EXPECT_ERROR(attn::add(attn::zeros({2, 3}), attn::zeros({4, 3})),
               "add: shapes [2,3] and [4,3] cannot be broadcast: size 2 != 4 at dim 0");
  EXPECT_ERROR(attn::mul(attn::zeros({3, 1, 5}), attn::zeros({4, 4})), "mul: shapes [3,1,5] and [4,4] cannot be broadcast");
  EXPECT_ERROR(attn::gt(attn::zeros({2}), attn::zeros({3})), "gt: shapes [2] and [3] cannot be broadcast");
  EXPECT_ERROR(attn::where(attn::from_bools({true, false}, {2}), attn::zeros({3}), attn::zeros({})), "where: shapes");
  EXPECT_ERROR(attn::masked_fill(attn::zeros({3}), attn::from_bools({true, false, true, true}, {2, 2}), 0.0f),
               "masked_fill: shapes [3] and [2,2] cannot be broadcast");
  EXPECT_ERROR(attn::masked_fill(attn::zeros({1, 3}), attn::from_bools({true, false, true, true, true, true}, {2, 3}), 0.0f),
               "masked_fill: mask of shape [2,3] would grow the input of shape [1,3]");
  EXPECT_ERROR(attn::expand(attn::zeros({2, 3}), {4, 3}), "expand: cannot expand [2,3] to [4,3]: size 2 at dim 0 is not 1");
  EXPECT_ERROR(attn::expand(attn::zeros({2, 3}), {3}), "expand: cannot expand [2,3] to fewer dims [3]");
}

TEST(Errors, BadDims) {
  const Tensor x = attn::zeros({2, 3});
  EXPECT_ERROR(attn::sum(x, {5}), "sum: dim 5 is out of range for a tensor with 2 dims; expected -2..1");
  EXPECT_ERROR(attn::sum(x, {-3}), "sum: dim -3 is out of range");
  EXPECT_ERROR(attn::sum(x, {1, -1}), "sum: dim -1 appears twice");
  EXPECT_ERROR(attn::mean(x, {2}), "mean: dim 2 is out of range");
  EXPECT_ERROR(attn::max(x, 2), "max: dim 2 is out of range");
  EXPECT_ERROR(attn::argmax(x, -3), "argmax: dim -3 is out of range");
  EXPECT_ERROR(attn::softmax(x, 2), "softmax: dim 2 is out of range");
  EXPECT_ERROR(attn::transpose(x, 0, 2), "transpose: dim 2 is out of range");
  EXPECT_ERROR(attn::cat({x, x}, 2), "cat: dim 2 is out of range");
  EXPECT_ERROR(attn::unsqueeze(x, 4), "unsqueeze: dim 4 is out of range");
  EXPECT_ERROR(attn::cumsum(x, 4), "cumsum: dim 4 is out of range");
  EXPECT_ERROR(attn::index_select(x, 2, attn::from_ints({0}, {1})), "index_select: dim 2 is out of range");
  EXPECT_ERROR(x.size(2), "size: dim 2 is out of range");
  EXPECT_ERROR(attn::flatten(attn::zeros({2, 3, 4}), 2, 1), "flatten: start_dim 2 comes after end_dim 1");
}

TEST(Errors, DtypeMismatch) {
  const Tensor f = attn::zeros({2}), i = attn::zeros({2}, DType::Int64);
  EXPECT_ERROR(attn::add(f, i), "add: dtype mismatch: expected float32 inputs, got float32 and int64");
  EXPECT_ERROR(attn::div(i, f), "div: dtype mismatch: expected float32 inputs, got int64 and float32");
  EXPECT_ERROR(attn::matmul(attn::zeros({2, 2}), attn::zeros({2, 2}, DType::Int64)), "matmul: dtype mismatch");
  EXPECT_ERROR(attn::exp(i), "exp: input must be float32, got int64");
  EXPECT_ERROR(attn::sum(attn::zeros({2}, DType::Bool)), "sum: input must be float32, got bool");
  EXPECT_ERROR(attn::softmax(i, 0), "softmax: input must be float32, got int64");
  EXPECT_ERROR(attn::cat({f, i}, 0), "cat: dtype mismatch: tensor 0 is float32, tensor 1 is int64");
  EXPECT_ERROR(attn::index_select(f, 0, attn::zeros({1})), "index_select: index must be int64, got float32");
  EXPECT_ERROR(attn::where(f, f, f), "where: condition must be bool, got float32");
  EXPECT_ERROR(attn::masked_fill(f, f, 1.0f), "masked_fill: mask must be bool, got float32");
}

TEST(Errors, DeviceMismatch) {
  // A tensor that claims to live on cuda:0 over host memory. It is never
  // read: every op checks devices before it touches data.
  std::vector<float> host(6, 1.0f);
  const Tensor g = attn::from_blob(host.data(), {2, 3}, DType::Float32, Device::cuda(0));
  EXPECT_EQ(g.device(), Device::cuda(0));
  const Tensor c = attn::zeros({2, 3});
  EXPECT_ERROR(attn::add(c, g), "add: inputs are on different devices: cpu and cuda:0");
  EXPECT_ERROR(attn::matmul(c, attn::transpose(g, 0, 1)), "matmul: inputs are on different devices: cpu and cuda:0");
  EXPECT_ERROR(attn::cat({c, g}, 0), "cat: inputs are on different devices: cpu and cuda:0");
  EXPECT_ERROR(attn::where(attn::gt(c, 0.0), c, g), "where: inputs are on different devices: cpu and cuda:0");
  EXPECT_ERROR(attn::add(c, g), "move them with to() first");
}

TEST(Errors, CudaDeviceUnavailable) {
  // Without the CUDA backend compiled in, asking for a cuda tensor says how
  // to get one; a CUDA build on a machine without a usable GPU says why.
#ifdef ATTNLAB_WITH_CUDA
  if (attn::cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  const std::string msg = "no CUDA device is available";
#else
  const std::string msg = "attnlab was built without CUDA; rebuild with -DATTNLAB_CUDA=ON";
#endif
  EXPECT_ERROR(attn::zeros({2}, DType::Float32, Device::cuda()), msg);
  EXPECT_ERROR(attn::zeros({2}, DType::Float32, Device::cuda()), "device cuda:0: ");
  EXPECT_ERROR(attn::zeros({2}).to(Device::cuda(1)), msg);
  EXPECT_ERROR(attn::zeros({2}).to(Device::cuda(1)), "device cuda:1: ");
  attn::Generator gen(1);
  EXPECT_ERROR(attn::randn({2}, gen, Device::cuda()), msg);
}

TEST(Errors, DeviceParse) {
  EXPECT_ERROR(Device::parse("gpu"), "device: unknown device 'gpu'; expected cpu, cuda or cuda:N");
  EXPECT_ERROR(Device::parse("cuda:"), "unknown device 'cuda:'");
  EXPECT_ERROR(Device::parse("cuda:x"), "unknown device 'cuda:x'");
  EXPECT_ERROR(Device::parse("CPU"), "unknown device 'CPU'");
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(2).str(), "cuda:2");
}

TEST(Errors, IndexOutOfRange) {
  const Tensor x = attn::zeros({5, 2});
  EXPECT_ERROR(attn::index_select(x, 0, attn::from_ints({0, 7, 1}, {3})),
               "index_select: index 7 at position 1 is out of range for dim 0 with size 5");
  EXPECT_ERROR(attn::index_select(x, 0, attn::from_ints({-1}, {1})), "index -1 at position 0 is out of range");
  EXPECT_ERROR(attn::index_select(x, 1, attn::from_ints({2}, {1})), "index 2 at position 0 is out of range for dim 1 with size 2");
  EXPECT_ERROR(attn::embedding(x, attn::from_ints({4, 5}, {1, 2})), "index 5 at position 1 is out of range");
  EXPECT_ERROR(attn::index_select(x, 0, attn::from_ints({0, 1}, {1, 2})), "index_select: index must be 1-D, got shape [1,2]");
  EXPECT_ERROR(attn::select(x, 0, 5), "select: index 5 is out of range for dim 0 of size 5");
  EXPECT_ERROR(attn::select(x, 1, -3), "select: index -3 is out of range for dim 1 of size 2");
}

TEST(Errors, ShapeOps) {
  const Tensor x = attn::zeros({2, 3});
  EXPECT_ERROR(attn::reshape(x, {4}), "reshape: cannot reshape [2,3] (6 elements) into [4] (4 elements)");
  EXPECT_ERROR(attn::reshape(x, {4, -1}), "reshape: cannot reshape [2,3] (6 elements) into [4,-1]");
  EXPECT_ERROR(attn::reshape(x, {-1, -1}), "reshape: only one dim can be -1, got [-1,-1]");
  EXPECT_ERROR(attn::view(attn::transpose(x, 0, 1), {6}),
               "view: tensor of shape [3,2] and strides [1,3] is not contiguous; use reshape()");
  EXPECT_ERROR(attn::narrow(attn::zeros({4}), 0, 2, 3), "narrow: range [2, 5) is outside dim 0 of size 4");
  EXPECT_ERROR(attn::narrow(attn::zeros({4}), 0, -1, 2), "narrow: range [-1, 1) is outside dim 0 of size 4");
  EXPECT_ERROR(attn::permute(x, {0, 0}), "permute: dim 0 appears twice in [0,0]");
  EXPECT_ERROR(attn::permute(x, {1, -1}), "permute: dim -1 appears twice in [1,-1]");
  EXPECT_ERROR(attn::permute(x, {0}), "permute: got 1 dims for a tensor with 2 dims");
  EXPECT_ERROR(attn::slice(x, 1, 0, 3, 0), "slice: step must be positive, got 0");
  EXPECT_ERROR(attn::cat({x, attn::zeros({2, 4})}, 0),
               "cat: tensor 1 has shape [2,4] but tensor 0 has shape [2,3]; all dims except the cat dim 0 must match");
  EXPECT_ERROR(attn::cat({}, 0), "cat: expected at least one tensor");
  EXPECT_ERROR(attn::stack({x, attn::zeros({3, 2})}, 0), "stack: tensor 1 has shape [3,2] but tensor 0 has shape [2,3]");
  EXPECT_ERROR(attn::repeat_interleave(x, 0, 0), "repeat_interleave: repeats must be >= 1, got 0");
  EXPECT_ERROR(attn::tril(attn::zeros({3})), "tril: expected at least 2 dims, got shape [3]");
  EXPECT_ERROR(attn::triu(attn::zeros({})), "triu: expected at least 2 dims, got shape []");
}

TEST(Errors, ScalarsAndCreation) {
  EXPECT_ERROR(attn::zeros({2, 3}).item(), "item: expected a tensor with one element, got shape [2,3]");
  EXPECT_ERROR(attn::zeros({0}).item(), "item: expected a tensor with one element, got shape [0]");
  EXPECT_EQ(attn::full({1, 1}, 4.0).item(), 4.0f);
  EXPECT_ERROR(attn::from_vector({1, 2, 3, 4, 5}, {2, 3}), "from_vector: 5 values do not fill shape [2,3] (6 elements)");
  EXPECT_ERROR(attn::from_ints({1}, {2}), "from_ints: 1 values do not fill shape [2]");
  EXPECT_ERROR(attn::empty({2, -1}), "empty: negative size in shape [2,-1]");
  EXPECT_ERROR(attn::arange(0, 5, 0), "arange: step must be nonzero");
}

TEST(Errors, Reductions) {
  EXPECT_ERROR(attn::max(attn::zeros({0, 3}), 0), "max: cannot reduce over dim 0 of size 0 (shape [0,3])");
  EXPECT_ERROR(attn::argmax(attn::zeros({2, 0}), 1), "argmax: cannot reduce over dim 1 of size 0");
  EXPECT_ERROR(attn::max(attn::zeros({0})), "max: cannot take the max of an empty tensor");
  EXPECT_ERROR(attn::var(attn::zeros({1, 3}), {0}), "var: 1 elements with correction 1 leave no degrees of freedom");
  EXPECT_ERROR(attn::add(Tensor(), attn::zeros({1})), "add: got an undefined tensor");
}

}  // namespace
