// The char-level GPT: token embedding (+ learned positions unless the
// attention encodes positions itself), N transformer blocks, a final norm
// and the LM head that turns each position's vector into next-token logits.
#pragma once
#include <string>

#include "attention/attention.h"
#include "attention/kv_cache.h"
#include "nn/layers.h"

namespace attn {

struct GPTConfig {
  int64_t vocab = 0;
  int64_t block_size = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t embd = 64;
  float dropout = 0;
  // Attention dropout, on the attention probabilities (--attn-dropout; the
  // command line defaults it to --dropout for new runs, as nanoGPT does).
  // Configs stored before it existed read as 0: they trained without it.
  float attn_dropout = 0;
  std::string attention = "mha";      // a registry spec, e.g. "gqa:kv_heads=2"
  std::string norm = "layernorm";     // layernorm | rmsnorm
  std::string norm_position = "pre";  // pre | post
  std::string mlp = "gelu";           // gelu | swiglu
  bool tie_weights = true;            // LM head shares the token embedding
  bool bias = true;                   // linear layers and LayerNorms add a bias (--bias)

  // One line per problem, naming the field, the value and what is allowed.
  void validate() const;
  std::string to_json() const;
  static GPTConfig from_json(const std::string& text);
  // The attention layer's share of the config (what make_attention needs).
  AttentionConfig attention_config() const;
};

// One transformer block.
//   pre-norm:  x = x + attn(norm1(x));  x = x + mlp(norm2(x))
//   post-norm: x = norm1(x + attn(x));  x = norm2(x + mlp(x))
// Pre-norm keeps an untouched residual path from input to output, which is
// why deep pre-norm stacks train without warmup tricks.
class Block : public Module {
 public:
  Block(const GPTConfig& config, Generator& gen, DropoutSource& dropout_source);
  Tensor forward(const Tensor& x);
  Tensor forward_cached(const Tensor& x, KVCache& cache, int64_t layer);
  Attention& attention() { return *attn_; }

  // Swaps in another attention (attention surgery); same input/output shape.
  void set_attention(std::shared_ptr<Attention> replacement);

 private:
  Tensor run(const Tensor& x, KVCache* cache, int64_t layer);
  bool pre_;
  float dropout_;
  DropoutSource* dropout_source_;
  std::shared_ptr<Norm> norm1_, norm2_;
  std::shared_ptr<Attention> attn_;
  std::shared_ptr<FeedForward> mlp_;
};

class GPT : public Module {
 public:
  GPT(const GPTConfig& config, uint64_t seed);
  // ids int64 [B, T] with T <= block_size -> logits [B, T, vocab].
  Tensor forward(const Tensor& ids);
  // Evaluation past the training length (compare --extrapolate, attnlab
  // eval --lengths): any T, when the attention encodes positions itself
  // (RoPE, ALiBi, MLA). Learned positions exist for 0..block_size-1 only,
  // so a model with them refuses T > block_size as forward() does.
  Tensor forward_any_length(const Tensor& ids);
  bool has_learned_positions() const { return wpe_ != nullptr; }
  // The same, for new tokens only, reusing (and extending) the K/V of the
  // tokens in `cache`: positions continue at cache.length().
  Tensor forward_cached(const Tensor& ids, KVCache& cache);
  // A cache for `batch` sequences of up to block_size tokens.
  KVCache make_cache(int64_t batch);
  // A rolling cache for streaming generation (chapter 18): the first
  // `sinks` tokens and the last `window`, positions counted inside the
  // cache. Needs sinks + window <= block_size and an attention that encodes
  // positions itself (learned positions are baked into the residual stream,
  // where no cache can renumber them) and supports a rolling cache.
  KVCache make_rolling_cache(int64_t batch, int64_t sinks, int64_t window);
  const GPTConfig& config() const { return config_; }
  // Records a new attention spec after surgery (nn/surgery.h).
  void set_attention_spec(const std::string& spec) { config_.attention = spec; }
  std::vector<std::shared_ptr<Block>>& blocks() { return blocks_; }
  // Dropout's random numbers; the trainer sets first_sample each step and
  // checkpoints save seed and offset.
  DropoutSource& dropout_source() { return dropout_source_; }

 private:
  Tensor embed(const Tensor& ids, int64_t offset, bool any_length = false);
  Tensor head(const Tensor& x);
  GPTConfig config_;
  DropoutSource dropout_source_;
  std::shared_ptr<Embedding> wte_, wpe_;
  std::vector<std::shared_ptr<Block>> blocks_;
  std::shared_ptr<Norm> final_norm_;
  std::shared_ptr<Linear> head_;  // only without weight tying
};

}  // namespace attn
