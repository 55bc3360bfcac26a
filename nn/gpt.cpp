#include "nn/gpt.h"

#include <nlohmann/json.hpp>

#include "attention/registry.h"
#include "attention/ring.h"
#include "autograd/autocast.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

// ---- config ----

void GPTConfig::validate() const {
  check(vocab >= 1, "model: vocab must be >= 1, got ", vocab);
  check(block_size >= 1 && block_size <= 65536, "model: --block must be in 1..65536, got ", block_size);
  check(layers >= 1 && layers <= 128, "model: --layers must be in 1..128, got ", layers);
  check(heads >= 1, "model: --heads must be >= 1, got ", heads);
  check(embd >= 1 && embd <= 16384, "model: --embd must be in 1..16384, got ", embd);
  check(embd % heads == 0, "model: --heads ", heads, " must divide --embd ", embd, " (", embd,
        " % ", heads, " = ", embd % heads, ")");
  check(dropout >= 0 && dropout < 1, "model: --dropout must be in [0, 1), got ", dropout);
  check(attn_dropout >= 0 && attn_dropout < 1, "model: --attn-dropout must be in [0, 1), got ",
        attn_dropout);
  check(norm == "layernorm" || norm == "rmsnorm", "model: --norm must be layernorm or rmsnorm, got '",
        norm, "'");
  check(norm_position == "pre" || norm_position == "post",
        "model: --norm-position must be pre or post, got '", norm_position, "'");
  check(mlp == "gelu" || mlp == "swiglu", "model: --mlp must be gelu or swiglu, got '", mlp, "'");
}

std::string GPTConfig::to_json() const {
  nlohmann::json j = {{"vocab", vocab},         {"block_size", block_size},
                      {"layers", layers},       {"heads", heads},
                      {"embd", embd},           {"dropout", dropout},
                      {"attention", attention}, {"norm", norm},
                      {"norm_position", norm_position}, {"mlp", mlp},
                      {"tie_weights", tie_weights},     {"bias", bias},
                      {"attn_dropout", attn_dropout}};
  return j.dump();
}

GPTConfig GPTConfig::from_json(const std::string& text) {
  GPTConfig c;
  try {
    const auto j = nlohmann::json::parse(text);
    // Sizes must be JSON integers: converting a float such as 1e300 to
    // int64 is undefined behaviour (found by fuzz/checkpoint.cpp).
    auto integer = [&](const char* key) {
      const auto& v = j.at(key);
      check(v.is_number_integer(), "model: config is not valid: ", key, " is ", v.dump(),
            ", expected an integer");
      return v.get<int64_t>();
    };
    c.vocab = integer("vocab");
    c.block_size = integer("block_size");
    c.layers = integer("layers");
    c.heads = integer("heads");
    c.embd = integer("embd");
    c.dropout = j.at("dropout").get<float>();
    // Absent from configs stored before attention dropout existed: 0.
    c.attn_dropout = j.value("attn_dropout", 0.0f);
    c.attention = j.at("attention").get<std::string>();
    c.norm = j.at("norm").get<std::string>();
    c.norm_position = j.at("norm_position").get<std::string>();
    c.mlp = j.at("mlp").get<std::string>();
    c.tie_weights = j.at("tie_weights").get<bool>();
    c.bias = j.at("bias").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    fail("model: config is not valid: ", e.what());
  }
  c.validate();
  return c;
}

// ---- block ----

AttentionConfig GPTConfig::attention_config() const {
  AttentionConfig ac;
  ac.embd = embd;
  ac.heads = heads;
  ac.block_size = block_size;
  ac.layers = layers;
  ac.dropout = attn_dropout;
  ac.bias = bias;
  return ac;
}

Block::Block(const GPTConfig& c, Generator& gen, DropoutSource& dropout_source)
    : pre_(c.norm_position == "pre"), dropout_(c.dropout), dropout_source_(&dropout_source) {
  norm1_ = register_module("norm1", std::make_shared<Norm>(c.norm, c.embd, c.bias));
  attn_ = register_module("attn", make_attention(c.attention, c.attention_config(), gen));
  attn_->set_dropout_source(dropout_source_);  // attention dropout draws from the model's stream
  norm2_ = register_module("norm2", std::make_shared<Norm>(c.norm, c.embd, c.bias));
  if (c.mlp == "swiglu")
    mlp_ = register_module("mlp", std::shared_ptr<FeedForward>(std::make_shared<SwiGLU>(c.embd, c.layers, c.bias, gen)));
  else
    mlp_ = register_module("mlp", std::shared_ptr<FeedForward>(std::make_shared<MLP>(c.embd, c.layers, c.bias, gen)));
}

void Block::set_attention(std::shared_ptr<Attention> replacement) {
  replacement->set_dropout_source(dropout_source_);
  attn_ = replacement;
  replace_module("attn", replacement);
}

Tensor Block::forward(const Tensor& x) { return run(x, nullptr, 0); }

Tensor Block::forward_cached(const Tensor& x, KVCache& cache, int64_t layer) {
  return run(x, &cache, layer);
}

Tensor Block::run(const Tensor& x, KVCache* cache, int64_t layer) {
  const bool train = training();
  // residual + dropout(branch output), one fused pass.
  auto residual = [&](const Tensor& r, const Tensor& y) {
    return dropout_add(r, y, dropout_, train, *dropout_source_);
  };
  auto attend = [&](const Tensor& y) {
    return cache ? attn_->forward_cached(y, *cache, layer) : attn_->forward(y);
  };
  if (pre_) {
    const Tensor h = residual(x, attend(norm1_->forward(x)));
    return residual(h, mlp_->forward(norm2_->forward(h)));
  }
  const Tensor h = norm1_->forward(residual(x, attend(x)));
  return norm2_->forward(residual(h, mlp_->forward(h)));
}

