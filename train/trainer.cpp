#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/files.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/sampling.h"
#include "train/tokenizer.h"

namespace attn {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- options ----

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
  check(optimizer == "adamw" || optimizer == "sgd", "train: --optimizer must be adamw or sgd, got '",
        optimizer, "'");
  Device::parse(device);
}

std::string TrainOptions::to_json() const {
  json j = {{"data", data},
            {"out", out},
            {"device", device},
            {"optimizer", optimizer},
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

// ---- small helpers of the loop ----

// Mean loss over `batches` batches drawn with a fixed generator, so every
// evaluation (and every variant in a comparison) sees the same windows.
float evaluate(GPT& model, const TextDataset& data, Split split, const TrainOptions& o,
               const Device& device) {
  NoGradGuard no_grad;
  model.eval();
  Generator gen(o.seed + (split == Split::Val ? 2 : 1));
  double total = 0;
  for (int64_t i = 0; i < o.eval_batches; ++i) {
    const Batch b = data.get_batch(split, o.batch, o.model.block_size, gen, device);
    total += cross_entropy(model.forward(b.x), b.y).item();
  }
  model.train();
  return static_cast<float>(total / o.eval_batches);
}

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

// Keeps the metrics of steps up to `step` (a resumed run rewrites what a
// crashed run logged after its last checkpoint).
std::vector<json> read_metrics(const fs::path& path, int64_t up_to_step) {
  std::vector<json> rows;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      if (j.value("step", int64_t{-1}) <= up_to_step) rows.push_back(j);
    } catch (const json::exception&) {
      // A line cut off by a crash: drop it.
    }
  }
  return rows;
}

void plot_losses(const fs::path& path, const std::vector<json>& rows) {
  if (!plot::available()) return;
  // The per-step batch loss (noisy, frequent) and the evaluated val loss.
  plot::Series train{"train (batch)", {}, {}}, val{"val", {}, {}};
  for (const json& r : rows) {
    const std::string split = r.value("split", "");
    if (split != "train_step" && split != "val") continue;
    plot::Series& s = split == "val" ? val : train;
    s.x.push_back(r.at("step").get<double>());
    s.y.push_back(r.at("loss").get<double>());
  }
  plot::LineChart chart;
  chart.title = "loss";
  chart.x_label = "step";
  chart.y_label = "cross-entropy (nats/char)";
  if (!train.x.empty()) chart.series.push_back(train);
  if (!val.x.empty()) chart.series.push_back(val);
  if (!chart.series.empty()) plot::write_line_chart(path.string(), chart);
}

// A stored option's value as the user would type it. The float options
// (--lr, --beta2, ...) are floats widened to JSON doubles, which dump as
// 0.9900000095367432; the float's own shortest form is 0.99.
std::string shown(const json& v) {
  if (!v.is_number_float()) return v.dump();
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v.get<float>());
  return std::string(buf, r.ptr);
}

// An attention dropout inherited from --dropout, for a variant that has
// none (attention_dropout_unsupported says why), becomes 0, said once.
void settle_inherited_attn_dropout(TrainOptions& o) {
  if (!o.attn_dropout_inherited || o.model.attn_dropout == 0) return;
  const std::string why = attention_dropout_unsupported(o.model.attention);
  if (why.empty()) return;
  std::fprintf(stderr, "train: attention '%s' has no attention dropout (%s): it trains without it; "
               "--dropout %g applies to the rest of the model\n", o.model.attention.c_str(),
               why.c_str(), static_cast<double>(o.model.dropout));
  o.model.attn_dropout = 0;
}

// --resume continues the stored run as it was: an option the user named
// that disagrees with it is an error, not silently ignored (--layers 4 on a
// 2-layer run cannot mean anything).
void check_resume_options(const TrainOptions& cli, const TrainOptions& stored,
                          const std::string& path) {
  const json a = json::parse(cli.to_json()), b = json::parse(stored.to_json());
  for (const std::string& option : cli.given) {
    if (option == "--steps" || option == "--stop-at" || option == "--out" || option == "--device" ||
        option == "--quiet" || option == "--resume" || option == "--threads")
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
         "--steps, --stop-at, --out, --device, --threads and --quiet (drop ", option,
         ", or start a new run without --resume)");
  }
}

}  // namespace

float validation_loss(GPT& model, const TrainOptions& o, const std::string& tokenizer_json) {
  const CharTokenizer tok = CharTokenizer::from_json(tokenizer_json);
  const TextDataset data(tok.encode(read_corpus(o.data)));
  return evaluate(model, data, Split::Val, o, model.parameters().front()->device());
}

