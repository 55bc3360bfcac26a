// Writes the seed inputs of the fuzz targets, all made by attnlab itself:
//
//   <out>/checkpoint/  a real checkpoint (a tiny GPT trained for 2 steps by
//                      train()), one with a GQA + RoPE model, and
//                      safetensors files of every dtype, empty and
//                      metadata-only, written by safetensors::save
//   <out>/text/        a tokenizer as checkpoints store it (JSON), a tiny text
//   <out>/variant/     every registered variant name
//
// The committed seeds in fuzz/corpus/<target>/ (Moby Dick's opening, UTF-8
// edge cases, option syntax) are used beside these.
//
// Usage: fuzz_seeds <out>. Deterministic: the same build writes the same files.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "train/safetensors.h"
#include "train/tokenizer.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace attn;

namespace {

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A checkpoint of a tiny model trained on `corpus` with `attention`.
void write_checkpoint(const fs::path& dest, const fs::path& work, const std::string& corpus,
                      const std::string& attention) {
  fs::create_directories(work);
  write(work / "corpus.txt", corpus);
  TrainOptions o;
  o.data = (work / "corpus.txt").string();
  o.out = (work / "run").string();
  o.steps = 2;
  o.batch = 2;
  o.eval_every = 2;
  o.eval_batches = 1;
  o.sample_tokens = 4;
  o.quiet = true;
  o.model.layers = 1;
  o.model.heads = 2;
  o.model.embd = 4;
  o.model.block_size = 8;
  o.model.attention = attention;
  o.overwrite = true;  // a run left by an earlier fuzz_seeds that was stopped
  train(o);
  fs::copy_file(work / "run" / "checkpoint.safetensors", dest, fs::copy_options::overwrite_existing);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds <out folder>\n";
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* d : {"checkpoint", "text", "variant"}) fs::create_directories(out / d);
  const fs::path work = out / "work";

  // ---- text: beyond the committed seeds in fuzz/corpus/text/ ----
  const std::string english = read(fs::path(ATTNLAB_SOURCE_DIR) / "fuzz" / "corpus" / "text" /
                                   "moby_dick_opening.txt");
  write(out / "text" / "short.txt", "ab");
  write(out / "text" / "tokenizer.json", CharTokenizer::from_text(english, "seed").to_json());

  // ---- checkpoint: what train() writes, and plain safetensors files ----
  write_checkpoint(out / "checkpoint" / "tiny_mha.safetensors", work / "mha",
                   english.substr(0, 300) + "\n", "mha");
  write_checkpoint(out / "checkpoint" / "tiny_gqa_rope.safetensors", work / "gqa",
                   "abcabcabd abba cab\n" + english.substr(0, 120) + "\n", "gqa:kv_heads=1,rope");
  safetensors::save((out / "checkpoint" / "dtypes.safetensors").string(),
                    {{"f", from_vector({1.5f, -2, 0, 3}, {2, 2})},
                     {"i", from_ints({7, -1}, {2})},
                     {"b", ones({3}, DType::Bool)},
                     {"scalar", full({}, 4.0)},
                     {"empty", zeros({0, 3})}},
                    {{"format", "attnlab-checkpoint-1"}, {"step", "3"}});
  safetensors::save((out / "checkpoint" / "metadata_only.safetensors").string(), {},
                    {{"note", "no tensors"}});
  safetensors::save((out / "checkpoint" / "nothing.safetensors").string(), {});
  fs::remove_all(work);

  // ---- variant: every registered name (options: fuzz/corpus/variant/) ----
  for (const std::string& name : attention_names()) write(out / "variant" / name, name);
  std::cout << "fuzz_seeds: wrote seeds to " << out.string() << "\n";
  return 0;
}
