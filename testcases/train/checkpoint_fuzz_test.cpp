// Regression tests for what fuzzing the checkpoint path found
// (fuzz/checkpoint.cpp): a checkpoint whose metadata stores a float where an
// integer belongs. nlohmann's get<int64_t>() casts the double, and casting
// 1e300 (or -1.5 to unsigned) is undefined behaviour that UBSan reports as
// "1e+300 is outside the range of representable values of type 'long'".
// Now each such field is refused with a message naming it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

// The model config of the fuzzer's seed checkpoint, with one field replaced.
std::string model_config(const std::string& field, const std::string& value) {
  std::string text = R"({"attention":"mha","bias":true,"block_size":8,"dropout":0.0,"embd":4,)"
                     R"("heads":2,"layers":1,"mlp":"gelu","norm":"layernorm","norm_position":"pre",)"
                     R"("tie_weights":true,"vocab":29})";
  const std::string key = "\"" + field + "\":";
  const std::size_t at = text.find(key) + key.size();
  return text.replace(at, text.find_first_of(",}", at) - at, value);
}

}  // namespace

TEST(CheckpointFuzz, ModelConfigSizesMustBeIntegers) {
  for (const char* field : {"vocab", "block_size", "layers", "heads", "embd"}) {
    for (const char* value : {"1e300", "-1e300", "2.5"}) {
      const std::string msg = error_of([&] { GPTConfig::from_json(model_config(field, value)); });
      EXPECT_NE(msg.find(std::string("model: config is not valid: ") + field + " is "), std::string::npos)
          << field << "=" << value << ": " << msg;
      EXPECT_NE(msg.find("expected an integer"), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(GPTConfig::from_json(model_config("vocab", "29")).vocab, 29);
}

TEST(CheckpointFuzz, StoredTrainOptionsCountsMustBeIntegers) {
  TrainOptions o;
  o.model.vocab = 29;
  const std::string good = o.to_json();
  EXPECT_EQ(TrainOptions::from_json(good).steps, o.steps);
  for (const auto& [field, value] : std::vector<std::pair<std::string, std::string>>{
           {"steps", "1e300"}, {"seed", "-1.5"}, {"batch", "1e30"}, {"sample_tokens", "-1e300"}}) {
    std::string text = good;
    const std::string key = "\"" + field + "\": ";
    const std::size_t at = text.find(key) + key.size();
    text.replace(at, text.find_first_of(",\n}", at) - at, value);
    const std::string msg = error_of([&] { TrainOptions::from_json(text); });
    EXPECT_NE(msg.find("train: stored options are not valid: " + field + " is "), std::string::npos)
        << field << "=" << value << ": " << msg;
  }
}

// The whole path, as `attnlab sample` takes it: the bad value sits in a
// checkpoint file, which loads; building the model from it is refused.
TEST(CheckpointFuzz, TamperedCheckpointIsRefusedWithAMessage) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("attn_checkpoint_fuzz_" + std::to_string(::getpid()) + ".safetensors");
  CheckpointData d;
  d.step = 2;
  d.model_config = model_config("vocab", "1e300");
  d.tokenizer = R"({"type":"char","chars":[97,98]})";
  d.train_options = "{}";
  save_checkpoint(path.string(), d);
  const CheckpointData back = load_checkpoint(path.string());
  std::filesystem::remove(path);
  const std::string msg = error_of([&] { GPTConfig::from_json(back.model_config); });
  EXPECT_NE(msg.find("vocab is 1e+300, expected an integer"), std::string::npos) << msg;
}
