// `attnlab compare` (compare.h): plans and trains the runs (variant x
// seed), reusing finished ones and resuming interrupted ones, gathers what
// each run measured, and hands it to the report (compare_report.cpp).
#include "train/compare.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>

#include "attention/registry.h"
#include "core/comm/communicator.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/cli_text.h"
#include "train/compare_report.h"
#include "train/dataset.h"
#include "train/files.h"
#include "train/folder_guard.h"
#include "train/run_folder.h"
#include "train/run_lock.h"
#include "train/stop_signals.h"
#include "train/tokenizer.h"
#include "train/warm_up.h"

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
  bool replaced = false;  // the folder held a run of a comparison with other settings
  std::string other;      // then: the first setting that differs, e.g. "lr 0.002 there, 0.001 now"
};

// A stored setting's value as the user would type it: options that are
// floats were widened to JSON doubles (0.0020000000949949026 for 0.002).
std::string shown(const json& v) {
  if (!v.is_number_float()) return v.dump();
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v.get<float>());
  return std::string(buf, r.ptr);
}

// The first setting in which two run identities differ, in words.
std::string first_difference(const json& there, const json& now) {
  json a = there.value("options", json::object()), b = now.value("options", json::object());
  for (const char* key : {"budget", "seconds"}) a[key] = there.value(key, json()), b[key] = now.value(key, json());
  for (json* j : {&a, &b})
    if (j->contains("model") && (*j)["model"].is_object()) {
      for (const auto& [key, v] : (*j)["model"].items()) (*j)[key] = v;
      j->erase("model");
    }
  for (const auto& [key, v] : b.items())
    if (!a.contains(key) || a[key] != v)
      return key + " " + (a.contains(key) ? shown(a[key]) : std::string("unset")) + " there, " + shown(v) + " now";
  return "its stored settings";
}

// Which runs a comparison may reuse, resume or (re)train: a plain `train`
// run in its place is never touched, with or without --overwrite.
RunPlan plan_run(const CompareOptions& o, const std::string& spec, uint64_t seed, const fs::path& run) {
  RunPlan p;
  p.t = o.base;
  p.t.model.attention = spec;
  p.t.seed = seed;
  p.t.out = run.string();
  p.t.max_seconds = o.budget == "seconds" ? o.seconds : 0;
  p.identity = run_identity(p.t, o);
  const json state = read_state(run);
  check(!state.is_null() || !holds_run(run), "compare: '", run.string(), "' holds a train run (", describe_run(run),
        ") that is not part of a comparison; move it away, or choose another --out");
  const bool same = !state.is_null() && state.value("identity", json()) == p.identity;
  const bool saved = fs::exists(run / "checkpoint.safetensors");
  if (same && saved && state.value("finished", false)) p.how = "reused";
  else if (same && saved) p.how = "resumed", p.t.resume = run.string();
  else p.how = "trained";
  p.replaced = !same && !state.is_null();
  if (p.replaced) p.other = first_difference(state.value("identity", json()), p.identity);
  return p;
}

bool reached_budget(const SeedRun& r, const RunPlan& p, const CompareOptions& o) {
  return r.steps >= p.t.steps || (o.budget == "seconds" && r.train_seconds >= o.seconds);
}

SeedRun run_one(const CompareOptions& o, const VariantReport& v, const RunPlan& p, uint64_t seed,
                Progress& progress) {
  const fs::path out(o.base.out);
  SeedRun r;
  r.seed = seed;
  r.folder = (fs::path(v.folder) / ("seed-" + std::to_string(seed))).string();
  const fs::path run = out / r.folder;
  r.how = p.how;
  if (!o.base.quiet && comm::world().rank() == 0)
    std::fprintf(stderr, "== [%d/%d] %s, seed %llu: %s   ETA %s\n", progress.done + 1, progress.total,
                 v.spec.c_str(), static_cast<unsigned long long>(seed),
                 p.how == "reused" ? "finished before, reused" : p.how == "resumed" ? "resuming" : "training",
                 progress.eta(o).c_str());
  if (p.replaced && !o.base.quiet && comm::world().rank() == 0)
    std::fprintf(stderr, "   %s held a run with other settings (%s): --overwrite trains it anew\n",
                 run.string().c_str(), p.other.c_str());
  if (comm::world().rank() != 0) {
    // Data parallel: the other ranks train beside rank 0, which keeps the
    // files and reports.
    if (p.how != "reused") r.interrupted_by = train(p.t).interrupted_by;
    progress.done += 1;
    return r;
  }
  json state = read_state(run);
  if (p.how != "reused") {
    const auto t0 = std::chrono::steady_clock::now();
    // The folder is the comparison's own: a stale run in it (other
    // settings, or killed before its first checkpoint) is replaced whole.
    RunFolder folder(RunFolder::Request{run.string(), p.t.resume, p.how == "trained", "compare"});
    write_state(folder.path(), p.identity, false, 0, 0);  // a kill from here on resumes
    const TrainResult result = train(p.t, folder);
    read_metrics(run, r);
    r.finished = reached_budget(r, p, o);
    r.interrupted_by = result.interrupted_by;
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
    val = TextDataset(CharTokenizer::from_json(d.tokenizer).encode_corpus(read_corpus(o.base.data, o.base.max_corpus_bytes)))
              .tokens(Split::Val);
  GPT model(GPTConfig::from_json(d.model_config), 0);
  model.to(Device::parse(o.base.device));
  load_model_weights(model, d, checkpoint_path(run.string()));
  r.lengths = evaluate_lengths(model, val, eval_lengths(o), o.eval_windows);
}

}  // namespace

