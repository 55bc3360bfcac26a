// Chapter 19 glue: given code, compiled both with your ring_attention.cpp
// and with the reference solution, so it is written once. It supplies
// Shard's methods and pairs_per_rank, and registers "student:ring".
// You do not need to change this file.
#include <algorithm>
#include <memory>

#include "attention/kernel.h"
#include "attention/multi_head.h"
#include "attention/registry.h"
#include "core/error.h"
#include "ring_attention.h"

namespace lesson19 {

int64_t Shard::length() const {
  int64_t n = 0;
  for (const Chunk& c : chunks) n += c.length();
  return n;
}

std::vector<int64_t> Shard::positions() const {
  std::vector<int64_t> p;
  for (const Chunk& c : chunks)
    for (int64_t t = c.begin; t < c.end; ++t) p.push_back(t);
  return p;
}

std::vector<int64_t> pairs_per_rank(const std::vector<Fold>& log, int ranks) {
  std::vector<int64_t> pairs(static_cast<std::size_t>(std::max(ranks, 0)), 0);
  for (const Fold& f : log) {
    attn::check(f.rank >= 0 && f.rank < ranks, "pairs_per_rank: the log names rank ", f.rank,
                ", expected 0 <= rank < ", ranks);
    ++pairs[static_cast<std::size_t>(f.rank)];
  }
  return pairs;
}

}  // namespace lesson19

// ---- glue: your simulated ring as a variant -------------------------------
// "student:ring[:ranks=N,split=zigzag|contiguous]" (defaults: 4 ranks,
// zigzag): the library's multi-head module runs YOUR ring_attention_simulated,
// causal, on its heads, all ranks in this one process. The advanced suite
// trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:ring",
      "chapter 19: multi-head attention through your simulated ring; options ranks=N (default 4), "
      "split=zigzag|contiguous (default zigzag)",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"ranks", "split"});
        const int64_t ranks = attn::option_int(spec, "ranks", 4);
        attn::check(ranks >= 1 && ranks <= 64, "attention student:ring: ranks=", ranks,
                    ": expected a number of simulated ranks from 1 to 64");
        const std::string split_name = spec.options.count("split") ? spec.options.at("split") : "zigzag";
        attn::check(split_name == "zigzag" || split_name == "contiguous", "attention student:ring: split=",
                    split_name, " is not a split; expected zigzag or contiguous");
        const lesson19::Split split =
            split_name == "zigzag" ? lesson19::Split::Zigzag : lesson19::Split::Contiguous;
        auto kernel = [ranks, split](const attn::AttentionCall& call) {
          const int64_t T = call.q.size(2);
          // Generating with a KV cache attends a few new queries to every
          // cached key: not a ring's job (a ring splits one long sequence),
          // so those calls take the dense reference.
          if (call.offset != 0 || call.k.size(2) != T) return attn::dense_causal_attention(call);
          // A sequence shorter than the split needs (one token per piece,
          // two pieces per rank for zigzag) runs on fewer ranks; a single
          // token on one rank, in one piece.
          const int64_t per_rank = split == lesson19::Split::Zigzag ? 2 : 1;
          const int64_t used = std::min(ranks, T / per_rank);
          if (used == 0) return lesson19::ring_attention_simulated(call.q, call.k, call.v, 1,
                                                                   lesson19::Split::Contiguous, true);
          return lesson19::ring_attention_simulated(call.q, call.k, call.v, static_cast<int>(used), split, true);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