// ---- GPT ----

GPT::GPT(const GPTConfig& c, uint64_t seed) : config_(c) {
  dropout_source_.seed = seed ^ 0x5eedULL;
  c.validate();
  Generator gen(seed);
  wte_ = register_module("wte", std::make_shared<Embedding>(c.vocab, c.embd, gen));
  for (int64_t i = 0; i < c.layers; ++i)
    blocks_.push_back(register_module("blocks." + std::to_string(i),
                                      std::make_shared<Block>(c, gen, dropout_source_)));
  // RoPE and ALiBi put positions into the attention itself.
  if (!blocks_.front()->attention().encodes_positions())
    wpe_ = register_module("wpe", std::make_shared<Embedding>(c.block_size, c.embd, gen));
  final_norm_ = register_module("norm_f", std::make_shared<Norm>(c.norm, c.embd, c.bias));
  if (!c.tie_weights)
    head_ = register_module("head", std::make_shared<Linear>(c.embd, c.vocab, false, gen));
}

Tensor GPT::embed(const Tensor& ids, int64_t offset, bool any_length) {
  check(ids.dim() == 2 && ids.dtype() == DType::Int64, "model: expected int64 token ids [B, T], got ",
        dtype_name(ids.dtype()), " ", shape_str(ids.shape()));
  const int64_t T = ids.shape()[1];
  const bool beyond_ok = any_length && !wpe_;  // nothing is indexed by position then
  // A sequence split over ranks (ring attention, attention/ring.h): these
  // T tokens are this rank's share of a sequence ranks x longer, at
  // positions spread over it.
  const ActiveSplit split = active_sequence_split();
  const int64_t ranks = split.comm ? split.comm->size() : 1;
  check(T >= 1 && (offset + T * ranks <= config_.block_size || beyond_ok), "model: positions ", offset, "..",
        offset + T * ranks - 1, " are outside 0..block_size-1=", config_.block_size - 1);
  Tensor x = wte_->forward(ids);  // [B, T, C]
  if (wpe_ && ranks > 1) {
    const SequenceShard shard = shard_of(T * ranks, split.comm->rank(), static_cast<int>(ranks), split.split);
    x = add(x, wpe_->forward(from_ints(shard.positions(), {T}, ids.device())));
  } else if (wpe_) {
    x = add(x, wpe_->forward(arange(static_cast<double>(offset), static_cast<double>(offset + T), 1,
                                    DType::Int64, ids.device())));
  }
  return dropout(x, config_.dropout, training(), dropout_source_);
}

Tensor GPT::forward(const Tensor& ids) {
  Tensor x = embed(ids, 0);
  for (auto& block : blocks_) x = block->forward(x);
  return head(x);
}

Tensor GPT::forward_any_length(const Tensor& ids) {
  Tensor x = embed(ids, 0, true);
  for (auto& block : blocks_) x = block->forward(x);
  return head(x);
}

Tensor GPT::forward_cached(const Tensor& ids, KVCache& cache) {
  cache.make_room(ids.shape()[1]);  // a rolling cache evicts first (no-op otherwise)
  Tensor x = embed(ids, cache.length());
  for (size_t l = 0; l < blocks_.size(); ++l)
    x = blocks_[l]->forward_cached(x, cache, static_cast<int64_t>(l));
  cache.commit(ids.shape()[1]);
  return head(x);
}

KVCache GPT::make_cache(int64_t batch) {
  Attention& a = blocks_.front()->attention();
  check(a.cache_layout().heads > 0, "model: attention '", config_.attention, "' has no KV cache");
  return KVCache(config_.layers, batch, a.cache_layout(), config_.block_size,
                 parameters().front()->device());
}

KVCache GPT::make_rolling_cache(int64_t batch, int64_t sinks, int64_t window) {
  Attention& a = blocks_.front()->attention();
  check(a.cache_layout().heads > 0, "model: attention '", config_.attention, "' has no KV cache to stream with");
  check(a.supports_rolling_cache(), "model: attention '", config_.attention,
        "' has no rolling KV cache (streaming works with mha, gqa and mqa and their kernels)");
  check(!wpe_, "model: attention '", config_.attention, "' uses learned positions, which a rolling cache "
        "cannot renumber; stream with a model trained with rope or alibi (e.g. mha:rope)");
  check(sinks >= 0, "model: sinks=", sinks, ": expected 0 or more tokens");
  check(window >= 1, "model: window=", window, ": expected at least 1 token");
  check(sinks + window <= config_.block_size, "model: sinks + window = ", sinks + window,
        " exceeds the block size ", config_.block_size, " (positions inside the cache must stay trained ones)");
  return KVCache::rolling(config_.layers, batch, a.cache_layout(), sinks, window,
                          parameters().front()->device());
}

Tensor GPT::head(const Tensor& x_in) {
  Tensor x = x_in;
  x = final_norm_->forward(x);
  // Weight tying: the output layer reuses the embedding matrix, since
  // "which token is this vector" and "which vector is this token" are the
  // same question asked both ways.
  return head_ ? head_->forward(x)
               : matmul(autocast_operand(x), transpose(autocast_operand(wte_->weight()), 0, 1));
}

}  // namespace attn
