// `attnlab compare`: the same model trained once per attention variant
// (same seed, data, steps, everything but the attention), and a report.
//
//   <out>/<variant>/            each variant's full run folder
//   <out>/report.md             the table below and the pictures
//   <out>/loss.png              val loss against step, one line per variant
//   <out>/attention_<variant>.png   layer-0 attention weights on a fixed prompt
#pragma once
#include <string>
#include <vector>

#include "train/trainer.h"

namespace attn {

struct CompareOptions {
  TrainOptions base;                  // model.attention is ignored
  std::vector<std::string> variants;  // registry specs
  std::string prompt = "Call me Ishmael.";
};

struct VariantReport {
  std::string spec, folder;
  TrainResult result;
  std::size_t kv_bytes_per_token = 0;  // 0 when the variant has no cache
};

// "mha,gqa:kv_heads=2,rope,mqa" -> {"mha", "gqa:kv_heads=2,rope", "mqa"}: a
// piece that is not a variant name continues the options of the one before.
std::vector<std::string> split_variants(const std::string& list);

std::vector<VariantReport> compare(const CompareOptions& options);

// A folder name for a spec: "gqa:kv_heads=2" -> "gqa_kv_heads-2".
std::string folder_name(const std::string& spec);

}  // namespace attn
