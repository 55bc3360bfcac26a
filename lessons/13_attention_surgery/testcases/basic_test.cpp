// Chapter 13, basic suite: pooling by hand (the README's worked example),
// the two ends of the knob (G = H changes nothing, G = 1 is MQA), a module
// and a whole GPT converted, what must stay untouched, the parameters saved,
// bad group counts, and the mistakes everyone makes once: strided groups,
// sums, pooled queries, forgotten biases, one block only, new weights.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attention/multi_head.h"
#include "attention_surgery.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "lesson_test.h"
#include "nn/gpt.h"

using namespace attn;
using namespace lesson_test;

namespace {

// ---- pooling, done by the test -------------------------------------------

// How a pooled row can be formed: the right way and the usual wrong ones.
enum class Pool { Mean, Strided, Sum, Features, FirstHead };

// w is [H*d, cols] row-major (cols = 1 for a bias). Returns [G*d, cols].
std::vector<double> pool(const std::vector<double>& w, int64_t H, int64_t G, int64_t cols,
                         Pool how = Pool::Mean) {
  const int64_t d = static_cast<int64_t>(w.size()) / (H * cols), g = H / G;
  std::vector<double> out(G * d * cols, 0.0);
  for (int64_t j = 0; j < G; ++j)
    for (int64_t i = 0; i < d; ++i)
      for (int64_t c = 0; c < cols; ++c) {
        double s = 0;
        for (int64_t r = 0; r < g; ++r) {
          int64_t row = ((j * g + r) * d + i);                // head j*g + r: contiguous
          if (how == Pool::Strided) row = (j + r * G) * d + i;  // heads j, j+G, ...
          if (how == Pool::Features) row = j * g * d + i * g + r;
          if (how == Pool::FirstHead && r > 0) continue;
          s += w[row * cols + c];
        }
        out[(j * d + i) * cols + c] = how == Pool::Sum || how == Pool::FirstHead ? s : s / g;
      }
  return out;
}

bool same(const Tensor& t, const std::vector<double>& want, double tol = 1e-5) {
  const std::vector<double> v = values(t);
  if (v.size() != want.size()) return false;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (std::fabs(v[i] - want[i]) > tol * (1 + std::fabs(want[i]))) return false;
  return true;
}

// Names the wrong pooling `got` matches, if any.
std::string diagnose(const Tensor& got, const std::vector<double>& w, int64_t H, int64_t G,
                     int64_t cols) {
  if (same(got, pool(w, H, G, cols, Pool::Strided)))
    return "\n=> you pooled STRIDED heads (j, j+G, j+2G, ...). repeat_kv hands K/V head j to the "
           "neighbouring query heads j*g .. j*g+g-1, so those are the heads to average "
           "(reshape to [G, g, d, C], mean over dim 1)";
  if (same(got, pool(w, H, G, cols, Pool::Sum)))
    return "\n=> you SUMMED the heads of each group: divide by g = H/G (take the mean), or the "
           "keys and values come out g times too large";
  if (same(got, pool(w, H, G, cols, Pool::Features)))
    return "\n=> you averaged neighbouring ROWS within a head, not heads: rows are ordered "
           "(head, feature), so reshape to [G, g, d, C] (not [G, d, g, C]) and average dim 1";
  if (same(got, pool(w, H, G, cols, Pool::FirstHead)))
    return "\n=> you kept the first head of each group and dropped the others: average all g "
           "heads of the group";
  return "";
}

// ---- modules with every parameter random (biases too: a fresh Linear has
// zero biases, which would hide a forgotten bias) ---------------------------

void randomise(Module& m, uint64_t seed, float scale = 0.5f) {
  std::map<std::string, Tensor> state = m.state_dict();
  for (auto& [name, t] : state) t = random_tensor(t.shape(), seed++, scale);
  m.load_state_dict(state);
}

AttentionConfig config(int64_t embd, int64_t heads) {
  AttentionConfig c;
  c.embd = embd, c.heads = heads, c.block_size = 8;
  return c;
}

std::shared_ptr<MultiHeadAttention> random_mha(int64_t embd, int64_t heads, uint64_t seed) {
  Generator gen(seed);
  auto m = std::make_shared<MultiHeadAttention>(config(embd, heads), heads, gen);
  randomise(*m, seed * 100);
  return m;
}

// Makes the K and V heads inside each group identical (copies of the
// group's first head), weights and biases.
void equalise_groups(Module& m, int64_t H, int64_t G) {
  std::map<std::string, Tensor> state = m.state_dict();
  for (const std::string name : {"wk.weight", "wk.bias", "wv.weight", "wv.bias"}) {
    Tensor& t = state.at(name);
    const int64_t d = t.shape()[0] / H, g = H / G;
    std::vector<Tensor> heads;
    for (int64_t h = 0; h < H; ++h) heads.push_back(narrow(t, 0, (h / g) * g * d, d));
    t = cat(heads, 0);
  }
  m.load_state_dict(state);
}

// Runs gqa_from_mha; an attn::Error becomes a failure that quotes it, with
// a hint when the error names the usual suspects (a stub's NotImplemented is
// passed on: gtest reports it).
std::shared_ptr<MultiHeadAttention> convert(MultiHeadAttention& mha, int64_t G) {
  try {
    return lesson13::gqa_from_mha(mha, config(mha.heads() * mha.head_dim(), mha.heads()), G);
  } catch (const NotImplemented&) {
    throw;
  } catch (const Error& e) {
    const std::string what = e.what();
    std::string hint;
    if (what.find("'wq.") != std::string::npos || what.find("'wo.") != std::string::npos)
      hint = "\n=> only K and V lose heads. The queries keep all H heads (wq stays [C, C]) and wo "
             "reads all of them: copy wq and wo unchanged";
    else if (what.find(".bias'") != std::string::npos)
      hint = "\n=> the K/V biases have H*d entries, one per row of the weight: pool them exactly "
             "like the weights' rows";
    ADD_FAILURE() << "gqa_from_mha(H = " << mha.heads() << ", G = " << G << ") threw: " << what
                  << hint;
    return nullptr;
  }
}

Tensor param(Module& m, const std::string& name) { return m.state_dict().at(name); }

// ---- a tiny GPT --------------------------------------------------------------

GPTConfig tiny(int64_t layers = 2, int64_t heads = 4, const std::string& attention = "mha") {
  GPTConfig c;
  c.vocab = 11, c.block_size = 8, c.layers = layers, c.heads = heads, c.embd = 16;
  c.attention = attention;
  return c;
}

// A GPT with every parameter random, so that biases and norms matter.
std::unique_ptr<GPT> random_gpt(const GPTConfig& c, uint64_t seed) {
  auto m = std::make_unique<GPT>(c, seed);
  randomise(*m, seed * 1000, 0.3f);
  return m;
}

Tensor ids() { return from_ints({1, 4, 2, 9, 0, 3, 3, 7, /**/ 5, 5, 10, 2, 8, 1, 6, 0}, {2, 8}); }

bool is_attention(const std::string& name) { return name.find(".attn.") != std::string::npos; }

}  // namespace

