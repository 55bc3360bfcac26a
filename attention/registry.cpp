#include "attention/registry.h"

#include <algorithm>
#include <cmath>

#include "attention/bigbird.h"
#include "attention/flash.h"
#include "attention/linear.h"
#include "attention/mla.h"
#include "attention/multi_head.h"
#include "attention/multiscale.h"
#include "attention/performer.h"
#include "attention/ring.h"
#include "attention/sparse.h"
#include "attention/window.h"
#include "core/error.h"

namespace attn {

namespace {

struct Entry {
  std::string help;
  AttentionFactory factory;
  std::string no_dropout = "";  // why it has no attention dropout; "" = it has
};

const char* const kStudentNoDropout = "its chapter's interface has no attention dropout";

std::map<std::string, Entry>& table();

std::string known_list() {
  std::string s;
  for (const auto& [name, e] : table()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

bool valid_word(const std::string& w) {
  return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
         });
}

// rope, rope_base=B, ntk=S, alibi: the position options every multi-head
// variant accepts.
const std::vector<std::string> kPositionKeys = {"rope", "rope_base", "ntk", "alibi"};

PositionOptions position_options(const VariantSpec& s) {
  PositionOptions p;
  p.rope = option_flag(s, "rope");
  p.alibi = option_flag(s, "alibi");
  p.rope_base = option_float(s, "rope_base", p.rope_base);
  p.ntk_scale = option_float(s, "ntk", p.ntk_scale);
  check(p.rope || (!s.options.count("rope_base") && !s.options.count("ntk")), "attention ", s.name,
        ": rope_base and ntk only apply together with rope");
  return p;
}

std::vector<std::string> with_positions(std::vector<std::string> keys) {
  keys.insert(keys.end(), kPositionKeys.begin(), kPositionKeys.end());
  return keys;
}

// The built-in variants of the reference library.
void register_builtins(std::map<std::string, Entry>& t) {
  t["mha"] = {"multi-head attention: every query head has its own K/V head",
              [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                check_options(s, with_positions({}));
                return std::make_shared<MultiHeadAttention>(c, c.heads, g, position_options(s));
              }};
  t["gqa"] = {"grouped-query attention: kv_heads=N K/V heads shared by groups of query heads",
              [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                check_options(s, with_positions({"kv_heads"}));
                check(s.options.count("kv_heads"), "attention gqa: needs the option kv_heads=N, ",
                      "e.g. gqa:kv_heads=2");
                return std::make_shared<MultiHeadAttention>(c, option_int(s, "kv_heads", 0), g,
                                                            position_options(s));
              }};
  t["flash"] = {"flash attention: tiled online softmax, never a T x T matrix; options kv_heads=N, window=W",
                [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                  check_options(s, with_positions({"kv_heads", "window"}));
                  return std::make_shared<MultiHeadAttention>(
                      c, option_int(s, "kv_heads", c.heads), g, position_options(s),
                      flash_kernel(option_int(s, "window", 0)));
                }};
  t["mla"] = {"multi-head latent attention: caches a latent=N vector (+ a shared rope_dim=R RoPE key) per token",
              [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                check_options(s, {"latent", "rope_dim"});
                const int64_t head_dim = c.heads > 0 ? c.embd / c.heads : 0;
                const int64_t latent = option_int(s, "latent", std::max<int64_t>(c.embd / 4, 1));
                const int64_t rope_dim = option_int(s, "rope_dim", std::max<int64_t>(head_dim / 2 / 2 * 2, 2));
                // Upper bounds before any weight is allocated (mla:latent=999999999
                // would ask for gigabytes): a latent wider than the K and V it
                // replaces (2 x embd) saves nothing, nor does a RoPE key wider than 2 heads.
                check(latent <= 2 * c.embd, "attention mla: latent=", latent, " must be at most ",
                      2 * c.embd, " (2 x embd, the width of the K and V it compresses)");
                check(rope_dim <= std::max<int64_t>(2 * head_dim, 2), "attention mla: rope_dim=", rope_dim,
                      " must be at most ", std::max<int64_t>(2 * head_dim, 2), " (2 x the head width ",
                      head_dim, ")");
                return std::make_shared<MultiHeadLatentAttention>(c, latent, rope_dim, g);
              }};
  t["mqa"] = {"multi-query attention: one K/V head shared by all query heads",
              [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                check_options(s, with_positions({}));
                return std::make_shared<MultiHeadAttention>(c, 1, g, position_options(s));
              }};
  // Options that must be given and be >= 1 (window sizes, strides, blocks):
  // a missing one names an example, a zero names the rule.
  auto required_size = [](const VariantSpec& s, const std::string& key, const char* example) {
    check(s.options.count(key), "attention ", s.name, ": needs the option ", key, "=N, e.g. ",
          example);
    const int64_t n = option_int(s, key, 0);
    check(n >= 1, "attention ", s.name, ": ", key, " must be >= 1, got ", n);
    return n;
  };
  t["window"] = {"sliding-window attention: each query sees its last size=W keys (itself included), "
                 "in O(T W) memory; option kv_heads=N",
                 [required_size](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                   check_options(s, with_positions({"size", "kv_heads"}));
                   const int64_t w = required_size(s, "size", "window:size=64");
                   return std::make_shared<MultiHeadAttention>(
                       c, option_int(s, "kv_heads", c.heads), g, position_options(s),
                       window_kernel(w));
                 }};
  t["sparse"] = {"strided sparse attention: the last local=L keys plus every stride=S-th "
                 "(summary) key; option kv_heads=N",
                 [required_size](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                   check_options(s, with_positions({"local", "stride", "kv_heads"}));
                   const int64_t local = required_size(s, "local", "sparse:local=8,stride=8");
                   const int64_t stride = required_size(s, "stride", "sparse:local=8,stride=8");
                   return std::make_shared<MultiHeadAttention>(
                       c, option_int(s, "kv_heads", c.heads), g, position_options(s),
                       strided_sparse_kernel(local, stride));
                 }};
  t["blocksparse"] = {"block-sparse attention: blocks of block=B positions; a block sees itself "
                      "(causally), the previous block and the first; option kv_heads=N",
                      [required_size](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                        check_options(s, with_positions({"block", "kv_heads"}));
                        const int64_t block = required_size(s, "block", "blocksparse:block=16");
                        return std::make_shared<MultiHeadAttention>(
                            c, option_int(s, "kv_heads", c.heads), g, position_options(s),
                            block_sparse_kernel(block));
                      }};
  t["bigbird"] = {"BigBird-style attention: the last window=W keys, the first global=G positions and "
                  "random=R earlier key blocks per query block; options block=B (tokens per block, "
                  "default 16), seed=S, kv_heads=N. Block-skipping flash kernel on the CPU only: "
                  "with --device cuda it runs the pattern as a dense mask (T x T memory)",
                  [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                    check_options(s, with_positions({"window", "global", "random", "block", "seed",
                                                     "kv_heads"}));
                    for (const char* key : {"window", "global", "random"})
                      check(s.options.count(key), "attention bigbird: needs the option ", key,
                            "=N, e.g. bigbird:window=16,global=2,random=2");
                    BigBirdPattern pattern;
                    pattern.window = option_int(s, "window", 0);
                    pattern.global = option_int(s, "global", 0);
                    pattern.random = option_int(s, "random", 0);
                    pattern.block = option_int(s, "block", pattern.block);
                    pattern.seed = static_cast<uint64_t>(option_int(s, "seed", 0));
                    return std::make_shared<MultiHeadAttention>(
                        c, option_int(s, "kv_heads", c.heads), g, position_options(s),
                        bigbird_kernel(pattern));
                  }};
  t["multiscale"] = {"multi-scale attention: the heads split evenly among windows=W1,W2,... (in order; "
                     "0 = full causal); on the CPU one flash call per group reading its heads in place, "
                     "on CUDA the masked path (dense scores per head)",
                      [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                        check_options(s, with_positions({"windows"}));
                        check(s.options.count("windows"), "attention multiscale: needs the option ",
                              "windows=W1,W2,..., e.g. multiscale:windows=8,32,0");
                        const std::vector<int64_t> windows = parse_windows(s.options.at("windows"));
                        scale_groups(c.heads, windows);  // refuses a bad list before any weight exists
                        return std::make_shared<MultiHeadAttention>(c, c.heads, g, position_options(s),
                                                                    multiscale_kernel(windows));
                      }};
  t["ring"] = {"ring attention: under mpirun with --data-parallel, each rank holds a part of every sequence "
               "and K/V blocks pass around the ring of ranks; option split=zigzag (default, balanced) or "
               "contiguous; in one process it is flash attention. CPU only when split",
               [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                 check_options(s, {"split"});
                 const std::string split = s.options.count("split") ? s.options.at("split") : "zigzag";
                 check(split == "zigzag" || split == "contiguous", "attention ring: split=", split,
                       " is not a split; expected zigzag or contiguous");
                 return std::make_shared<MultiHeadAttention>(
                     c, c.heads, g, PositionOptions{},
                     ring_kernel(split == "zigzag" ? RingSplit::Zigzag : RingSplit::Contiguous));
               },
               "its blocks are folded on several ranks, and dropout numbers are keyed by one rank's positions"};
  // A count option that must be >= 1: "-1" and "0" get the same message
  // (option_int alone would call -1 "not a non-negative integer").
  auto positive_count = [](const VariantSpec& s, const std::string& key, int64_t fallback,
                           const char* example) {
    const std::string v = s.options.count(key) ? s.options.at(key) : "";
    check(v.rfind('-', 0) != 0, "attention ", s.name, ": ", key, "=", v,
          ": expected a positive count, e.g. ", example);
    const int64_t n = option_int(s, key, fallback);
    check(n >= 1, "attention ", s.name, ": ", key, "=", n, ": expected a positive count, e.g. ", example);
    return n;
  };
  t["performer"] = {"Performer (FAVOR+): softmax estimated with features=M positive random features "
                    "per head, causal by prefix sums, O(T M d), no weights, no KV cache; options "
                    "orthogonal=0/1 (default 1), redraw=N (new features every N training forwards, "
                    "0 = never), seed=S, rope. Autograd ops: CPU and CUDA",
                    [positive_count](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                      check_options(s, {"features", "orthogonal", "redraw", "seed", "rope", "rope_base", "ntk"});
                      PerformerOptions o;
                      o.features = positive_count(s, "features", o.features, "performer:features=64");
                      // A cap before anything is allocated (features=999999999 would ask for
                      // gigabytes); 16384 is far more than the estimate needs (its error falls
                      // like 1/sqrt(M): chapter 16's README).
                      check(o.features <= 16384, "attention performer: features=", o.features,
                            ": expected at most 16384");
                      const int64_t orthogonal = option_int(s, "orthogonal", 1);
                      check(orthogonal <= 1, "attention performer: orthogonal=", orthogonal,
                            ": expected 0 (iid rows) or 1 (orthogonal blocks)");
                      o.orthogonal = orthogonal == 1;
                      o.redraw = option_int(s, "redraw", 0);
                      o.seed = static_cast<uint64_t>(option_int(s, "seed", 0));
                      return std::make_shared<PerformerAttention>(c, o, g, position_options(s));
                    },
                    "Performer never forms the probabilities to drop"};
  t["linformer"] = {"Linformer: K and V projected along the sequence to k=K rows; bidirectional only "
                    "(attn::linformer_attention), so the causal GPT refuses it",
                    [positive_count](const VariantSpec& s, const AttentionConfig&, Generator&)
                        -> std::shared_ptr<Attention> {
                      check_options(s, {"k"});
                      check(s.options.count("k"), "attention linformer: needs the option k=K, e.g. linformer:k=32");
                      positive_count(s, "k", 0, "linformer:k=32");
                      fail("attention linformer: cannot run in a causal GPT: its projection E K mixes "
                           "every position, future tokens included, into each projected key; use it "
                           "bidirectionally (attn::linformer_attention)");
                    },
                    "it does not run in the causal GPT"};
  t["linear"] = {"linear attention: phi(q) (sum phi(k) v^T) with phi = elu + 1, O(T) memory, "
                 "no weights, no KV cache; option kv_heads=N",
                 [](const VariantSpec& s, const AttentionConfig& c, Generator& g) {
                   check_options(s, with_positions({"kv_heads"}));
                   const PositionOptions p = position_options(s);
                   check(!p.alibi, "attention linear: alibi adds a bias to the scores, and linear "
                         "attention never forms scores; use rope or no position option");
                   return std::make_shared<LinearMultiHeadAttention>(
                       c, option_int(s, "kv_heads", c.heads), g, p);
                 },
                 "linear attention never forms the probabilities to drop"};
}

std::map<std::string, Entry>& table() {
  static std::map<std::string, Entry> t = [] {
    std::map<std::string, Entry> init;
    register_builtins(init);
    return init;
  }();
  return t;
}

}  // namespace

std::string VariantSpec::str() const {
  std::string s = name;
  char sep = ':';
  for (const auto& [k, v] : options) {
    s += sep + k + (v == "true" ? "" : "=" + v);
    sep = ',';
  }
  return s;
}

VariantSpec parse_variant(const std::string& text) {
  VariantSpec spec;
  const std::size_t colon = text.find(':');
  // "student:gqa" is a name of its own: the student's variants are
  // registered with the prefix.
  std::size_t name_end = colon;
  if (text.rfind("student:", 0) == 0) name_end = text.find(':', 8);
  spec.name = text.substr(0, name_end);
  check(valid_word(spec.name.rfind("student:", 0) == 0 ? spec.name.substr(8) : spec.name),
        "attention: '", text, "' does not start with a variant name; expected e.g. mha or ",
        "gqa:kv_heads=2");
  if (name_end == std::string::npos) return spec;
  std::size_t pos = name_end + 1;
  std::string list_key;  // the last key=value option: the one a bare number extends
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const std::size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? "true" : item.substr(eq + 1);
    check(valid_word(key) && valid_word(value), "attention: bad option '", item, "' at position ",
          pos, " of '", text, "'; expected key=value or a flag, separated by commas");
    // A bare number is the next item of a list value: windows=8,32,0. So no
    // flag is a number, and a number never stands first. A negative one
    // joins the list too, for the option's own check to name it.
    const std::string digits = item.substr(item.rfind('-', 0) == 0 ? 1 : 0);
    const bool number = eq == std::string::npos && !digits.empty() &&
                        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (number) {
      check(!list_key.empty(), "attention: bad option '", item, "' at position ", pos, " of '", text,
            "'; a bare number continues the list of the key=value before it, e.g. windows=8,32,0");
      spec.options[list_key] += "," + item;
    } else {
      check(!spec.options.count(key), "attention: option '", key, "' is given twice in '", text, "'");
      spec.options[key] = value;
      list_key = eq == std::string::npos ? "" : key;
    }
    pos = comma + 1;
  }
  return spec;
}

