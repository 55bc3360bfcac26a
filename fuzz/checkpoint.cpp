// Fuzz target: a checkpoint file from a stranger.
//
// Each input is the bytes of a would-be checkpoint.safetensors. It goes
//  1. through safetensors::parse, the in-memory reader, and, when that
//     accepts it,
//  2. down the path `attnlab sample --ckpt` takes: the bytes are written to a
//     file that load_checkpoint reads back; the model config, tokenizer and
//     train options stored in its metadata are parsed; a GPT of that config
//     takes the weights (load_state_dict) and samples a few tokens.
// Rejecting an input with attn::Error (a one-line message) is the expected
// outcome. Anything else is a bug libFuzzer reports: a sanitizer error, a
// crash, a hang, or another exception escaping (std::bad_alloc, JSON errors).
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz/scratch.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "train/sampling.h"
#include "train/tokenizer.h"
#include "train/trainer.h"

namespace {

const attn_fuzz::Scratch scratch("checkpoint.safetensors");

// Building the model costs memory in proportion to its config; a fuzzer
// that writes "embd": 16384 would only measure the allocator. Small models
// exercise every check just as well.
bool small(const attn::GPTConfig& c) {
  return c.vocab <= 256 && c.embd <= 64 && c.layers <= 2 && c.block_size <= 64 && c.heads <= 16;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    attn::safetensors::parse(bytes, "fuzz");
  } catch (const attn::Error&) {
    return 0;  // rejected cleanly
  }
  try {
    const attn::CheckpointData d = attn::load_checkpoint(scratch.write(bytes));
    attn::TrainOptions::from_json(d.train_options).validate();
    const attn::GPTConfig config = attn::GPTConfig::from_json(d.model_config);
    const attn::CharTokenizer tok = attn::CharTokenizer::from_json(d.tokenizer);
    if (!small(config)) return 0;
    attn::GPT model(config, 0);
    model.load_state_dict(d.model);
    attn::Generator gen(1);
    attn::SampleOptions so;
    so.tokens = 3;
    (void)tok.decode(attn::generate(model, {0}, so, gen));
  } catch (const attn::Error&) {
  }
  return 0;
}
