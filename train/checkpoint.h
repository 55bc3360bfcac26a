// Checkpoints: everything a run needs to continue exactly where it stopped,
// in one safetensors file (train/safetensors.h):
//   tensors   model.<param name>, optim.<state name>, rng.batches,
//             rng.dropout_stream (the dropout Philox stream: seed, offset)
//   metadata  format, step, model_config (JSON), tokenizer (JSON), train_options (JSON)
#pragma once
#include <array>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "nn/module.h"

namespace attn {

struct CheckpointData {
  int64_t step = 0;
  std::string model_config, tokenizer, train_options;  // JSON texts
  std::map<std::string, Tensor> model;                 // parameter name -> values
  std::vector<std::pair<std::string, Tensor>> optimizer;
  std::array<uint64_t, 4> batch_rng{};
  // Absent in checkpoints written before dropout used Philox (they held a
  // generator state, "rng.dropout", that no longer means anything).
  std::optional<std::array<uint64_t, 2>> dropout_stream;
};

// `path` is a file; written to a temporary name and renamed.
void save_checkpoint(const std::string& path, const CheckpointData& data);
// Checks the file (format tag, every field present) and names what is wrong.
CheckpointData load_checkpoint(const std::string& path);

// "DIR" -> "DIR/checkpoint.safetensors"; a file path is returned as is.
std::string checkpoint_path(const std::string& dir_or_file);

// model.load_state_dict(data.model); a mismatch (a tampered file, or one
// whose tensors belong to another model shape) names the checkpoint `path`.
void load_model_weights(Module& model, const CheckpointData& data, const std::string& path);

}  // namespace attn
