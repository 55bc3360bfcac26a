// Chapter 13 — reference solution. The library does the same surgery on a
// whole model at once (nn/surgery.cpp: attn::mha_to_gqa rebuilds a GPT and
// pools its state_dict); the lesson splits it into its three steps — pool
// one tensor, convert one module, convert every block — written plainly.
#include "attention_surgery.h"

#include <map>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson13 {

using namespace attn;

Tensor pool_kv_heads(const Tensor& w, int64_t heads, int64_t groups) {
  check(w.dim() == 1 || w.dim() == 2, "pool_kv_heads: expected a weight [H*d, C] or a bias [H*d], got ",
        shape_str(w.shape()));
  check(groups >= 1 && heads >= 1 && heads % groups == 0, "pool_kv_heads: groups=", groups,
        " must divide heads=", heads, " (every group needs the same number of heads)");
  const int64_t rows = w.shape()[0];
  check(rows % heads == 0, "pool_kv_heads: ", rows, " rows do not split into ", heads, " heads");
  const int64_t d = rows / heads, g = heads / groups;
  // Rows are ordered (head, feature) and heads of a group are neighbours:
  // [H*d, C] = [G, g, d, C]. Averaging axis 1 averages the heads of a group
  // feature by feature.
  Shape grouped = {groups, g, d}, pooled = {groups * d};
  if (w.dim() == 2) {
    grouped.push_back(w.shape()[1]);
    pooled.push_back(w.shape()[1]);
  }
  return reshape(mean(reshape(w, grouped), {1}), pooled);
}

std::shared_ptr<MultiHeadAttention> gqa_from_mha(MultiHeadAttention& mha,
                                                 const AttentionConfig& config, int64_t groups,
                                                 const PositionOptions& positions) {
  const int64_t H = mha.heads();
  check(mha.kv_heads() == H, "gqa_from_mha: the source must be MHA (kv_heads == heads), it has ",
        mha.kv_heads(), " K/V heads for ", H, " heads");
  check(config.heads == H && config.embd == H * mha.head_dim(), "gqa_from_mha: config (embd ",
        config.embd, ", heads ", config.heads, ") is not the one the module was built with (embd ",
        H * mha.head_dim(), ", heads ", H, ")");
  check(groups >= 1 && H % groups == 0, "gqa_from_mha: groups=", groups, " must divide heads=", H);
  // The new module's own initial weights do not matter: all are overwritten.
  Generator unused(0);
  auto gqa = std::make_shared<MultiHeadAttention>(config, groups, unused, positions);
  gqa->to(mha.parameters().front()->device());
  NoGradGuard no_grad;  // surgery is not part of any training graph
  std::map<std::string, Tensor> state = mha.state_dict();
  for (auto& [name, t] : state)
    if (name.rfind("wk.", 0) == 0 || name.rfind("wv.", 0) == 0) t = pool_kv_heads(t, H, groups);
  // wq.* and wo.* go in as they are; load_state_dict copies every value into
  // the new module's own storage, so `mha` stays untouched.
  gqa->load_state_dict(state);
  gqa->train(mha.training());
  return gqa;
}

void mha_to_gqa(GPT& model, int64_t groups) {
  const GPTConfig& c = model.config();
  check(groups >= 1 && c.heads % groups == 0, "mha_to_gqa: groups=", groups, " must divide heads=",
        c.heads);
  const std::string spec = gqa_spec(c.attention, groups);
  const AttentionConfig ac = attention_config(c);
  const PositionOptions positions = position_options(c.attention);
  // Check every block first, so that a failure leaves the model as it was.
  for (auto& block : model.blocks()) {
    auto* mha = dynamic_cast<MultiHeadAttention*>(&block->attention());
    check(mha != nullptr && mha->kv_heads() == mha->heads(),
          "mha_to_gqa: a block's attention is not a multi-head module with kv_heads == heads");
  }
  for (auto& block : model.blocks())
    block->set_attention(
        gqa_from_mha(dynamic_cast<MultiHeadAttention&>(block->attention()), ac, groups, positions));
  model.set_attention_spec(spec);  // a checkpoint of the model must rebuild it as GQA
}

}  // namespace lesson13