TrainResult train(const TrainOptions& options_in) {
  TrainOptions o = options_in;
  o.validate();
  CheckpointData resume;
  const bool resuming = !o.resume.empty();
  if (resuming) {
    resume = load_checkpoint(checkpoint_path(o.resume));
    // The stored run decides the model and data; the command line may only
    // extend the number of steps and move the output.
    TrainOptions stored = TrainOptions::from_json(resume.train_options);
    check_resume_options(o, stored, checkpoint_path(o.resume));
    stored.steps = std::max(o.steps, resume.step);
    stored.out = o.out;
    stored.resume = o.resume;
    stored.quiet = o.quiet;
    stored.device = o.device;
    stored.stop_at = o.stop_at;
    stored.max_seconds = o.max_seconds;
    o = stored;
  }
  const Device device = Device::parse(o.device);

  // Data: the corpus, its vocabulary, the split.
  const std::string text = read_corpus(o.data);
  const CharTokenizer tok = resuming ? CharTokenizer::from_json(resume.tokenizer)
                                     : CharTokenizer::from_text(text, o.data);
  o.model.vocab = tok.vocab_size();
  o.model.validate();
  settle_inherited_attn_dropout(o);
  const TextDataset data(tok.encode(text));
  check(data.size(Split::Val) > o.model.block_size && data.size(Split::Train) > o.model.block_size,
        "train: --block ", o.model.block_size, " is larger than the corpus allows (train split ",
        data.size(Split::Train), " tokens, val split ", data.size(Split::Val),
        "); use a smaller --block or a larger corpus");

  GPT model(o.model, o.seed);
  model.to(device);
  std::unique_ptr<Optimizer> opt;
  if (o.optimizer == "sgd") opt = std::make_unique<SGD>(model.named_parameters(), o.lr);
  else opt = std::make_unique<AdamW>(model.named_parameters(), o.lr, o.beta1, o.beta2, 1e-8f, o.weight_decay);
  Generator batch_gen(o.seed + 3);
  int64_t start = 0;
  if (resuming) {
    load_model_weights(model, resume, checkpoint_path(o.resume));
    opt->load_state(resume.optimizer);
    batch_gen.set_state(resume.batch_rng);
    if (resume.dropout_stream) {
      model.dropout_source().seed = (*resume.dropout_stream)[0];
      model.dropout_source().offset = (*resume.dropout_stream)[1];
    } else if (o.model.dropout > 0) {
      std::fprintf(stderr, "train: '%s' was saved before dropout used counter-based random "
               "numbers; its dropout masks are drawn anew from the run's seed\n", o.resume.c_str());
    }
    start = resume.step;
  }

  const fs::path out(o.out);
  make_output_folder(o.out, "train: --out");  // a file there is an error, not overwritten
  write_text_atomically((out / "config.json").string(), o.to_json() + "\n");
  std::vector<json> metrics = read_metrics(out / "metrics.jsonl", resuming ? start : -1);
  {
    // Rewrite the kept rows atomically, then append to them.
    std::string kept;
    for (const json& r : metrics) kept += r.dump() + "\n";
    write_text_atomically((out / "metrics.jsonl").string(), kept);
  }
  const std::string metrics_path = (out / "metrics.jsonl").string();
  std::ofstream metrics_file(metrics_path, std::ios::app);
  check(metrics_file.is_open(), "train: cannot append to '", metrics_path, "': ", std::strerror(errno));

  auto save = [&](int64_t step) {
    CheckpointData d;
    d.step = step;
    d.model_config = o.model.to_json();
    d.tokenizer = tok.to_json();
    d.train_options = o.to_json();
    d.model = model.state_dict();
    d.optimizer = opt->state();
    d.batch_rng = batch_gen.state();
    d.dropout_stream = {model.dropout_source().seed, model.dropout_source().offset};
    save_checkpoint((out / "checkpoint.safetensors").string(), d);
  };
  // Training time of the whole run, steps alone, carried over from the
  // rows a resumed run keeps: what max_seconds limits (compare's time budget).
  double train_s = metrics.empty() ? 0.0 : metrics.back().value("train_s", 0.0);
  auto log = [&](int64_t step, const char* split, float loss, float lr, double tps, double elapsed) {
    const json row = {{"step", step}, {"split", split},      {"loss", loss},        {"lr", lr},
                      {"tokens_per_s", tps}, {"elapsed_s", elapsed}, {"train_s", train_s}};
    metrics.push_back(row);
    metrics_file << row.dump() << "\n";
    metrics_file.flush();
    // A full disk must stop the run, not silently drop the metrics.
    check(metrics_file.good(), "train: cannot append to '", metrics_path, "': ", std::strerror(errno),
          " (the checkpoint keeps the last saved step)");
  };

  const bool tty = !o.quiet && isatty(STDERR_FILENO);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // Peak memory of the device the model trains on (the GPU's allocator on
  // cuda, not the host's, which only holds batches on their way there).
  reset_device_peak(device);
  const int64_t tokens_per_step = o.batch * o.model.block_size;
  TrainResult result;
  result.parameters = model.num_parameters();
  model.train();
  float train_loss = 0;
  int64_t end = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  auto out_of_time = [&] { return o.max_seconds > 0 && train_s >= o.max_seconds; };
  if (out_of_time()) end = std::min(end, start);  // resumed after the time was spent
  for (int64_t step = start; step < end; ++step) {
    const auto step_start = std::chrono::steady_clock::now();
    const float lr = lr_at(step, o.lr, o.warmup, o.steps, o.min_lr);
    opt->set_lr(lr);
    const Batch b = data.get_batch(Split::Train, o.batch, o.model.block_size, batch_gen, device);
    // The batch's samples are numbered in data order: dropout keys each
    // sample's mask by that number, not by its row here.
    model.dropout_source().first_sample = step * o.batch;
    const Tensor loss = cross_entropy(model.forward(b.x), b.y);
    opt->zero_grad();
    loss.backward();
    if (o.grad_clip > 0) clip_grad_norm(model.parameters(), o.grad_clip);
    opt->step();
    train_loss = loss.item();  // waits for the device: the step is done
    const double step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    result.train_seconds += step_seconds;
    train_s += step_seconds;
    check(std::isfinite(train_loss), "train: loss became ", train_loss, " at step ", step + 1,
          "; lower --lr or enable --grad-clip");

    const int64_t done = step + 1;
    if (out_of_time()) end = done;  // the last step: logged, evaluated and saved as such
    const double secs = elapsed();
    const double tps = static_cast<double>((done - start) * tokens_per_step) / std::max(secs, 1e-9);
    if (done % o.log_every == 0 || done == end) log(done, "train_step", train_loss, lr, tps, secs);
    const bool eval_now = done % o.eval_every == 0 || done == o.steps || done == end;
    if (eval_now) {
      result.final_train_loss = evaluate(model, data, Split::Train, o, device);
      result.final_val_loss = evaluate(model, data, Split::Val, o, device);
      const bool first_eval = result.best_val_loss == 0;
      result.best_val_loss = first_eval ? result.final_val_loss
                                        : std::min(result.best_val_loss, result.final_val_loss);
      log(done, "train", result.final_train_loss, lr, tps, secs);
      log(done, "val", result.final_val_loss, lr, tps, secs);
    }
    if (eval_now || (o.checkpoint_every > 0 && done % o.checkpoint_every == 0)) save(done);
    if (tty) {
      double eta = (o.steps - done) * secs / std::max<int64_t>(done - start, 1);
      if (o.max_seconds > 0) eta = std::min(eta, (o.max_seconds - train_s) * secs / std::max(result.train_seconds, 1e-9));
      std::fprintf(stderr, "\rstep %lld/%lld  loss %.4f  %.0f tok/s  ETA %s   ",
                   static_cast<long long>(done), static_cast<long long>(o.steps), train_loss, tps,
                   format_duration(eta).c_str());
      if (done == end) std::fprintf(stderr, "\n");
    } else if (!o.quiet && (eval_now || done % o.log_every == 0)) {
      std::fprintf(stderr, "step %lld/%lld loss %.4f%s %.0f tok/s\n", static_cast<long long>(done),
                   static_cast<long long>(o.steps), train_loss,
                   eval_now ? str("  val ", result.final_val_loss).c_str() : "", tps);
    }
  }
  result.steps = end;
  result.steps_run = std::max<int64_t>(end - start, 0);
  result.seconds = elapsed();
  result.tokens_per_second =
      static_cast<double>((end - start) * tokens_per_step) / std::max(result.seconds, 1e-9);
  result.peak_bytes = device_memory_stats(device).peak;
  if (start >= end) save(start);  // nothing to do, but leave a complete run folder

  plot_losses(out / "loss.png", metrics);
  if (o.sample_tokens > 0) {
    Generator sample_gen(o.seed + 4);
    SampleOptions so;
    so.tokens = o.sample_tokens;
    so.temperature = 0.8f;
    so.top_k = 0;
    const std::vector<int64_t> prompt = tok.encode(o.sample_prompt);
    const std::string sample = o.sample_prompt + tok.decode(generate(model, prompt, so, sample_gen));
    write_text_atomically((out / "sample.txt").string(), sample + "\n");
  }
  return result;
}

}  // namespace attn
