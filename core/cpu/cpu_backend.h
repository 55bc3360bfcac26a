// The CPU implementation of the kernel interface: plain loops (and OpenBLAS
// for matrix products). Each group of kernels lives in its own file.
#pragma once
#include "core/backend.h"

namespace attn {

class CpuBackend final : public Backend {
 public:
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
  void fill(const View& out, double value) override;
  void copy(const View& out, const View& in) override;

  void unary(UnaryOp op, const View& out, const View& in, float scalar) override;
  void binary(BinaryOp op, const View& out, const View& a, const View& b) override;
  void where(const View& out, const View& cond, const View& a, const View& b) override;
  void reduce(ReduceOp op, const View& out, const View& in, int outer_dims) override;
  void gemm(const GemmArgs& args) override;
  void softmax(bool log, float* out, const float* in, int64_t rows, int64_t cols) override;
  void softmax_backward(bool log, float* grad_in, const float* y, const float* grad_out,
                        int64_t rows, int64_t cols) override;
  void causal_softmax(float* y, const float* x, int64_t rows, int64_t heads, int64_t tq,
                      int64_t tk, int64_t offset, float scale, const float* alibi,
                      const AttentionDropoutArgs* dropout, float* dropped) override;
  void causal_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                               int64_t heads, int64_t tq, int64_t tk, int64_t offset, float scale,
                               const AttentionDropoutArgs* dropout) override;
  int64_t gather_rows(float* out, const float* table, const int64_t* idx, int64_t n,
                      int64_t row_size, int64_t table_rows) override;
  void scatter_add_rows(float* table, const int64_t* idx, const float* src, int64_t n,
                        int64_t row_size) override;
  void cumsum(float* out, const float* in, int64_t rows, int64_t cols, bool reverse) override;
  void chunk_scan(float* out, const float* in, int64_t groups, int64_t steps, int64_t width,
                  bool reverse) override;
  void causal_mask(float* a, int64_t count, int64_t size) override;
  void linear_attention_normalise(float* out, const float* u, int64_t rows, int64_t dv,
                                  float eps) override;
  void linear_attention_normalise_backward(float* du, const float* u, const float* dout,
                                           int64_t rows, int64_t dv, float eps) override;
  void dropout(float* out, const float* in, const float* add, int64_t n,
               const DropoutArgs& args) override;

  void layer_norm(float* y, float* mean, float* rstd, const float* x, const float* w,
                  const float* b, int64_t rows, int64_t cols, float eps) override;
  void layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                           const float* mean, const float* rstd, const float* w, int64_t rows,
                           int64_t cols) override;
  void rms_norm(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                int64_t cols, float eps) override;
  void rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                         const float* rstd, const float* w, int64_t rows, int64_t cols) override;
  int64_t cross_entropy(float* loss, float* lse, const float* logits, const int64_t* targets,
                        int64_t rows, int64_t cols) override;
  void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                              const int64_t* targets, const float* dloss, int64_t rows,
                              int64_t cols) override;
  void adamw(const AdamWTensor* tensors, int count, const AdamW& h) override;
  void attention_dropout(float* out, const float* in, const ProbabilityBlock& block,
                         const AttentionDropoutArgs& args) override;
  void flash_attention_forward(const FlashArgs& args, const AttentionDropoutArgs* dropout = nullptr,
                               FlashProducts products = FlashProducts::Float32) override;
  void flash_attention_backward(const FlashArgs& args, const float* dout, float* dq, float* dk,
                                float* dv, const AttentionDropoutArgs* dropout = nullptr,
                                FlashProducts products = FlashProducts::Float32) override;
  void block_sparse_flash_forward(const FlashArgs& args, const BlockList& blocks,
                                  const AttentionDropoutArgs* dropout = nullptr) override;
  void block_sparse_flash_backward(const FlashArgs& args, const BlockList& blocks,
                                   const float* dout, float* dq, float* dk, float* dv,
                                   const AttentionDropoutArgs* dropout = nullptr) override;
};

Backend& cpu_backend();

}  // namespace attn
