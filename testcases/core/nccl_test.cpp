// NCCL: where it is looked for and what a missing library says (on every
// machine), and the communicator over it with one rank on a GPU (where a
// GPU and NCCL exist; several ranks need several GPUs).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/comm/nccl_library.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "testcases/error_of.h"
#ifdef ATTNLAB_WITH_CUDA
#include "core/comm/nccl_communicator.h"
#endif

namespace {

using attn::error_of;
using attn::comm::nccl_available;
using attn::comm::open_nccl_library;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Nccl, AnOverrideThatPointsNowhereSaysSo) {
  setenv("ATTNLAB_NCCL_LIBRARY", "/nowhere/libnccl.so.2", 1);
  const std::string e = error_of([] { open_nccl_library(); });
  unsetenv("ATTNLAB_NCCL_LIBRARY");
  EXPECT_TRUE(has(e, "ATTNLAB_NCCL_LIBRARY='/nowhere/libnccl.so.2'")) << e;
  EXPECT_TRUE(has(e, "/nowhere/libnccl.so.2: ")) << "the loader's reason follows the path: " << e;
  EXPECT_TRUE(has(e, "unset it")) << e;
}

TEST(Nccl, WithoutItTheMessageSaysHowToGetIt) {
  if (nccl_available()) {
    const auto lib = open_nccl_library();
    EXPECT_FALSE(lib->path.empty());
    const std::string v = attn::comm::nccl_version(*lib);
    EXPECT_EQ(v.rfind("2.", 0), 0u) << "NCCL 2.x, got " << v;
    GTEST_SKIP() << "NCCL is here (" << lib->path << ", " << v << "): nothing missing to report";
  }
  const std::string e = error_of([] { open_nccl_library(); });
  EXPECT_TRUE(has(e, "libnccl.so.2")) << e;
  EXPECT_TRUE(has(e, "pip install nvidia-nccl-cu13")) << e;
  EXPECT_TRUE(has(e, "ATTNLAB_NCCL_LIBRARY")) << e;
}

#ifdef ATTNLAB_WITH_CUDA
TEST(Nccl, OneRankOnTheGpu) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device";
  if (!nccl_available()) GTEST_SKIP() << "no NCCL: " << error_of([] { open_nccl_library(); });
  using namespace attn;
  const Device gpu = Device::cuda();
  auto comm = comm::nccl_communicator(gpu, 0, 1, comm::nccl_unique_id());
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_TRUE(has(comm->name(), "NCCL 2.")) << comm->name();

  std::vector<float> host(1000);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = 0.5f * static_cast<float>(i) - 7.0f;
  Tensor x = from_vector(host, {1000}).to(gpu);
  // Queued right behind the copy that filled x: the communicator's stream
  // must wait for it.
  comm->all_reduce(std::span<float>(x.data<float>(), 1000), comm::ReduceOp::Sum).wait();
  EXPECT_EQ(x.to_vector(), host) << "a sum over one rank is the data";
  comm->all_reduce(std::span<float>(x.data<float>(), 1000), comm::ReduceOp::Max).wait();
  EXPECT_EQ(x.to_vector(), host);

  Tensor y = zeros({1000}, DType::Float32, gpu);
  comm->all_gather(std::span<const float>(x.data<float>(), 1000), std::span<float>(y.data<float>(), 1000)).wait();
  EXPECT_EQ(y.to_vector(), host);
  Tensor z = zeros({1000}, DType::Float32, gpu);
  comm->reduce_scatter(std::span<const float>(x.data<float>(), 1000), std::span<float>(z.data<float>(), 1000))
      .wait();
  EXPECT_EQ(z.to_vector(), host);
  comm->barrier();

  const std::string bad_size = error_of([&] {
    comm->all_gather(std::span<const float>(x.data<float>(), 1000), std::span<float>(y.data<float>(), 999));
  });
  EXPECT_TRUE(has(bad_size, "all_gather: the output holds 999 values, expected 1000")) << bad_size;
  const std::string self = error_of([&] { comm->send(std::span<const float>(x.data<float>(), 10), 0); });
  EXPECT_TRUE(has(self, "send: rank 0 is not another rank of 1")) << self;
  const std::string bad_rank =
      error_of([&] { comm::nccl_communicator(gpu, 1, 1, comm::nccl_unique_id()); });
  EXPECT_TRUE(has(bad_rank, "NCCL: rank 1 of 1 ranks")) << bad_rank;
}
#endif

}  // namespace
