#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "attention/registry.h"
#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cuda_settings.h"
#endif
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/dataset.h"
#include "train/files.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/run_folder.h"
#include "train/sampling.h"
#include "train/stop_signals.h"
#include "train/tokenizer.h"

namespace attn {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// ---- small helpers of the loop ----

// The corpus as a run keeps it: its vocabulary and its ids. The text is
// freed as soon as it is encoded; it would cost one more byte per byte.
struct Corpus {
  CharTokenizer tok;
  TextDataset data;
};

// The vocabulary comes from the text, or from `stored_tokenizer` (JSON,
// when a run continues: ids must mean what they meant).
Corpus load_corpus(const TrainOptions& o, const std::string& stored_tokenizer) {
  const std::string text = read_corpus(o.data, o.max_corpus_bytes);
  CharTokenizer tok = stored_tokenizer.empty() ? CharTokenizer::from_text(text, o.data)
                                               : CharTokenizer::from_json(stored_tokenizer);
  TextDataset data(tok.encode_corpus(text));
  return {std::move(tok), std::move(data)};
}

// Mean loss over `batches` batches drawn with a fixed generator, so every
// evaluation (and every variant in a comparison) sees the same windows.
// With `abandonable`, a stop signal (stop_signals.h) ends it early with no
// result: the run saves and stops, and the resumed run evaluates again.
// Data parallel, each rank evaluates its rows of every batch.
std::optional<float> evaluate(GPT& model, const TextDataset& data, Split split, const TrainOptions& o,
                              const Device& device, bool abandonable, DataParallel& dp) {
  NoGradGuard no_grad;
  model.eval();
  Generator gen(o.seed + (split == Split::Val ? 2 : 1));
  double total = 0;
  bool abandoned = false;
  for (int64_t i = 0; i < o.eval_batches && !abandoned; ++i) {
    abandoned = abandonable && dp.agreed_stop_signal() != 0;
    if (abandoned) break;
    const Batch b = dp.local_batch(data, split, o.batch, o.model.block_size, gen, device);
    total += dp.mean(cross_entropy(model.forward(b.x), b.y).item());
  }
  model.train();
  if (abandoned || (abandonable && dp.agreed_stop_signal() != 0)) return std::nullopt;
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

// An attention dropout inherited from --dropout, for a variant that has
// none (attention_dropout_unsupported says why), becomes 0, said once
// (by the process that speaks: data parallel, rank 0).
void settle_inherited_attn_dropout(TrainOptions& o, bool say) {
  if (!o.attn_dropout_inherited || o.model.attn_dropout == 0) return;
  const std::string why = attention_dropout_unsupported(o.model.attention);
  if (why.empty()) return;
  if (say) std::fprintf(stderr, "train: attention '%s' has no attention dropout (%s): it trains without it; "
               "--dropout %g applies to the rest of the model\n", o.model.attention.c_str(),
               why.c_str(), static_cast<double>(o.model.dropout));
  o.model.attn_dropout = 0;
}


// A run that continues at an evaluation step (start) whose evaluation never
// got logged was stopped by a signal during that evaluation (or before it):
// it is done now, so the metrics read as those of an unbroken run. `end` is
// where this invocation stops (an evaluation point too).
bool evaluation_pending(const std::vector<json>& kept, const TrainOptions& o, int64_t start, int64_t end) {
  if (start == 0 || (start % o.eval_every != 0 && start != o.steps && start < end)) return false;
  return std::none_of(kept.begin(), kept.end(), [&](const json& r) {
    return r.value("step", int64_t{-1}) == start && r.value("split", "") == "val";
  });
}

TrainResult train_into(const TrainOptions& options_in, RunFolder* given_folder) {
  TrainOptions o = options_in;
  o.validate();
  CheckpointData resume;
  const bool resuming = !o.resume.empty();
  if (resuming) {
    resume = load_checkpoint(checkpoint_path(o.resume));
    // The stored run decides the model and data; the command line may only
    // extend the number of steps, move the output and set the invocation's limits.
    TrainOptions stored = TrainOptions::from_json(resume.train_options);
    o.check_agrees_with(stored, checkpoint_path(o.resume));
    stored.steps = std::max(o.steps, resume.step);
    stored.out = o.out;
    stored.resume = o.resume;
    stored.overwrite = o.overwrite;
    stored.max_corpus_bytes = o.max_corpus_bytes;
    stored.quiet = o.quiet;
    stored.device = o.device;
    stored.stop_at = o.stop_at;
    stored.max_seconds = o.max_seconds;
    o = stored;
  }
  const Device device = Device::parse(o.device);
  // One process, or one rank of a data-parallel job (data_parallel.h):
  // rank 0 alone owns the run folder and speaks. The ring variant splits
  // the sequences over the ranks rather than the batch.
  const VariantSpec variant = parse_variant(o.model.attention);
  const bool ring = variant.name == "ring";
  const RingSplit ring_split = ring && variant.options.count("split") && variant.options.at("split") == "contiguous"
                                   ? RingSplit::Contiguous
                                   : RingSplit::Zigzag;
  DataParallel dp(comm::world(), ring ? ParallelOver::Sequence : ParallelOver::Batch, ring_split);
  dp.check_split(o.batch, o.model.block_size);
  const bool writer = dp.writes_files();
  check(dp.ranks() == 1 || device.is_cpu(), "train: --data-parallel runs on the CPU (over MPI); --device ", o.device,
        " is not supported with it yet");

  // Data: the corpus, its vocabulary, the split.
  const Corpus corpus = load_corpus(o, resuming ? resume.tokenizer : "");
  const CharTokenizer& tok = corpus.tok;
  const TextDataset& data = corpus.data;
  o.model.vocab = tok.vocab_size();
  o.model.validate();
  settle_inherited_attn_dropout(o, writer);
  check(data.size(Split::Val) > o.model.block_size && data.size(Split::Train) > o.model.block_size,
        "train: --block ", o.model.block_size, " is larger than the corpus allows (train split ",
        data.size(Split::Train), " tokens, val split ", data.size(Split::Val),
        "); use a smaller --block or a larger corpus");

  // The folder is checked and locked only now, with every input known
  // good: a wrong input touches no folder.
  std::optional<RunFolder> own_folder;
  RunFolder* folder = nullptr;
  if (writer) {
    folder = given_folder ? given_folder
                          : &own_folder.emplace(RunFolder::Request{o.out, o.resume, o.overwrite, "train"});
    o.out = folder->folder().string();
    if (folder->numbered()) std::fprintf(stderr, "train: no --out given: this run's folder is %s\n", o.out.c_str());
  }

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

  std::vector<json> metrics;
  std::string metrics_path;
  std::ofstream metrics_file;
  if (writer) {
    write_text_atomically((folder->path() / "config.json").string(), o.to_json() + "\n");
    metrics = read_metrics(folder->path() / "metrics.jsonl", resuming ? start : -1);
    // Rewrite the kept rows atomically, then append to them.
    std::string kept;
    for (const json& r : metrics) kept += r.dump() + "\n";
    write_text_atomically((folder->path() / "metrics.jsonl").string(), kept);
    // Opened by name once; it stays the same file when --overwrite's swap
    // moves the folder it is in.
    metrics_path = (folder->folder() / "metrics.jsonl").string();
    metrics_file.open(folder->path() / "metrics.jsonl", std::ios::app);
    check(metrics_file.is_open(), "train: cannot append to '", metrics_path, "': ", std::strerror(errno));
  }

  int64_t saved_step = resuming ? start : -1;  // the run's last checkpoint
  auto save = [&](int64_t step) {
    dp.check_in_step(model.parameters(), step);
    saved_step = step;
    if (!writer) return;
    CheckpointData d;
    d.step = step;
    d.model_config = o.model.to_json();
    d.tokenizer = tok.to_json();
    d.train_options = o.to_json();
    d.model = model.state_dict();
    d.optimizer = opt->state();
    d.batch_rng = batch_gen.state();
    d.dropout_stream = {model.dropout_source().seed, model.dropout_source().offset};
    save_checkpoint((folder->path() / "checkpoint.safetensors").string(), d);
    folder->checkpoint_written();
  };
  // Training time of the whole run, steps alone, carried over from the
  // rows a resumed run keeps: what max_seconds limits (compare's time budget).
  // Rank 0's count decides (it alone reads the metrics).
  double train_s = metrics.empty() ? 0.0 : metrics.back().value("train_s", 0.0);
  auto log = [&](int64_t step, const char* split, float loss, float lr, double tps, double elapsed) {
    const json row = {{"step", step}, {"split", split},      {"loss", loss},        {"lr", lr},
                      {"tokens_per_s", tps}, {"elapsed_s", elapsed}, {"train_s", train_s}};
    metrics.push_back(row);
    if (!writer) return;
    metrics_file << row.dump() << "\n";
    metrics_file.flush();
    // A full disk must stop the run, not silently drop the metrics.
    check(metrics_file.good(), "train: cannot append to '", metrics_path, "': ", std::strerror(errno),
          " (the checkpoint keeps the last saved step)");
  };

  const bool talk = !o.quiet && writer;
  const bool tty = talk && isatty(STDERR_FILENO);
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
  // Evaluates after step `done` and logs it; false when a signal abandoned it.
  auto evaluate_after = [&](int64_t done, float lr, double tps, double secs) {
    const std::optional<float> train_loss = evaluate(model, data, Split::Train, o, device, true, dp);
    const std::optional<float> val_loss =
        train_loss ? evaluate(model, data, Split::Val, o, device, true, dp) : std::nullopt;
    if (!val_loss) return false;
    result.final_train_loss = *train_loss;
    result.final_val_loss = *val_loss;
    const bool first_eval = result.best_val_loss == 0;
    result.best_val_loss = first_eval ? *val_loss : std::min(result.best_val_loss, *val_loss);
    log(done, "train", *train_loss, lr, tps, secs);
    log(done, "val", *val_loss, lr, tps, secs);
    return true;
  };
  model.train();
  float train_loss = 0;
  int64_t end = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  auto out_of_time = [&] { return dp.rank0_decides(o.max_seconds > 0 && train_s >= o.max_seconds); };
  if (out_of_time()) end = std::min(end, start);  // resumed after the time was spent
  int64_t in_flight = start;  // the step being trained (or evaluated), for an out-of-memory message
  // The products' precision, for the steps and evaluations (trainer.h).
  const AutocastGuard autocast(o.precision == "bf16" ? DType::BFloat16 : DType::Float32);
#ifdef ATTNLAB_WITH_CUDA
  if (device.is_cuda()) set_cuda_tf32(o.precision == "tf32");
#endif
  try {
    // Ring attention over several ranks: each model sees its tokens only,
    // through the steps and evaluations (not the sample at the end).
    std::optional<SequenceSplit> sequence_split;
    if (ring && dp.ranks() > 1) sequence_split.emplace(comm::world(), ring_split);
    if (resuming && dp.rank0_decides(evaluation_pending(metrics, o, start, end)) &&
        !evaluate_after(start, lr_at(start - 1, o.lr, o.warmup, o.steps, o.min_lr), 0, elapsed())) {
      result.interrupted_by = dp.agreed_stop_signal();  // abandoned again: train no step, so it stays pending
      end = start;
    }
    for (int64_t step = start; step < end; ++step) {
      in_flight = step + 1;
      const auto step_start = std::chrono::steady_clock::now();
      const float lr = lr_at(step, o.lr, o.warmup, o.steps, o.min_lr);
      opt->set_lr(lr);
      const Batch b = dp.local_batch(data, Split::Train, o.batch, o.model.block_size, batch_gen, device);
      // The batch's samples are numbered in data order: dropout keys each
      // sample's mask by that number, not by its row here.
      model.dropout_source().first_sample = dp.first_sample(step, o.batch);
      const Tensor loss = cross_entropy(model.forward(b.x), b.y);
      opt->zero_grad();
      loss.backward();
      dp.average_gradients(model.parameters());
      if (o.grad_clip > 0) clip_grad_norm(model.parameters(), o.grad_clip);
      opt->step();
      train_loss = static_cast<float>(dp.mean(loss.item()));  // waits for the device: the step is done
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
      // A signal that came during the step skips the evaluation; one that
      // comes during it abandons it. Either way the step is saved.
      const bool evaluated = eval_now && dp.agreed_stop_signal() == 0 && evaluate_after(done, lr, tps, secs);
      const int stopping = dp.agreed_stop_signal();
      if (evaluated || stopping != 0 || (o.checkpoint_every > 0 && done % o.checkpoint_every == 0)) save(done);
      if (tty) {
        double eta = (o.steps - done) * secs / std::max<int64_t>(done - start, 1);
        if (o.max_seconds > 0) eta = std::min(eta, (o.max_seconds - train_s) * secs / std::max(result.train_seconds, 1e-9));
        std::fprintf(stderr, "\rstep %lld/%lld  loss %.4f  %.0f tok/s  ETA %s   ",
                     static_cast<long long>(done), static_cast<long long>(o.steps), train_loss, tps,
                     format_duration(eta).c_str());
        if (done == end || stopping != 0) std::fprintf(stderr, "\n");
      } else if (talk && (evaluated || done % o.log_every == 0)) {
        std::fprintf(stderr, "step %lld/%lld loss %.4f%s %.0f tok/s\n", static_cast<long long>(done),
                     static_cast<long long>(o.steps), train_loss,
                     evaluated ? str("  val ", result.final_val_loss).c_str() : "", tps);
      }
      if (stopping != 0) {
        result.interrupted_by = stopping;
        end = done;
      }
    }
  } catch (const OutOfMemory& e) {
    fail("train: out of memory at step ", in_flight, " of ", o.steps, " (", e.what(), "); lower --batch (now ",
         o.batch, ") or --block (now ", o.model.block_size, ")",
         saved_step >= 0 ? str("; the checkpoint of step ", saved_step, " is intact") : std::string("; no checkpoint was saved yet"));
  }
  result.steps = end;
  result.steps_run = std::max<int64_t>(end - start, 0);
  result.seconds = elapsed();
  result.tokens_per_second =
      static_cast<double>((end - start) * tokens_per_step) / std::max(result.seconds, 1e-9);
  result.peak_bytes = device_memory_stats(device).peak;
  result.out = o.out;
  result.planned_steps = o.steps;
  if (start >= end) save(start);  // nothing to do, but leave a complete run folder

  if (!writer) return result;
  plot_losses(folder->path() / "loss.png", metrics);
  if (o.sample_tokens > 0 && result.interrupted_by == 0) {
    Generator sample_gen(o.seed + 4);
    SampleOptions so;
    so.tokens = o.sample_tokens;
    so.temperature = 0.8f;
    so.top_k = 0;
    const std::vector<int64_t> prompt = tok.encode(o.sample_prompt);
    const std::string sample = o.sample_prompt + tok.decode(generate(model, prompt, so, sample_gen));
    write_text_atomically((folder->path() / "sample.txt").string(), sample + "\n");
  }
  return result;
}

}  // namespace

float validation_loss(GPT& model, const TrainOptions& o, const std::string& tokenizer_json) {
  const Corpus corpus = load_corpus(o, tokenizer_json);
  DataParallel dp;
  return *evaluate(model, corpus.data, Split::Val, o, model.parameters().front()->device(), false, dp);
}

TrainResult train(const TrainOptions& options) { return train_into(options, nullptr); }

TrainResult train(const TrainOptions& options, RunFolder& folder) { return train_into(options, &folder); }

}  // namespace attn