// ------------------------------------------------------------- pool_kv_heads

TEST(PoolKvHeads, ShapesOfWeightAndBias) {
  // H = 6 heads of d = 3 over C = 5 inputs.
  const Tensor w = random_tensor({18, 5}, 1), b = random_tensor({18}, 2);
  for (int64_t G : {6, 3, 2, 1}) {
    EXPECT_EQ(lesson13::pool_kv_heads(w, 6, G).shape(), (Shape{G * 3, 5}))
        << "weight [H*d, C] = [18, 5] pooled into G = " << G << " groups is [G*d, C]";
    EXPECT_EQ(lesson13::pool_kv_heads(b, 6, G).shape(), (Shape{G * 3}))
        << "bias [H*d] = [18] pooled into G = " << G << " groups is [G*d]";
  }
}

TEST(PoolKvHeads, ReadmeWorkedExample) {
  // H = 4 heads of d = 2, C = 1: head h has rows 2h, 2h+1 = [2h+1, 2h+2].
  // G = 2: group 0 = mean(head 0, head 1) = [2, 3]; group 1 = [6, 7].
  const Tensor w = from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {8, 1});
  const std::vector<double> want = {2, 3, 6, 7};
  const Tensor got = lesson13::pool_kv_heads(w, 4, 2);
  EXPECT_TRUE(close("pool_kv_heads(w = 1..8, H = 4, G = 2)", got, want, {4, 1}))
      << diagnose(got, values(w), 4, 2, 1);
  // The bias pools the same way.
  const Tensor b = from_vector({10, 20, 30, 40, 50, 60, 70, 80}, {8});
  EXPECT_TRUE(close("pool_kv_heads(bias 10..80, H = 4, G = 2)", lesson13::pool_kv_heads(b, 4, 2),
                    {20, 30, 60, 70}, {4}));
}

