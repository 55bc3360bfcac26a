// Flash attention on the GPU, host side: argument checks, the ALiBi slopes'
// trip to the device, scratch buffers. The kernels and how they cut the
// work: flash_attention.cuh, flash_forward.cu, flash_backward.cu.
#include "core/cuda/flash_attention.cuh"

#include <algorithm>
#include <vector>

#include "core/column_pieces.h"

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

// ALiBi slopes arrive in host memory: copied to the device, and a.alibi
// pointed at the copy, for as long as this lives.
struct DeviceSlopes {
  CudaBackend::Buffer buffer;
  DeviceSlopes(CudaBackend* owner, FlashArgs& a) : buffer(owner, a.alibi ? a.heads * sizeof(float) : 1) {
    if (!a.alibi) return;
    owner->copy_from_host(buffer.ptr, a.alibi, a.heads * sizeof(float));
    a.alibi = buffer.as<float>();
  }
};

// A block list's arrays copied to the device in one transfer, and the
// kernels' view of them. Lives until the kernels that read it are queued
// (the allocator hands its memory out again only to later work on the
// same stream).
struct UploadedBlocks {
  CudaBackend::Buffer buffer;
  flash::DeviceBlocks view;

  UploadedBlocks(CudaBackend* owner, const FlashArgs& a, const BlockList& l)
      : UploadedBlocks(owner, a, l, split_columns(l.col_begin, l.key_blocks)) {}

  UploadedBlocks(CudaBackend* owner, const FlashArgs& a, const BlockList& l,
                 const std::vector<ColumnPiece>& pieces)
      : buffer(owner, bytes_of(a, l, pieces.size())) {
    check(l.block == flash::kRows, "block_sparse_flash: the CUDA kernel's tiles are ", flash::kRows,
          " x ", flash::kCols, "; a list of blocks of ", l.block, " does not fit them");
    check(l.query_blocks == (a.tq + l.block - 1) / l.block && l.key_blocks == (a.tk + l.block - 1) / l.block,
          "block_sparse_flash: a list of ", l.query_blocks, " x ", l.key_blocks, " blocks of ", l.block,
          " for ", a.tq, " queries and ", a.tk, " keys");
    check(!a.causal && a.window == 0, "block_sparse_flash: the block list alone masks; causal and window must be off");
    const int64_t entries = l.row_begin[l.query_blocks], partial = partial_entries(l);
    std::vector<int64_t> host;  // every array, one after another (masks as their bits)
    auto put = [&host](const int64_t* from, int64_t n) { host.insert(host.end(), from, from + n); };
    put(l.row_begin, l.query_blocks + 1);
    put(l.row_key, entries);
    put(l.row_mask, entries);
    put(l.col_begin, l.key_blocks + 1);
    put(l.col_query, entries);
    put(l.col_mask, entries);
    for (int64_t w = 0; w < partial * l.block; ++w) host.push_back(static_cast<int64_t>(l.masks[w]));
    if (l.key_position) put(l.key_position, a.tk);
    for (const ColumnPiece& p : pieces) host.insert(host.end(), {p.key_block, p.begin, p.end});
    owner->copy_from_host(buffer.ptr, host.data(), host.size() * sizeof(int64_t));
    const int64_t* at = buffer.as<int64_t>();
    auto take = [&at](int64_t n) {
      const int64_t* p = at;
      at += n;
      return p;
    };
    view.row_begin = take(l.query_blocks + 1);
    view.row_key = take(entries);
    view.row_mask = take(entries);
    view.col_begin = take(l.key_blocks + 1);
    view.col_query = take(entries);
    view.col_mask = take(entries);
    view.masks = reinterpret_cast<const uint64_t*>(take(partial * l.block));
    view.key_position = l.key_position ? take(a.tk) : nullptr;
    view.key_span = l.key_span;
    view.pieces = take(3 * static_cast<int64_t>(pieces.size()));
    view.piece_count = static_cast<int64_t>(pieces.size());
  }

  // Partial entries: one past the largest mask index any entry names.
  static int64_t partial_entries(const BlockList& l) {
    int64_t n = 0;
    for (int64_t e = 0; e < l.row_begin[l.query_blocks]; ++e) n = std::max(n, l.row_mask[e] + 1);
    return n;
  }
  static std::size_t bytes_of(const FlashArgs& a, const BlockList& l, std::size_t pieces) {
    const int64_t entries = l.row_begin[l.query_blocks];
    const int64_t words = l.query_blocks + 1 + l.key_blocks + 1 + 4 * entries +
                          partial_entries(l) * l.block + (l.key_position ? a.tk : 0) +
                          3 * static_cast<int64_t>(pieces);
    return static_cast<std::size_t>(words) * sizeof(int64_t);
  }
};

}  // namespace

void CudaBackend::block_sparse_flash_forward(const FlashArgs& args, const BlockList& blocks,
                                             const AttentionDropoutArgs* dropout) {
  if (args.batch <= 0 || args.heads <= 0 || args.tq <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  const UploadedBlocks list(this, args, blocks);
  FlashArgs a = args;
  const DeviceSlopes slopes(this, a);
  flash_forward_launch(a, dropout, list.view);
}

void CudaBackend::block_sparse_flash_backward(const FlashArgs& args, const BlockList& blocks,
                                              const float* dout, float* dq, float* dk, float* dv,
                                              const AttentionDropoutArgs* dropout) {
  if (args.batch <= 0 || args.heads <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  const UploadedBlocks list(this, args, blocks);
  FlashArgs a = args;
  const DeviceSlopes slopes(this, a);
  const int64_t q_rows = a.batch * a.heads * a.tq;
  Buffer delta(this, (q_rows > 0 ? q_rows : 1) * sizeof(float));
  flash_backward_launch(a, dout, delta.as<float>(), dq, dk, dv, dropout, list.view);
}

void CudaBackend::flash_attention_forward(const FlashArgs& args, const AttentionDropoutArgs* dropout,
                                          FlashProducts products) {
  if (args.batch <= 0 || args.heads <= 0 || args.tq <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  FlashArgs a = args;
  const DeviceSlopes slopes(this, a);
  flash_forward_launch(a, dropout, {}, products);
}

void CudaBackend::flash_attention_backward(const FlashArgs& args, const float* dout, float* dq,
                                           float* dk, float* dv, const AttentionDropoutArgs* dropout,
                                           FlashProducts products) {
  if (args.batch <= 0 || args.heads <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  FlashArgs a = args;
  const DeviceSlopes slopes(this, a);
  const int64_t q_rows = a.batch * a.heads * a.tq;
  Buffer delta(this, (q_rows > 0 ? q_rows : 1) * sizeof(float));  // D_i = dout_i . out_i
  flash_backward_launch(a, dout, delta.as<float>(), dq, dk, dv, dropout, {}, products);
}

}  // namespace attn
