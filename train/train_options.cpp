// TrainOptions (trainer.h): the checks of each option, the JSON a run
// stores them as, and how --resume holds the command line to the stored run.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/error.h"
#include "train/trainer.h"

namespace attn {

namespace fs = std::filesystem;
using json = nlohmann::json;

void TrainOptions::validate() const {
  check(steps >= 1 && steps <= 100000000, "train: --steps must be in 1..100000000, got ", steps);
  check(batch >= 1 && batch <= 65536, "train: --batch must be in 1..65536, got ", batch);
  check(std::isfinite(lr) && lr > 0 && lr < 10, "train: --lr must be in (0, 10), got ", lr);
  check(min_lr >= 0 && min_lr <= lr, "train: --min-lr must be in [0, lr], got ", min_lr);
  check(warmup >= 0, "train: --warmup must be >= 0, got ", warmup);
  check(weight_decay >= 0, "train: --weight-decay must be >= 0, got ", weight_decay);
  // beta = 1 never forgets the first gradient, and AdamW's bias correction
  // 1 - beta^t divides by zero; a negative beta makes no average.
  check(beta1 >= 0 && beta1 < 1, "train: --beta1 must be in [0, 1), got ", beta1);
  check(beta2 >= 0 && beta2 < 1, "train: --beta2 must be in [0, 1), got ", beta2);
  check(grad_clip >= 0, "train: --grad-clip must be >= 0 (0 = off), got ", grad_clip);
  check(eval_every >= 1, "train: --eval-every must be >= 1, got ", eval_every);
  check(eval_batches >= 1, "train: --eval-batches must be >= 1, got ", eval_batches);
  check(log_every >= 1, "train: --log-every must be >= 1, got ", log_every);
  check(stop_at >= 0, "train: --stop-at must be >= 0, got ", stop_at);
  check(std::isfinite(max_seconds) && max_seconds >= 0, "train: max_seconds must be >= 0 (0 = off), got ",
        max_seconds);
  check(checkpoint_every >= 0, "train: --checkpoint-every must be >= 0, got ", checkpoint_every);
  check(sample_tokens >= 0, "train: --sample-tokens must be >= 0 (0 = no sample), got ", sample_tokens);
  check(max_corpus_bytes >= 1, "train: --max-corpus-bytes must be >= 1, got ", max_corpus_bytes);
  check(optimizer == "adamw" || optimizer == "sgd", "train: --optimizer must be adamw or sgd, got '",
        optimizer, "'");
  check(precision == "fp32" || precision == "tf32" || precision == "bf16",
        "train: --precision must be fp32, tf32 or bf16, got '", precision, "'");
  const Device where = Device::parse(device);
  check(precision != "tf32" || where.is_cuda(), "train: --precision tf32 is the GPU's tensor-core ",
        "mode for float32 products (--device cuda); on the CPU use fp32 or bf16");
}

std::string TrainOptions::to_json() const {
  json j = {{"data", data},
            {"out", out},
            {"device", device},
            {"optimizer", optimizer},
            {"precision", precision},
            {"steps", steps},
            {"seed", seed},
            {"batch", batch},
            {"lr", lr},
            {"min_lr", min_lr},
            {"warmup", warmup},
            {"weight_decay", weight_decay},
            {"beta1", beta1},
            {"beta2", beta2},
            {"grad_clip", grad_clip},
            {"eval_every", eval_every},
            {"eval_batches", eval_batches},
            {"log_every", log_every},
            {"checkpoint_every", checkpoint_every},
            {"sample_tokens", sample_tokens},
            {"sample_prompt", sample_prompt},
            {"model", json::parse(model.to_json())}};
  return j.dump(2);
}

TrainOptions TrainOptions::from_json(const std::string& text) {
  TrainOptions o;
  try {
    const json j = json::parse(text);
    // Counts must be JSON integers: converting a float such as 1e300 to an
    // integer is undefined behaviour (found by fuzz/checkpoint.cpp).
    auto integer = [&](const char* key) -> const json& {
      const json& v = j.at(key);
      check(v.is_number_integer(), "train: stored options are not valid: ", key, " is ", v.dump(),
            ", expected an integer");
      return v;
    };
    o.data = j.at("data");
    o.out = j.at("out");
    o.device = j.at("device");
    o.optimizer = j.at("optimizer");
    o.precision = j.value("precision", "fp32");  // runs stored before it existed trained in fp32
    o.steps = integer("steps");
    o.seed = integer("seed");
    o.batch = integer("batch");
    o.lr = j.at("lr");
    o.min_lr = j.at("min_lr");
    o.warmup = integer("warmup");
    o.weight_decay = j.at("weight_decay");
    // Absent from runs stored before --beta1/--beta2 existed: those trained
    // with the then fixed 0.9 and 0.95, so that is what they resume with
    // (spelled out, not TrainOptions' defaults, which may change one day).
    auto beta = [&](const char* key, float before_it_was_stored) {
      if (!j.contains(key)) return before_it_was_stored;
      const json& v = j.at(key);
      check(v.is_number(), "train: stored options are not valid: ", key, " is ", v.dump(),
            ", expected a number");
      return v.get<float>();
    };
    o.beta1 = beta("beta1", 0.9f);
    o.beta2 = beta("beta2", 0.95f);
    o.grad_clip = j.at("grad_clip");
    o.eval_every = integer("eval_every");
    o.eval_batches = integer("eval_batches");
    o.log_every = integer("log_every");
    o.checkpoint_every = integer("checkpoint_every");
    o.sample_tokens = integer("sample_tokens");
    o.sample_prompt = j.at("sample_prompt");
    o.model = GPTConfig::from_json(j.at("model").dump());
  } catch (const json::exception& e) {
    fail("train: stored options are not valid: ", e.what());
  }
  return o;
}

namespace {

// A stored option's value as the user would type it. The float options
// (--lr, --beta2, ...) are floats widened to JSON doubles, which dump as
// 0.9900000095367432; the float's own shortest form is 0.99.
std::string shown(const json& v) {
  if (!v.is_number_float()) return v.dump();
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v.get<float>());
  return std::string(buf, r.ptr);
}

}  // namespace