TEST(PoolKvHeads, OneGroupIsTheMeanOfAllHeadsMQA) {
  // G = 1: the single K/V head of MQA is the mean of all 4: [4, 5].
  const Tensor w = from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {8, 1});
  EXPECT_TRUE(close("pool_kv_heads(w = 1..8, H = 4, G = 1)", lesson13::pool_kv_heads(w, 4, 1),
                    {4, 5}, {2, 1}));
}

TEST(PoolKvHeads, AsManyGroupsAsHeadsChangesNothing) {
  const Tensor w = random_tensor({12, 7}, 3);
  EXPECT_TRUE(close("pool_kv_heads(w, H = 4, G = 4)", lesson13::pool_kv_heads(w, 4, 4), w, 0))
      << "with one head per group the mean is the head itself";
}

TEST(PoolKvHeads, MatchesTheMeanOfEachGroup) {
  // H = 6, G = 2 (g = 3), d = 2, C = 3, against the double loop above.
  const Tensor w = random_tensor({12, 3}, 4);
  const Tensor got = lesson13::pool_kv_heads(w, 6, 2);
  EXPECT_TRUE(close("pool_kv_heads(random [12, 3], H = 6, G = 2)", got, pool(values(w), 6, 2, 3),
                    {4, 3}))
      << diagnose(got, values(w), 6, 2, 3);
}

TEST(PoolKvHeads, RejectsGroupsThatDoNotDivideTheHeads) {
  const Tensor w = random_tensor({8, 4}, 5);
  const std::string why = "every group must hold the same number of heads";
  EXPECT_TRUE(rejects("pool_kv_heads(H = 4, G = 3)", [&] { lesson13::pool_kv_heads(w, 4, 3); }, why));
  EXPECT_TRUE(rejects("pool_kv_heads(H = 4, G = 0)", [&] { lesson13::pool_kv_heads(w, 4, 0); }, why));
  EXPECT_TRUE(rejects("pool_kv_heads(H = 4, G = 8)", [&] { lesson13::pool_kv_heads(w, 4, 8); },
                      "more groups than heads is not a pooling"));
  EXPECT_TRUE(rejects("pool_kv_heads(8 rows, H = 3, G = 1)", [&] { lesson13::pool_kv_heads(w, 3, 1); },
                      "8 rows do not split into 3 heads of equal size"));
}

// --------------------------------------------------------------- gqa_from_mha

TEST(GqaFromMha, HasGKvHeadsAndKeepsTheShape) {
  auto mha = random_mha(16, 4, 10);
  for (int64_t G : {4, 2, 1}) {
    auto gqa = convert(*mha, G);
    ASSERT_TRUE(gqa);
    EXPECT_EQ(gqa->heads(), 4) << "the queries keep all H heads";
    EXPECT_EQ(gqa->kv_heads(), G) << "G groups = G K/V heads";
    EXPECT_EQ(param(*gqa, "wk.weight").shape(), (Shape{G * 4, 16}));
    EXPECT_EQ(gqa->forward(random_tensor({2, 5, 16}, 11)).shape(), (Shape{2, 5, 16}));
  }
}

