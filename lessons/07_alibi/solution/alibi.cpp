// Chapter 07 — reference solution. alibi_slopes, alibi_bias and
// alibi_attention are thin adapters over the library (attention/positions.h
// and the dense causal kernel of attention/kernel.h, which adds the ALiBi
// bias when the call carries slopes); extend_context is written out: it is
// a few lines of model bookkeeping.
#include "alibi.h"

#include <cmath>
#include <limits>

#include "attention/kernel.h"
#include "attention/multi_head.h"
#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson07 {

using namespace attn;

std::vector<float> alibi_slopes(int64_t heads) {
  // The library checks heads >= 1 and fills non-powers of two by the
  // interleaving rule.
  return attn::alibi_slopes(heads);
}

Tensor alibi_bias(int64_t heads, int64_t tq, int64_t tk, int64_t offset) {
  check(tq >= 1 && tk >= 1 && offset >= 0, "alibi_bias: expected tq, tk >= 1 and offset >= 0, got tq=",
        tq, ", tk=", tk, ", offset=", offset);
  return attn::alibi_bias(heads, tq, tk, offset, Device::cpu());
}

Tensor alibi_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                       Tensor* weights_out) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
        "alibi_attention: expected q, k, v of shape [B, H, T, d], got ", shape_str(q.shape()), ", ",
        shape_str(k.shape()), ", ", shape_str(v.shape()));
  check(k.shape()[1] == q.shape()[1] && v.shape()[1] == q.shape()[1],
        "alibi_attention: q, k and v must have the same number of heads, got ", shape_str(q.shape()),
        ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  AttentionCall call;
  call.q = q, call.k = k, call.v = v;
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  call.alibi = attn::alibi_slopes(q.shape()[1]);  // one slope per query head
  call.want_weights = weights_out != nullptr;
  // scores + bias, causal mask, softmax, @ v.
  const Tensor out = dense_causal_attention(call);
  if (weights_out) *weights_out = call.weights;
  return out;
}

std::unique_ptr<GPT> extend_context(GPT& model, int64_t block_size) {
  GPTConfig config = model.config();
  check(block_size >= config.block_size, "extend_context: the new block_size ", block_size,
        " is smaller than the model's ", config.block_size);
  const std::map<std::string, Tensor> state = model.state_dict();
  // A learned table has exactly block_size rows: positions past it have no
  // vector, and no amount of copying invents one.
  check(!state.count("wpe.weight"), "extend_context: attention '", config.attention,
        "' uses learned position embeddings (wpe, ", config.block_size,
        " rows): there is no vector for position ", config.block_size,
        " and beyond. Only models whose attention encodes positions (alibi, rope) can run longer");
  config.block_size = block_size;
  auto longer = std::make_unique<GPT>(config, /*seed=*/0);  // weights replaced next
  longer->load_state_dict(state);
  longer->train(model.training());
  return longer;
}

}  // namespace lesson07