CompareResult compare(const CompareOptions& options) {
  CompareOptions o = options;
  o.validate();
  const auto t0 = std::chrono::steady_clock::now();
  CompareResult result;
  // The comparison's folder: --out, or a new runs/<N> that the command it
  // reports (and the one that continues it) then names.
  if (o.base.out.empty()) {
    o.base.out = fresh_numbered_folder("runs", "compare").string();
    if (!o.command.empty()) o.command += " --out " + shell_quote(o.base.out);
    std::fprintf(stderr, "compare: no --out given: this comparison's folder is %s\n", o.base.out.c_str());
  }
  result.out = o.base.out;
  result.command = o.command;
  const fs::path out(o.base.out);
  // Data parallel (every rank runs this), rank 0 alone makes, locks and
  // writes the folder; the others read it, after rank 0 checked it (the
  // first barrier) and before rank 0 changes anything in it (the second).
  comm::Communicator& ranks = comm::world();
  std::optional<RunLock> lock;
  if (ranks.rank() == 0) {
    make_output_folder(out.string(), "compare: --out");
    lock.emplace(RunLock::take(out, "compare"));
    check(!holds_run(out), "compare: --out '", out.string(), "' holds a train run (", describe_run(out),
          "), not a comparison; choose another --out");
  }
  ranks.barrier();
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
  // Every run is planned before any trains: a folder that holds runs of
  // another comparison is refused before anything in it changes.
  std::vector<std::vector<RunPlan>> plans;
  for (const VariantReport& v : result.variants) {
    plans.emplace_back();
    for (int64_t i = 0; i < o.seeds; ++i) {
      const uint64_t seed = o.base.seed + i;
      const fs::path run = out / v.folder / ("seed-" + std::to_string(seed));
      plans.back().push_back(plan_run(o, v.spec, seed, run));
      const RunPlan& p = plans.back().back();
      check(!p.replaced || o.base.overwrite, "compare: --out '", out.string(),
            "' holds an earlier comparison with other settings ('", (fs::path(v.folder) / ("seed-" + std::to_string(seed))).string(),
            "' has ", p.other, "); run its command again to reuse its runs, choose another --out, or replace "
            "them with --overwrite");
    }
  }
  ranks.barrier();
  // Untimed steps first, so no run pays the process's first-use costs
  // (warm_up.h); not when every run is finished and only reused.
  bool to_train = false;
  for (const std::vector<RunPlan>& variant_plans : plans)
    for (const RunPlan& p : variant_plans) to_train = to_train || p.how != "reused";
  if (to_train) {
    if (!o.base.quiet && ranks.rank() == 0)
      std::fprintf(stderr, "== warming up: 2 untimed steps of each variant\n");
    warm_up(o.base, o.variants);
  }
  for (std::size_t vi = 0; vi < result.variants.size() && result.interrupted_by == 0; ++vi) {
    VariantReport& v = result.variants[vi];
    for (int64_t i = 0; i < o.seeds && result.interrupted_by == 0; ++i) {
      v.runs.push_back(run_one(o, v, plans[vi][i], o.base.seed + i, progress));
      result.interrupted_by = v.runs.back().interrupted_by;
    }
  }
  result.finished = result.interrupted_by == 0;
  for (const VariantReport& v : result.variants)
    for (const SeedRun& r : v.runs) result.finished = result.finished && r.finished;
  if (ranks.rank() != 0) return result;  // the report is rank 0's
  if (result.finished && !o.extrapolate.empty()) {
    if (!o.base.quiet) std::fprintf(stderr, "== length generalisation: evaluating every run\n");
    std::map<std::string, std::vector<int64_t>> val;
    for (VariantReport& v : result.variants)
      for (SeedRun& r : v.runs) {
        // Nothing of this is saved: a signal here stops at once, and the
        // same command later reuses every run and evaluates again.
        if ((result.interrupted_by = stop_signal()) != 0) break;
        evaluate_run_lengths(o, out / r.folder, r, val);
      }
    result.finished = result.interrupted_by == 0;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (result.finished) write_compare_report(o, result);
  return result;
}

}  // namespace attn
