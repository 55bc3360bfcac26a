// Attention surgery: K/V head pooling is the group mean, pooling identical
// heads changes nothing, and replacing attention keeps the rest intact.
#include <gtest/gtest.h>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "nn/surgery.h"

using namespace attn;

namespace {
GPTConfig config(const std::string& attention) {
  GPTConfig c;
  c.vocab = 9;
  c.block_size = 8;
  c.layers = 2;
  c.heads = 4;
  c.embd = 16;
  c.attention = attention;
  return c;
}
}  // namespace

TEST(Surgery, KvWeightsAreTheGroupMeans) {
  GPT mha(config("mha"), 1);
  auto gqa = mha_to_gqa(mha, "gqa:kv_heads=2");
  const auto src = mha.state_dict(), dst = gqa->state_dict();
  const auto wk = src.at("blocks.0.attn.wk.weight").to_vector();   // [4*4, 16]
  const auto pooled = dst.at("blocks.0.attn.wk.weight").to_vector();  // [2*4, 16]
  ASSERT_EQ(pooled.size(), 8u * 16);
  // K/V head g of the result = mean of source heads 2g and 2g+1 (in place).
  for (int g = 0; g < 2; ++g)
    for (int e = 0; e < 4; ++e)
      for (int c = 0; c < 16; ++c) {
        const double want = 0.5 * (wk[((2 * g) * 4 + e) * 16 + c] + wk[((2 * g + 1) * 4 + e) * 16 + c]);
        ASSERT_NEAR(pooled[(g * 4 + e) * 16 + c], want, 1e-6);
      }
  EXPECT_EQ(src.at("blocks.1.attn.wq.weight").to_vector(), dst.at("blocks.1.attn.wq.weight").to_vector());
  EXPECT_EQ(src.at("wte.weight").to_vector(), dst.at("wte.weight").to_vector());
}

TEST(Surgery, PoolingIdenticalHeadsIsExact) {
  // If every head of a group already has the same K/V weights, GQA computes
  // exactly what MHA did.
  GPT mha(config("mha"), 2);
  {
    NoGradGuard ng;
    for (auto& [name, p] : mha.named_parameters()) {
      if (name.find(".attn.wk.") == std::string::npos && name.find(".attn.wv.") == std::string::npos) continue;
      const Shape s = p->shape();
      Shape grouped = {1, 4, 4};  // [one group, 4 heads, d (, C)]
      if (p->dim() == 2) grouped.push_back(s[1]);
      const Tensor head0 = slice(reshape(*p, grouped), 1, 0, 1);
      const Tensor same = reshape(expand(head0, grouped).contiguous(), s);
      backend_for(p->device()).copy(p->view_desc(), same.view_desc());
    }
  }
  auto mqa = mha_to_gqa(mha, "mqa");
  NoGradGuard ng;
  const Tensor ids = from_ints({1, 2, 3, 4, 5}, {1, 5});
  const auto a = mha.forward(ids).to_vector(), b = mqa->forward(ids).to_vector();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << i;
}

TEST(Surgery, ReplaceAttentionEverywhere) {
  GPT model(config("mha"), 3);
  const auto before = model.state_dict();
  replace_attention(model, "flash:kv_heads=2", 7);
  EXPECT_EQ(model.config().attention, "flash:kv_heads=2");
  const auto after = model.state_dict();
  EXPECT_EQ(before.at("wte.weight").to_vector(), after.at("wte.weight").to_vector());
  EXPECT_EQ(after.at("blocks.0.attn.wk.weight").shape(), (Shape{8, 16}));
  NoGradGuard ng;
  EXPECT_EQ(model.forward(from_ints({1, 2}, {1, 2})).shape(), (Shape{1, 2, 9}));
  EXPECT_THROW(replace_attention(model, "mha:rope", 1), Error);  // position scheme differs
  GPT gqa(config("gqa:kv_heads=2"), 0);
  EXPECT_THROW(mha_to_gqa(gqa, "mqa"), Error);  // source must be MHA
}