TEST(GqaFromMha, QueriesAndOutputCopiedKeysAndValuesPooled) {
  auto mha = random_mha(12, 6, 12);
  auto gqa = convert(*mha, 3);
  ASSERT_TRUE(gqa);
  for (const std::string name : {"wq.weight", "wq.bias", "wo.weight", "wo.bias"})
    EXPECT_TRUE(close(name + " after conversion", param(*gqa, name), param(*mha, name), 0))
        << "queries and the output projection are copied unchanged";
  for (const std::string name : {"wk.weight", "wk.bias", "wv.weight", "wv.bias"}) {
    const Tensor src = param(*mha, name);
    const int64_t cols = src.dim() == 2 ? src.shape()[1] : 1;
    Shape shape = {6};
    if (src.dim() == 2) shape.push_back(cols);
    EXPECT_TRUE(close(name + " after conversion (6 heads -> 3 groups)", param(*gqa, name),
                      pool(values(src), 6, 3, cols), shape));
  }
}

TEST(GqaFromMha, GroupsEqualHeadsGivesTheSameOutputs) {
  auto mha = random_mha(16, 4, 13);
  auto gqa = convert(*mha, 4);
  ASSERT_TRUE(gqa);
  const Tensor x = random_tensor({2, 6, 16}, 14);
  EXPECT_TRUE(close("converted (G = H = 4) vs original output", gqa->forward(x), mha->forward(x), 1e-6));
}

TEST(GqaFromMha, IdenticalHeadsInAGroupGiveTheSameOutputs) {
  // When the heads of a group already agree, their mean is each of them:
  // the conversion loses nothing and the outputs are the original's.
  for (int64_t G : {2, 1}) {
    auto mha = random_mha(16, 4, 15);
    equalise_groups(*mha, 4, G);
    auto gqa = convert(*mha, G);
    ASSERT_TRUE(gqa);
    const Tensor x = random_tensor({2, 6, 16}, 16);
    EXPECT_TRUE(close("G = " + std::to_string(G) + ", heads equal within each group", gqa->forward(x),
                      mha->forward(x)))
        << "averaging equal heads must give the same head back";
  }
}

TEST(GqaFromMha, LeavesTheSourceUntouched) {
  auto mha = random_mha(16, 4, 17);
  const std::map<std::string, Tensor> before = mha->state_dict();
  std::map<std::string, std::vector<double>> saved;
  for (auto& [name, t] : before) saved[name] = values(t);
  ASSERT_TRUE(convert(*mha, 2));
  for (auto& [name, t] : mha->state_dict())
    EXPECT_TRUE(close("the source's " + name, t, saved[name], t.shape(), 0))
        << "gqa_from_mha must not write into the MHA it reads";
}

// ------------------------------------------------------------------ mha_to_gqa

TEST(MhaToGqa, EveryBlockIsConvertedAndTheSpecUpdated) {
  auto model = random_gpt(tiny(3), 20);
  lesson13::mha_to_gqa(*model, 2);
  for (std::size_t i = 0; i < model->blocks().size(); ++i) {
    auto* a = dynamic_cast<MultiHeadAttention*>(&model->blocks()[i]->attention());
    ASSERT_NE(a, nullptr) << "block " << i << "'s attention is not a MultiHeadAttention";
    EXPECT_EQ(a->kv_heads(), 2) << "block " << i << " still has " << a->kv_heads() << " K/V heads";
  }
  EXPECT_EQ(model->config().attention, "gqa:kv_heads=2");
  EXPECT_EQ(model->forward(ids()).shape(), (Shape{2, 8, 11}));
}

TEST(MhaToGqa, ParameterCountDropsByTheRemovedKvHeads) {
  // Per layer, wk and wv each lose (H - G) heads of d rows of C weights + 1
  // bias: 2 (H - G) d (C + 1). Here H = 4, d = 4, C = 16, 3 layers:
  // G = 2: 3 * 2 * 2 * 4 * 17 = 816; G = 1: 1224.
  for (auto [G, drop] : std::vector<std::pair<int64_t, int64_t>>{{4, 0}, {2, 816}, {1, 1224}}) {
    auto model = random_gpt(tiny(3), 21);
    const int64_t before = model->num_parameters();
    lesson13::mha_to_gqa(*model, G);
    EXPECT_EQ(before - model->num_parameters(), drop)
        << "G = " << G << ": the model had " << before << " parameters and has "
        << model->num_parameters() << " after conversion";
  }
}

