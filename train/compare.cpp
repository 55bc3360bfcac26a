// `attnlab compare` (compare.h): plans and trains the runs (variant x
// seed), reusing finished ones and resuming interrupted ones, gathers what
// each run measured, and hands it to the report (compare_report.cpp).
#include "train/compare.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "attention/registry.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/compare_report.h"
#include "train/dataset.h"
#include "train/files.h"
#include "train/tokenizer.h"

namespace attn {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<std::string> split_variants(const std::string& list) {
  const std::vector<std::string> known = attention_names();
  const std::set<std::string> names(known.begin(), known.end());
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const std::size_t comma = std::min(list.find(',', pos), list.size());
    const std::string piece = list.substr(pos, comma - pos);
    // Checked here: an empty piece would otherwise be glued to the previous variant.
    check(!piece.empty(), "compare: empty variant at position ", pos, " of '", list,
          "'; expected a comma-separated list, e.g. mha,gqa:kv_heads=2,mqa");
    const std::string name = piece.substr(0, piece.find(':'));
    const bool is_option = piece.find('=') != std::string::npos && piece.find(':') == std::string::npos;
    if (!out.empty() && (is_option || (!names.count(name) && piece.find(':') == std::string::npos)))
      out.back() += "," + piece;  // an option of the previous variant
    else
      out.push_back(piece);
    pos = comma + 1;
  }
  return out;
}

std::string folder_name(const std::string& spec) {
  std::string s;
  for (char c : spec) s += c == ':' || c == ',' ? '_' : c == '=' ? '-' : c;
  return s;
}

void CompareOptions::validate() const {
  check(!variants.empty(), "compare: no variants given; e.g. --attention mha,gqa:kv_heads=2,mqa");
  std::set<std::string> seen;
  for (const std::string& spec : variants)
    check(seen.insert(spec).second, "compare: variant '", spec, "' is listed twice");
  check(seeds >= 1 && seeds <= 1000, "compare: --seeds must be in 1..1000, got ", seeds);
  check(budget == "tokens" || budget == "seconds", "compare: --budget must be tokens or seconds, got '",
        budget, "'");
  if (budget == "seconds")
    check(std::isfinite(seconds) && seconds > 0 && seconds <= 1e7,
          "compare: --seconds must be in (0, 10000000] with --budget seconds (training seconds per run), got ",
          seconds);
  else
    check(seconds == 0, "compare: --seconds ", seconds,
          " applies only with --budget seconds (the tokens budget trains --steps steps)");
  for (double f : extrapolate)
    check(std::isfinite(f) && f >= 1 && f <= 64,
          "compare: --extrapolate factors must be in [1, 64] (multiples of --block), got ", f);
  check(eval_windows >= 1, "compare: --eval-windows must be >= 1, got ", eval_windows);
  base.validate();
}

