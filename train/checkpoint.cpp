#include "train/checkpoint.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "train/safetensors.h"

namespace attn {

namespace {

constexpr const char* kFormat = "attnlab-checkpoint-1";

// A generator's 64-bit words, bit for bit, as an int64 tensor.
template <size_t N>
Tensor rng_tensor(const std::array<uint64_t, N>& s) {
  std::vector<int64_t> v(N);
  std::memcpy(v.data(), s.data(), sizeof(uint64_t) * N);
  return from_ints(v, {static_cast<int64_t>(N)});
}

template <size_t N>
std::array<uint64_t, N> rng_state(const std::string& path, const std::map<std::string, Tensor>& t,
                                   const std::string& name) {
  auto it = t.find(name);
  check(it != t.end() && it->second.dtype() == DType::Int64 && it->second.numel() == static_cast<int64_t>(N),
        "checkpoint '", path, "': tensor '", name, "' is missing or is not int64 [", N, "]");
  const std::vector<int64_t> v = it->second.to_int_vector();
  std::array<uint64_t, N> s{};
  std::memcpy(s.data(), v.data(), sizeof(uint64_t) * N);
  return s;
}

const std::string& meta(const std::string& path, const std::map<std::string, std::string>& m,
                        const std::string& key) {
  auto it = m.find(key);
  check(it != m.end(), "checkpoint '", path, "': metadata field '", key, "' is missing");
  return it->second;
}

}  // namespace

std::string checkpoint_path(const std::string& p) {
  return std::filesystem::is_directory(p) ? (std::filesystem::path(p) / "checkpoint.safetensors").string()
                                          : p;
}

void save_checkpoint(const std::string& path, const CheckpointData& d) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : d.model) tensors.emplace_back("model." + name, t);
  for (const auto& [name, t] : d.optimizer) tensors.emplace_back("optim." + name, t);
  tensors.emplace_back("rng.batches", rng_tensor(d.batch_rng));
  if (d.dropout_stream) tensors.emplace_back("rng.dropout_stream", rng_tensor(*d.dropout_stream));
  const std::map<std::string, std::string> metadata = {
      {"format", kFormat},
      {"step", std::to_string(d.step)},
      {"model_config", d.model_config},
      {"tokenizer", d.tokenizer},
      {"train_options", d.train_options}};
  safetensors::save(path, tensors, metadata);
}

CheckpointData load_checkpoint(const std::string& path) {
  // A run folder without a checkpoint (a run that never reached its first
  // save, or the wrong folder) says so rather than "no such file".
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.filename() == "checkpoint.safetensors" && !std::filesystem::exists(p, ec) &&
      std::filesystem::is_directory(p.parent_path(), ec)) {
    fail("checkpoint: run folder '", p.parent_path().string(),
         "' has no checkpoint.safetensors; expected a folder written by attnlab train "
         "(train into it first) or a checkpoint file");
  }
  const safetensors::Checkpoint file = safetensors::load(path);
  const std::string format = meta(path, file.metadata, "format");
  check(format == kFormat, "checkpoint '", path, "': format is '", format, "', expected '", kFormat,
        "' (not an attnlab checkpoint, or from another version)");
  CheckpointData d;
  const std::string step = meta(path, file.metadata, "step");
  try {
    d.step = std::stoll(step);
  } catch (const std::exception&) {
    fail("checkpoint '", path, "': step '", step, "' is not a number");
  }
  check(d.step >= 0, "checkpoint '", path, "': step ", d.step, " is negative");
  d.model_config = meta(path, file.metadata, "model_config");
  d.tokenizer = meta(path, file.metadata, "tokenizer");
  d.train_options = meta(path, file.metadata, "train_options");
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind("model.", 0) == 0) d.model.emplace(name.substr(6), t);
    else if (name.rfind("optim.", 0) == 0) d.optimizer.emplace_back(name.substr(6), t);
  }
  d.batch_rng = rng_state<4>(path, file.tensors, "rng.batches");
  if (file.tensors.count("rng.dropout_stream"))
    d.dropout_stream = rng_state<2>(path, file.tensors, "rng.dropout_stream");
  return d;
}

void load_model_weights(Module& model, const CheckpointData& data, const std::string& path) {
  try {
    model.load_state_dict(data.model);
  } catch (const Error& e) {
    fail("checkpoint '", path, "': its tensors do not fit the model its metadata describes (",
         e.what(), "); the file was changed or is from another version");
  }
}

}  // namespace attn