TEST(MhaToGqa, EverythingButKeysAndValuesIsUntouched) {
  auto model = random_gpt(tiny(2), 22);
  std::map<std::string, std::vector<double>> before;
  for (auto& [name, t] : model->state_dict()) before[name] = values(t);
  lesson13::mha_to_gqa(*model, 1);
  for (auto& [name, t] : model->state_dict()) {
    if (name.find(".attn.wk.") != std::string::npos || name.find(".attn.wv.") != std::string::npos)
      continue;
    ASSERT_TRUE(before.count(name)) << "the converted model has a new parameter '" << name << "'";
    EXPECT_TRUE(close(name, t, before[name], t.shape(), 0))
        << (is_attention(name) ? "queries and the output projection are copied, not re-initialised"
                               : "surgery on the attention must not touch the rest of the model");
  }
}

TEST(MhaToGqa, GroupsEqualHeadsGivesTheSameLogits) {
  auto model = random_gpt(tiny(2), 23);
  const Tensor before = model->forward(ids());
  lesson13::mha_to_gqa(*model, 4);
  EXPECT_TRUE(close("logits after G = H conversion", model->forward(ids()), before, 1e-6));
}

TEST(MhaToGqa, IdenticalHeadsGiveTheSameLogits) {
  auto model = random_gpt(tiny(2), 24);
  for (auto& block : model->blocks()) equalise_groups(block->attention(), 4, 2);
  const Tensor before = model->forward(ids());
  lesson13::mha_to_gqa(*model, 2);
  EXPECT_TRUE(close("logits, heads equal within each group, G = 2", model->forward(ids()), before));
}

TEST(MhaToGqa, RejectsBadGroupsAndLeavesTheModelAlone) {
  auto model = random_gpt(tiny(2), 25);
  const Tensor before = model->forward(ids());
  EXPECT_TRUE(rejects("mha_to_gqa(4 heads, G = 3)", [&] { lesson13::mha_to_gqa(*model, 3); },
                      "4 heads do not split into 3 equal groups"));
  EXPECT_TRUE(rejects("mha_to_gqa(4 heads, G = 0)", [&] { lesson13::mha_to_gqa(*model, 0); },
                      "zero groups"));
  EXPECT_EQ(model->config().attention, "mha") << "a rejected conversion must not change the spec";
  EXPECT_TRUE(close("logits after rejected conversions", model->forward(ids()), before, 0))
      << "check the group count before replacing any block";
  auto gqa_model = random_gpt(tiny(2, 4, "gqa:kv_heads=2"), 26);
  EXPECT_TRUE(rejects("mha_to_gqa(a model that is GQA already, G = 1)",
                      [&] { lesson13::mha_to_gqa(*gqa_model, 1); },
                      "its K/V heads are already shared; only an MHA model can be pooled"));
}

// -------------------------------------------------------------------- mistakes

TEST(Mistakes, StridedGroupsInsteadOfContiguous) {
  // Head h holds the value h in every row: group j must average heads
  // j*g .. j*g+g-1. H = 6, G = 2: groups {0,1,2} -> 1 and {3,4,5} -> 4.
  // Strided groups {0,2,4} and {1,3,5} would give 2 and 3.
  std::vector<float> w;
  for (int h = 0; h < 6; ++h)
    for (int i = 0; i < 2; ++i) w.push_back(float(h));
  const Tensor got = lesson13::pool_kv_heads(from_vector(w, {12}), 6, 2);
  EXPECT_TRUE(close("pooled head labels (H = 6, G = 2, d = 2)", got, {1, 1, 4, 4}, {4}))
      << "each value is the mean of the head numbers in its group"
      << diagnose(got, {w.begin(), w.end()}, 6, 2, 1)
      << "\n(this is chapter 04's 'repeat where repeat_interleave is needed' in reverse)";
}

TEST(Mistakes, SummedInsteadOfAveraged) {
  const Tensor w = random_tensor({8, 3}, 30);
  const Tensor got = lesson13::pool_kv_heads(w, 4, 2);
  EXPECT_TRUE(close("pool_kv_heads(random [8, 3], H = 4, G = 2)", got, pool(values(w), 4, 2, 3),
                    {4, 3}))
      << diagnose(got, values(w), 4, 2, 3);
}