namespace {

// ---- one run's identity and state (<run>/compare.json) ----

// What makes two runs the same: every training option but the folder, and
// the budget. A finished run with the same identity is reused as it is.
json run_identity(const TrainOptions& t, const CompareOptions& o) {
  json options = json::parse(t.to_json());
  options.erase("out");
  return {{"options", options}, {"budget", o.budget}, {"seconds", o.budget == "seconds" ? o.seconds : 0.0}};
}

json read_state(const fs::path& run) {
  std::ifstream f(run / "compare.json");
  if (!f) return json();
  const json j = json::parse(f, nullptr, false);
  return j.is_object() ? j : json();
}

void write_state(const fs::path& run, const json& identity, bool finished, int64_t parameters,
                 std::size_t peak_bytes) {
  const json j = {{"identity", identity},
                  {"finished", finished},
                  {"parameters", parameters},
                  {"peak_bytes", peak_bytes}};
  write_text_atomically((run / "compare.json").string(), j.dump(2) + "\n");
}

// ---- what a run measured, from its metrics.jsonl ----

void read_metrics(const fs::path& run, SeedRun& r) {
  std::ifstream f(run / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step")) continue;
    r.steps = std::max(r.steps, j["step"].get<int64_t>());
    // Training seconds (evaluations excluded); runs logged before they
    // were measured have only the wall clock.
    const double secs = j.value("train_s", j.value("elapsed_s", 0.0));
    r.train_seconds = std::max(r.train_seconds, secs);
    const std::string split = j.value("split", "");
    if (split == "train") r.final_train = j["loss"].get<double>();
    if (split != "val") continue;
    r.eval_steps.push_back(j["step"].get<double>());
    r.eval_seconds.push_back(secs);
    r.eval_loss.push_back(j["loss"].get<double>());
  }
  if (!r.eval_loss.empty()) {
    r.final_val = r.eval_loss.back();
    r.best_val = *std::min_element(r.eval_loss.begin(), r.eval_loss.end());
  }
}

// ---- progress ----

std::string clock_time(double seconds) {
  const int64_t s = static_cast<int64_t>(std::max(seconds, 0.0));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

// The time left: the runs still to train at the mean time of the runs
// trained so far (or, before the first one, the time budget alone).
struct Progress {
  int total = 0, done = 0, trained = 0;
  double trained_seconds = 0;
  std::string eta(const CompareOptions& o) const {
    const int left = total - done;
    if (trained > 0) return clock_time(left * trained_seconds / trained);
    if (o.budget == "seconds") return ">" + clock_time(left * o.seconds);
    return "--:--:--";
  }
};

// ---- one run ----

struct RunPlan {
  TrainOptions t;
  json identity;
  std::string how;        // trained | resumed | reused
  bool replaced = false;  // the folder held a run with other settings
};

RunPlan plan_run(const CompareOptions& o, const std::string& spec, uint64_t seed, const fs::path& run) {
  RunPlan p;
  p.t = o.base;
  p.t.model.attention = spec;
  p.t.seed = seed;
  p.t.out = run.string();
  p.t.max_seconds = o.budget == "seconds" ? o.seconds : 0;
  p.identity = run_identity(p.t, o);
  const json state = read_state(run);
  const bool same = !state.is_null() && state.value("identity", json()) == p.identity;
  const bool saved = fs::exists(run / "checkpoint.safetensors");
  if (same && saved && state.value("finished", false)) p.how = "reused";
  else if (same && saved) p.how = "resumed", p.t.resume = run.string();
  else p.how = "trained";
  p.replaced = p.how == "trained" && !state.is_null();
  return p;
}

bool reached_budget(const SeedRun& r, const RunPlan& p, const CompareOptions& o) {
  return r.steps >= p.t.steps || (o.budget == "seconds" && r.train_seconds >= o.seconds);
}

SeedRun run_one(const CompareOptions& o, const std::string& spec, uint64_t seed, Progress& progress) {
  const fs::path out(o.base.out);
  SeedRun r;
  r.seed = seed;
  r.folder = (fs::path(folder_name(spec)) / ("seed-" + std::to_string(seed))).string();
  const fs::path run = out / r.folder;
  const RunPlan p = plan_run(o, spec, seed, run);
  r.how = p.how;
  if (!o.base.quiet)
    std::fprintf(stderr, "== [%d/%d] %s, seed %llu: %s   ETA %s\n", progress.done + 1, progress.total,
                 spec.c_str(), static_cast<unsigned long long>(seed),
                 p.how == "reused" ? "finished before, reused" : p.how == "resumed" ? "resuming" : "training",
                 progress.eta(o).c_str());
  if (p.replaced && !o.base.quiet)
    std::fprintf(stderr, "   %s held a run with other settings: it is trained anew\n", run.string().c_str());
  json state = read_state(run);
  if (p.how != "reused") {
    const auto t0 = std::chrono::steady_clock::now();
    make_output_folder(run.string(), "compare: --out");
    write_state(run, p.identity, false, 0, 0);  // a kill from here on resumes
    const TrainResult result = train(p.t);
    read_metrics(run, r);
    r.finished = reached_budget(r, p, o);
    write_state(run, p.identity, r.finished, result.parameters, result.peak_bytes);
    state = read_state(run);
    progress.trained += 1;
    progress.trained_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } else {
    read_metrics(run, r);
    r.finished = true;
  }
  r.parameters = state.value("parameters", int64_t{0});
  r.peak_bytes = state.value("peak_bytes", std::size_t{0});
  r.tokens = r.steps * o.base.batch * o.base.model.block_size;
  progress.done += 1;
  return r;
}

// ---- per variant: the KV cache and how positions are encoded ----

void probe_variant(const CompareOptions& o, VariantReport& v) {
  GPTConfig config = o.base.model;
  config.attention = v.spec;
  config.vocab = 1;         // only the attention's layout matters here
  // An attention dropout inherited from --dropout is dropped by train() for
  // variants without one; an explicit one must fail here, before any run.
  if (o.base.attn_dropout_inherited) config.attn_dropout = 0;
  GPT probe(config, 0);
  if (probe.blocks().front()->attention().cache_layout().heads > 0)
    v.kv_bytes_per_token = probe.make_cache(1).bytes_per_token();
  v.learned_positions = probe.has_learned_positions();
}

// ---- length generalisation of the trained runs ----

std::vector<int64_t> eval_lengths(const CompareOptions& o) {
  std::vector<int64_t> lengths{o.base.model.block_size};
  for (double f : o.extrapolate) {
    const int64_t l = std::llround(f * static_cast<double>(o.base.model.block_size));
    if (std::find(lengths.begin(), lengths.end(), l) == lengths.end()) lengths.push_back(l);
  }
  return lengths;
}

void evaluate_run_lengths(const CompareOptions& o, const fs::path& run, SeedRun& r,
                          std::map<std::string, std::vector<int64_t>>& val_by_tokenizer) {
  const CheckpointData d = load_checkpoint(checkpoint_path(run.string()));
  std::vector<int64_t>& val = val_by_tokenizer[d.tokenizer];
  if (val.empty())  // every run of one corpus shares its tokenizer: read the text once
    val = TextDataset(CharTokenizer::from_json(d.tokenizer).encode(read_corpus(o.base.data))).tokens(Split::Val);
  GPT model(GPTConfig::from_json(d.model_config), 0);
  model.to(Device::parse(o.base.device));
  load_model_weights(model, d, checkpoint_path(run.string()));
  r.lengths = evaluate_lengths(model, val, eval_lengths(o), o.eval_windows);
}

}  // namespace

CompareResult compare(const CompareOptions& o) {
  o.validate();
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out(o.base.out);
  make_output_folder(out.string(), "compare: --out");
  CompareResult result;
  Progress progress;
  progress.total = static_cast<int>(o.variants.size() * o.seeds);
  // Every variant is built once before any training, so a bad spec fails
  // at once, not after the runs before it.
  for (const std::string& spec : o.variants) {
    VariantReport v;
    v.spec = spec;
    v.folder = folder_name(spec);
    probe_variant(o, v);
    result.variants.push_back(std::move(v));
  }
  for (VariantReport& v : result.variants)
    for (int64_t i = 0; i < o.seeds; ++i) v.runs.push_back(run_one(o, v.spec, o.base.seed + i, progress));
  result.finished = true;
  for (const VariantReport& v : result.variants)
    for (const SeedRun& r : v.runs) result.finished = result.finished && r.finished;
  if (result.finished && !o.extrapolate.empty()) {
    if (!o.base.quiet) std::fprintf(stderr, "== length generalisation: evaluating every run\n");
    std::map<std::string, std::vector<int64_t>> val;
    for (VariantReport& v : result.variants)
      for (SeedRun& r : v.runs) evaluate_run_lengths(o, out / r.folder, r, val);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (result.finished) write_compare_report(o, result);
  return result;
}

}  // namespace attn