// --resume continues the stored run as it was: an option the user named
// that disagrees with it is an error, not silently ignored (--layers 4 on a
// 2-layer run cannot mean anything).
void TrainOptions::check_agrees_with(const TrainOptions& stored, const std::string& path) const {
  const json a = json::parse(to_json()), b = json::parse(stored.to_json());
  for (const std::string& option : given) {
    if (option == "--steps" || option == "--stop-at" || option == "--out" || option == "--device" ||
        option == "--quiet" || option == "--resume" || option == "--threads" || option == "--overwrite" ||
        option == "--max-corpus-bytes")
      continue;
    std::string key = option.substr(option.find_first_not_of('-'));
    std::replace(key.begin(), key.end(), '-', '_');
    if (key == "block") key = "block_size";
    const json* x = nullptr;
    const json* y = nullptr;
    if (a.contains(key)) x = &a[key], y = &b[key];
    else if (a["model"].contains(key)) x = &a["model"][key], y = &b["model"][key];
    if (x == nullptr || *x == *y) continue;
    if (key == "data") {  // the same file by another name is fine
      std::error_code ec;
      if (fs::equivalent(x->get<std::string>(), y->get<std::string>(), ec)) continue;
    }
    fail("train: ", option, " ", shown(*x), " differs from the run being resumed ('", path,
         "' has ", shown(*y), "); --resume keeps the stored run's settings and may only change "
         "--steps, --stop-at, --out, --device, --threads, --quiet, --overwrite and --max-corpus-bytes (drop ", option,
         ", or start a new run without --resume)");
  }
}

}  // namespace attn