TEST(Mistakes, AveragedFeaturesInsteadOfHeads) {
  // d = 2, so rows of one head sit next to each other: averaging
  // neighbouring rows mixes the features of one head.
  const Tensor w = from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {8});
  const Tensor got = lesson13::pool_kv_heads(w, 4, 2);
  EXPECT_TRUE(close("pool_kv_heads(1..8, H = 4, d = 2, G = 2)", got, {2, 3, 6, 7}, {4}))
      << diagnose(got, values(w), 4, 2, 1);
}

TEST(Mistakes, KeptOneHeadPerGroupInsteadOfTheMean) {
  const Tensor w = random_tensor({12, 2}, 31);
  const Tensor got = lesson13::pool_kv_heads(w, 6, 3);
  EXPECT_TRUE(close("pool_kv_heads(random [12, 2], H = 6, G = 3)", got, pool(values(w), 6, 3, 2),
                    {6, 2}))
      << diagnose(got, values(w), 6, 3, 2);
}

TEST(Mistakes, PooledTheQueriesToo) {
  auto mha = random_mha(16, 4, 32);
  auto gqa = convert(*mha, 2);
  ASSERT_TRUE(gqa);
  EXPECT_TRUE(close("wq after conversion", param(*gqa, "wq.weight"), param(*mha, "wq.weight"), 0))
      << "only K and V are pooled; every query head keeps its own weights";
}

TEST(Mistakes, ForgotTheBias) {
  auto mha = random_mha(16, 4, 33);
  auto gqa = convert(*mha, 2);
  ASSERT_TRUE(gqa);
  for (const std::string name : {"wk.bias", "wv.bias"}) {
    const Tensor got = param(*gqa, name);
    const bool zeros = !got.to_vector().empty() && same(got, std::vector<double>(got.numel(), 0.0), 0);
    EXPECT_TRUE(close(name + " after conversion", got, pool(values(param(*mha, name)), 4, 2, 1), {8}))
        << (zeros ? "\n=> it is all zeros: the fresh module's initial bias. Pool the source's "
                    "bias like its weight"
                  : "");
  }
}

TEST(Mistakes, ReinitialisedInsteadOfCopied) {
  auto mha = random_mha(16, 4, 34);
  auto gqa = convert(*mha, 4);
  ASSERT_TRUE(gqa);
  const Tensor x = random_tensor({1, 5, 16}, 35);
  const bool q_copied = same(param(*gqa, "wq.weight"), values(param(*mha, "wq.weight")), 0);
  EXPECT_TRUE(close("output of the G = H conversion", gqa->forward(x), mha->forward(x), 1e-6))
      << (q_copied ? ""
                   : "\n=> even wq differs from the source: the module kept its fresh random "
                     "weights. Load the source's weights (pooled K/V) into it with "
                     "load_state_dict");
}

TEST(Mistakes, ReplacedOnlyTheFirstBlock) {
  auto model = random_gpt(tiny(3), 36);
  lesson13::mha_to_gqa(*model, 1);
  std::ostringstream kv;
  bool all = true;
  for (std::size_t i = 0; i < model->blocks().size(); ++i) {
    auto* a = dynamic_cast<MultiHeadAttention*>(&model->blocks()[i]->attention());
    const int64_t n = a ? a->kv_heads() : -1;
    kv << (i ? ", " : "") << n;
    all = all && n == 1;
  }
  EXPECT_TRUE(all) << "K/V heads of blocks 0..2 after mha_to_gqa(G = 1): [" << kv.str()
                   << "], expected [1, 1, 1]: convert the attention of every block "
                      "(for (auto& block : model.blocks()) ...), not only the first";
}

TEST(Mistakes, ForgotToUpdateTheModelSpec) {
  auto model = random_gpt(tiny(2), 37);
  lesson13::mha_to_gqa(*model, 2);
  EXPECT_EQ(model->config().attention, "gqa:kv_heads=2")
      << "checkpoints rebuild the model from config().attention: a model whose spec still says "
         "'mha' cannot load its own GQA weights. Call model.set_attention_spec(gqa_spec(...))";
}
