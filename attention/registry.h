// Attention variants by name, with options:  "mha", "gqa:kv_heads=2", "mqa".
// `--attention` on the command line, the model config and checkpoints all
// store this string, so a model can always be rebuilt from it.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"

namespace attn {

struct VariantSpec {
  std::string name;
  std::map<std::string, std::string> options;  // a bare flag is stored as "true"
  std::string str() const;                     // back to "name:key=value,..."
};

// "gqa:kv_heads=2,rope" -> {gqa, {kv_heads: 2, rope: true}}. Syntax errors
// name the text and the position.
VariantSpec parse_variant(const std::string& text);

using AttentionFactory = std::function<std::shared_ptr<Attention>(
    const VariantSpec& spec, const AttentionConfig& config, Generator& gen)>;

// Adds a variant (lessons register their student versions as "student:<name>").
// Such a variant has no attention dropout: chapter interfaces have none.
void register_attention(const std::string& name, const std::string& help,
                        AttentionFactory factory);
std::vector<std::string> attention_names();
// What a variant computes and its options, for `attnlab variants`.
std::string attention_help(const std::string& name);
// Builds a variant; an unknown name or option lists what exists. A
// config.dropout > 0 for a variant without attention dropout is an error.
std::shared_ptr<Attention> make_attention(const std::string& spec, const AttentionConfig& config,
                                          Generator& gen);
// Why the variant of `spec` cannot drop attention probabilities (linear
// attention never forms them; student variants' chapters have no dropout),
// or "" when it can (or the name is unknown: make_attention says so).
std::string attention_dropout_unsupported(const std::string& spec);

// Option helpers for factories: the value, or the default; a malformed
// value is an error naming the variant and the option.
int64_t option_int(const VariantSpec& spec, const std::string& key, int64_t fallback);
float option_float(const VariantSpec& spec, const std::string& key, float fallback);
bool option_flag(const VariantSpec& spec, const std::string& key);
void check_options(const VariantSpec& spec, const std::vector<std::string>& allowed);

}  // namespace attn
