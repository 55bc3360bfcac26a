// Flash attention on the GPU, host side: argument checks, the ALiBi slopes'
// trip to the device, scratch buffers. The kernels and how they cut the
// work: flash_attention.cuh, flash_forward.cu, flash_backward.cu.
#include "core/cuda/flash_attention.cuh"

namespace attn {
using namespace cuda;

namespace {

void check_flash(const FlashArgs& a) {
  check(a.dim <= flash::kMaxDim, "flash_attention: head dim ", a.dim, " is more than the ",
        flash::kMaxDim, " the CUDA kernel supports");
  check(a.kv_heads > 0 && a.heads % a.kv_heads == 0, "flash_attention: ", a.kv_heads,
        " K/V heads do not divide ", a.heads, " query heads");
  check(a.q_at.row >= a.dim && a.k_at.row >= a.dim && a.v_at.row >= a.dim,
        "flash_attention: the operands' layouts (FlashArgs::q_at, k_at, v_at) are not set");
  check(a.batch * a.heads <= 65535 && a.batch * a.kv_heads <= 65535,
        "flash_attention: batch x heads = ", a.batch * a.heads,
        " is more than the 65535 the CUDA kernel supports");
}

}  // namespace

void CudaBackend::flash_attention_forward(const FlashArgs& args, const AttentionDropoutArgs* dropout) {
  if (args.batch <= 0 || args.heads <= 0 || args.tq <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  FlashArgs a = args;
  // ALiBi slopes arrive in host memory.
  Buffer slopes(this, a.alibi ? a.heads * sizeof(float) : 1);
  if (a.alibi) {
    ATTN_CUDA_CHECK(cudaMemcpy(slopes.ptr, a.alibi, a.heads * sizeof(float), cudaMemcpyHostToDevice));
    a.alibi = slopes.as<float>();
  }
  flash_forward_launch(a, dropout);
}

void CudaBackend::flash_attention_backward(const FlashArgs& args, const float* dout, float* dq,
                                           float* dk, float* dv, const AttentionDropoutArgs* dropout) {
  if (args.batch <= 0 || args.heads <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  FlashArgs a = args;
  Buffer slopes(this, a.alibi ? a.heads * sizeof(float) : 1);
  if (a.alibi) {
    ATTN_CUDA_CHECK(cudaMemcpy(slopes.ptr, a.alibi, a.heads * sizeof(float), cudaMemcpyHostToDevice));
    a.alibi = slopes.as<float>();
  }
  const int64_t q_rows = a.batch * a.heads * a.tq;
  Buffer delta(this, (q_rows > 0 ? q_rows : 1) * sizeof(float));  // D_i = dout_i . out_i
  flash_backward_launch(a, dout, delta.as<float>(), dq, dk, dv, dropout);
}

}  // namespace attn
