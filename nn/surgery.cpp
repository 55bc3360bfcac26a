#include "nn/surgery.h"

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

int64_t replace_attention(GPT& model, const std::string& spec, uint64_t seed) {
  const GPTConfig& c = model.config();
  const AttentionConfig ac = c.attention_config();
  Generator gen(seed);
  const Device device = model.parameters().front()->device();
  const bool had_positions = model.blocks().front()->attention().encodes_positions();
  int64_t added = 0;
  for (auto& block : model.blocks()) {
    std::shared_ptr<Attention> fresh = make_attention(spec, ac, gen);
    check(fresh->encodes_positions() == had_positions, "surgery: '", spec, "' ",
          fresh->encodes_positions() ? "encodes positions itself" : "needs learned positions",
          " but the model's attention '", c.attention, "' ",
          had_positions ? "does" : "does not",
          "; the position embedding would not fit, so pick a variant with the same position scheme");
    fresh->to(device);
    added += fresh->num_parameters();
    block->set_attention(fresh);
  }
  model.set_attention_spec(spec);
  return added;
}

std::unique_ptr<GPT> mha_to_gqa(GPT& source, const std::string& target_spec) {
  GPTConfig c = source.config();
  const std::string from = c.attention;
  c.attention = target_spec;
  auto target = std::make_unique<GPT>(c, 0);
  target->to(source.parameters().front()->device());
  auto* src_attn = dynamic_cast<MultiHeadAttention*>(&source.blocks().front()->attention());
  auto* dst_attn = dynamic_cast<MultiHeadAttention*>(&target->blocks().front()->attention());
  check(src_attn && dst_attn, "convert: both '", from, "' and '", target_spec,
        "' must be multi-head variants (mha, gqa, mqa)");
  check(src_attn->kv_heads() == src_attn->heads(), "convert: the source attention '", from,
        "' must be plain MHA (kv_heads == heads), it has ", src_attn->kv_heads(), " K/V heads");
  const int64_t heads = src_attn->heads(), kv = dst_attn->kv_heads(), d = src_attn->head_dim();
  const int64_t group = heads / kv;

  NoGradGuard no_grad;
  std::map<std::string, Tensor> state = source.state_dict();
  const std::map<std::string, Tensor> shapes = target->state_dict();
  for (auto& [name, t] : state) {
    const Tensor& want = shapes.at(name);
    if (t.shape() == want.shape()) continue;
    // wk/wv weight [heads*d, C] -> [kv, group, d, C] -> mean over group;
    // their biases [heads*d] likewise.
    const bool is_kv = name.find(".attn.wk.") != std::string::npos ||
                       name.find(".attn.wv.") != std::string::npos;
    check(is_kv, "convert: parameter '", name, "' changes shape ", shape_str(t.shape()), " -> ",
          shape_str(want.shape()), " but is not a K/V projection");
    Shape grouped = {kv, group, d};
    if (t.dim() == 2) grouped.push_back(t.shape()[1]);
    t = reshape(mean(reshape(t, grouped), {1}), want.shape());
  }
  target->load_state_dict(state);
  return target;
}

}  // namespace attn