void register_attention(const std::string& name, const std::string& help,
                        AttentionFactory factory) {
  table()[name] = {help, std::move(factory), kStudentNoDropout};
}

std::vector<std::string> attention_names() {
  std::vector<std::string> names;
  for (const auto& [name, e] : table()) names.push_back(name);
  return names;
}

std::string attention_help(const std::string& name) {
  const auto it = table().find(name);
  return it == table().end() ? "" : it->second.help;
}

std::shared_ptr<Attention> make_attention(const std::string& text, const AttentionConfig& config,
                                          Generator& gen) {
  const VariantSpec spec = parse_variant(text);
  auto it = table().find(spec.name);
  check(it != table().end(), "attention: unknown variant '", spec.name, "'; known variants: ",
        known_list());
  const std::string& why = it->second.no_dropout;
  check(config.dropout == 0 || why.empty(), "attention ", spec.name, ": has no attention dropout (",
        why, "); --attn-dropout must be 0 for it, got ", config.dropout,
        " (left out, it follows --dropout and is 0 for this variant)");
  return it->second.factory(spec, config, gen);
}

std::string attention_dropout_unsupported(const std::string& spec) {
  auto it = table().find(parse_variant(spec).name);
  return it == table().end() ? "" : it->second.no_dropout;
}

int64_t option_int(const VariantSpec& spec, const std::string& key, int64_t fallback) {
  auto it = spec.options.find(key);
  if (it == spec.options.end()) return fallback;
  const std::string& v = it->second;
  const bool digits = !v.empty() && v.size() < 10 &&
                      std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  check(digits, "attention ", spec.name, ": option ", key, "=", v,
        " is not a non-negative integer");
  return std::stoll(v);
}

bool option_flag(const VariantSpec& spec, const std::string& key) {
  auto it = spec.options.find(key);
  if (it == spec.options.end()) return false;
  check(it->second == "true" || it->second == "false", "attention ", spec.name, ": option ", key,
        "=", it->second, " must be a bare flag (", key, ") or true/false");
  return it->second == "true";
}

float option_float(const VariantSpec& spec, const std::string& key, float fallback) {
  auto it = spec.options.find(key);
  if (it == spec.options.end()) return fallback;
  std::size_t used = 0;
  float v = 0;
  try {
    v = std::stof(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  check(used == it->second.size() && std::isfinite(v), "attention ", spec.name, ": option ", key,
        "=", it->second, " is not a number");
  return v;
}

void check_options(const VariantSpec& spec, const std::vector<std::string>& allowed) {
  for (const auto& [key, value] : spec.options) {
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail("attention ", spec.name, ": unknown option '", key, "'; ",
         allowed.empty() ? std::string("this variant takes no options") : "options: " + list);
  }
}

}  // namespace attn
