// `compare` and `convert` end to end on a tiny corpus: seeds and the
// significance test, length generalisation, time budgets, resuming.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/allocator.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "testcases/error_of.h"
#include "train/checkpoint.h"
#include "train/compare.h"
#include "train/compare_report.h"
#include "train/convert.h"
#include "train/stats.h"
#include "train/warm_up.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("attnlab_compare_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TrainOptions tiny(const fs::path& dir) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "a stitch in time saves nine; look before you leap.\n";
  std::ofstream(dir / "corpus.txt") << text;
  TrainOptions o;
  o.data = (dir / "corpus.txt").string();
  o.out = (dir / "cmp").string();
  o.steps = 10;
  o.batch = 4;
  o.eval_every = 5;
  o.eval_batches = 2;
  o.sample_tokens = 0;
  o.quiet = true;
  o.model.block_size = 16;
  o.model.layers = 1;
  o.model.heads = 4;
  o.model.embd = 16;
  return o;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<double> final_losses(const VariantReport& v) {
  std::vector<double> out;
  for (const SeedRun& r : v.runs) out.push_back(r.final_val);
  return out;
}
}  // namespace

TEST(Compare, SplitsVariantListsWithOptions) {
  EXPECT_EQ(split_variants("mha,gqa:kv_heads=2,rope,mqa"),
            (std::vector<std::string>{"mha", "gqa:kv_heads=2,rope", "mqa"}));
  EXPECT_EQ(split_variants("flash:kv_heads=2,window=8,mla:latent=4"),
            (std::vector<std::string>{"flash:kv_heads=2,window=8", "mla:latent=4"}));
  EXPECT_EQ(split_variants("mha"), (std::vector<std::string>{"mha"}));
  EXPECT_EQ(folder_name("gqa:kv_heads=2,rope"), "gqa_kv_heads-2_rope");
}

TEST(Compare, TrainsEachVariantAndWritesTheReport) {
  const fs::path dir = temp_dir("report");
  CompareOptions c;
  c.base = tiny(dir);
  c.variants = {"mha", "mqa"};
  c.prompt = "a stitch, Ishmael";  // 'I' is not in the corpus: left out of the heatmap, not an error
  const CompareResult r = compare(c);
  ASSERT_TRUE(r.finished);
  ASSERT_EQ(r.variants.size(), 2u);
  // 4 heads share one K/V head in MQA: a 4x smaller cache.
  EXPECT_EQ(r.variants[0].kv_bytes_per_token, 4 * r.variants[1].kv_bytes_per_token);
  EXPECT_LT(r.variants[1].runs[0].parameters, r.variants[0].runs[0].parameters);
  EXPECT_EQ(r.variants[0].runs[0].steps, 10);
  EXPECT_EQ(r.variants[0].runs[0].tokens, 10 * 4 * 16);
  const std::string md = read_text(dir / "cmp" / "report.md");
  EXPECT_NE(md.find("| `mha` |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `mqa` |"), std::string::npos);
  EXPECT_NE(md.find("no significance test is possible"), std::string::npos) << md;  // one seed
  EXPECT_NE(md.find("## Machine"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "cmp" / "mha" / "seed-1337" / "checkpoint.safetensors"));
  CompareOptions twice = c;
  twice.variants = std::vector<std::string>{"mha", "mha"};
  EXPECT_NE(error_of([&] { compare(twice); }).find("variant 'mha' is listed twice"), std::string::npos);
  fs::remove_all(dir);
}

// The two claims a comparison must get right: the same model twice (mha,
// and flash, which computes the same attention in tiles) is within noise;
// a crippled variant (a window of 1: every token sees only itself, a
// bigram model) is significantly worse, on text where context decides.
TEST(Compare, SignificanceSeparatesNoiseFromRealDifferences) {
  const fs::path dir = temp_dir("significance");
  CompareOptions c;
  c.base = tiny(dir);
  c.base.steps = 150;
  c.base.batch = 8;
  c.base.lr = 1e-2f;
  c.base.eval_every = 50;
  c.base.eval_batches = 4;
  c.seeds = 3;
  c.variants = {"mha", "flash", "window:size=1"};
  const CompareResult r = compare(c);
  ASSERT_EQ(r.variants[0].runs.size(), 3u);
  EXPECT_EQ(r.variants[0].runs[1].seed, c.base.seed + 1);
  const auto base = final_losses(r.variants[0]);
  EXPECT_GT(stats::summarize(base).std, 0) << "seeds must differ";
  const stats::WelchResult same = stats::welch_t_test(base, final_losses(r.variants[1]));
  const stats::WelchResult crippled = stats::welch_t_test(base, final_losses(r.variants[2]));
  EXPECT_GT(same.p, 0.05);
  EXPECT_LT(crippled.p, 0.05);
  EXPECT_GT(crippled.diff, 0);  // worse: a higher loss
  const std::string md = read_text(dir / "cmp" / "report.md");
  EXPECT_NE(md.find("`flash` is within noise of `mha`"), std::string::npos) << md;
  EXPECT_NE(md.find("nats/char worse than `mha` (t = "), std::string::npos) << md;
  // The paired test over the same seeds, with Holm's adjustment for the two comparisons.
  const stats::TTestResult paired = stats::paired_t_test(base, final_losses(r.variants[2]));
  EXPECT_LT(paired.p, 0.05);
  EXPECT_NE(md.find("| Welch test | paired test |"), std::string::npos) << md;
  EXPECT_NE(md.find("Paired by seed."), std::string::npos) << md;
  EXPECT_NE(md.find("for the 2 comparisons made at once"), std::string::npos) << md;
  const std::string crippled_paired = significance_sentence("window:size=1", "mha", paired, paired.diff);
  EXPECT_NE(md.find("- " + crippled_paired + " 95 % interval of the difference: ["), std::string::npos) << md;
  // A real difference: the interval lies wholly on the worse side of zero.
  EXPECT_GT(paired.diff - stats::student_t_quantile(0.975, paired.df) * paired.se, 0);
  EXPECT_NE(md.find("] nats/char. Holm-adjusted p"), std::string::npos) << md;
  for (const char* png : {"loss_steps.png", "loss_time.png"}) EXPECT_TRUE(fs::exists(dir / "cmp" / png)) << png;
  fs::remove_all(dir);
}

// Learned positions cannot read past the block (n/a, never a crash);
// RoPE, RoPE with NTK scaling, ALiBi and a RoPE window can.
TEST(Compare, ExtrapolatesWherePositionsAllowIt) {
  const fs::path dir = temp_dir("extrapolate");
  CompareOptions c;
  c.base = tiny(dir);
  c.base.steps = 20;
  c.base.eval_every = 20;
  c.extrapolate = {2, 4};
  c.variants = {"mha", "window:size=8", "mha:rope", "mha:rope,ntk=4", "mha:alibi", "window:size=8,rope"};
  const CompareResult r = compare(c);
  for (const VariantReport& v : r.variants) {
    const std::vector<LengthLoss>& ls = v.runs[0].lengths;
    ASSERT_EQ(ls.size(), 3u) << v.spec;
    EXPECT_EQ(ls[1].length, 32);
    EXPECT_EQ(ls[2].length, 64);
    EXPECT_TRUE(ls[0].unavailable.empty() && std::isfinite(ls[0].loss)) << v.spec;  // 1x: always
    for (std::size_t i = 1; i < 3; ++i) {
      if (v.learned_positions) {
        EXPECT_EQ(ls[i].unavailable, "learned positions") << v.spec;
      } else {
        EXPECT_TRUE(ls[i].unavailable.empty()) << v.spec << ": " << ls[i].unavailable;
        EXPECT_TRUE(std::isfinite(ls[i].loss) && ls[i].loss > 0) << v.spec;
        EXPECT_EQ(ls[i].per_position.size(), static_cast<std::size_t>(ls[i].length));
      }
    }
  }
  EXPECT_TRUE(r.variants[0].learned_positions && r.variants[1].learned_positions);
  EXPECT_FALSE(r.variants[2].learned_positions);
  const std::string md = read_text(dir / "cmp" / "report.md");
  EXPECT_NE(md.find("| `mha` | learned | "), std::string::npos) << md;
  EXPECT_NE(md.find("n/a (learned positions)"), std::string::npos);
  EXPECT_NE(md.find("| `mha:alibi` | ALiBi | "), std::string::npos);

  // The same through `attnlab eval`'s library call, on one run.
  EvalOptions e;
  e.ckpt = (dir / "cmp" / "mha_rope" / "seed-1337").string();
  e.lengths = {8, 48};
  const std::vector<LengthLoss> rope = eval_checkpoint(e);
  EXPECT_TRUE(rope[1].unavailable.empty() && std::isfinite(rope[1].loss));
  e.ckpt = (dir / "cmp" / "mha" / "seed-1337").string();
  const std::vector<LengthLoss> learned = eval_checkpoint(e);
  EXPECT_TRUE(learned[0].unavailable.empty());
  EXPECT_EQ(loss_cell(learned[1]), "n/a (learned positions)");
  fs::remove_all(dir);
}

TEST(Compare, SecondsBudgetTrainsEachRunForTheTime) {
  const fs::path dir = temp_dir("seconds");
  CompareOptions c;
  c.base = tiny(dir);
  c.base.steps = 1000000;  // an upper bound the time ends first
  c.base.eval_every = 1000;
  c.budget = "seconds";
  c.seconds = 0.25;
  c.variants = {"mha", "mqa"};
  const CompareResult r = compare(c);
  for (const VariantReport& v : r.variants) {
    const SeedRun& run = v.runs[0];
    EXPECT_GE(run.train_seconds, 0.25) << v.spec;
    EXPECT_LT(run.train_seconds, 2.0) << v.spec;  // a step takes milliseconds
    EXPECT_GT(run.steps, 1);
    EXPECT_LT(run.steps, c.base.steps);
    EXPECT_EQ(run.tokens, run.steps * 4 * 16);
    EXPECT_EQ(run.eval_steps.back(), run.steps);  // evaluated where it stopped
  }
  const std::string md = read_text(dir / "cmp" / "report.md");
  EXPECT_NE(md.find("of training time per run"), std::string::npos) << md;
  fs::remove_all(dir);
}

// Killed midway (here: paused with stop_at), the same comparison again
// resumes the runs from their checkpoints and ends exactly where an
// uninterrupted one does; once more, it trains nothing.
TEST(Compare, ResumesInterruptedRunsAndReusesFinishedOnes) {
  const fs::path dir = temp_dir("resume");
  CompareOptions c;
  c.base = tiny(dir);
  c.base.steps = 12;
  c.base.eval_every = 4;
  c.seeds = 2;
  c.variants = {"mha", "mqa"};
  CompareOptions whole = c;
  whole.base.out = (dir / "whole").string();
  const CompareResult reference = compare(whole);

  CompareOptions paused = c;
  paused.base.stop_at = 8;
  const CompareResult first = compare(paused);
  EXPECT_FALSE(first.finished);
  EXPECT_FALSE(fs::exists(dir / "cmp" / "report.md"));
  EXPECT_EQ(first.variants[1].runs[1].steps, 8);

  const CompareResult second = compare(c);
  ASSERT_TRUE(second.finished);
  for (std::size_t v = 0; v < 2; ++v)
    for (std::size_t s = 0; s < 2; ++s) {
      const SeedRun& run = second.variants[v].runs[s];
      EXPECT_EQ(run.how, "resumed");
      EXPECT_EQ(run.steps, 12);
      EXPECT_EQ(run.final_val, reference.variants[v].runs[s].final_val) << v << "," << s;
    }

  const fs::path metrics = dir / "cmp" / "mqa" / "seed-1338" / "metrics.jsonl";
  const auto stamp = fs::last_write_time(metrics);
  const CompareResult third = compare(c);
  for (const VariantReport& v : third.variants)
    for (const SeedRun& run : v.runs) EXPECT_EQ(run.how, "reused");
  EXPECT_EQ(fs::last_write_time(metrics), stamp);
  EXPECT_EQ(third.variants[1].runs[1].final_val, second.variants[1].runs[1].final_val);

  // Other settings in the same folder: refused, nothing changed; with
  // --overwrite, trained anew (never mixed up with the old runs).
  CompareOptions other = c;
  other.base.lr = 2e-3f;
  other.variants = {"mha"};
  other.seeds = 1;
  EXPECT_EQ(error_of([&] { compare(other); }),
            "compare: --out '" + c.base.out + "' holds an earlier comparison with other settings ('mha/seed-1337' has "
            "lr 0.001 there, 0.002 now); run its command again to reuse its runs, choose another --out, or replace "
            "them with --overwrite");
  EXPECT_EQ(fs::last_write_time(metrics), stamp);
  other.base.overwrite = true;
  EXPECT_EQ(compare(other).variants[0].runs[0].how, "trained");
  fs::remove_all(dir);
}

TEST(CompareOptions, BadValuesAreOneLineErrors) {
  const fs::path dir = temp_dir("bad");
  CompareOptions c;
  c.base = tiny(dir);
  c.variants = {"mha"};
  auto error = [&](auto change) {
    CompareOptions bad = c;
    change(bad);
    return error_of([&] { compare(bad); });
  };
  EXPECT_EQ(error([](CompareOptions& o) { o.seeds = 0; }), "compare: --seeds must be in 1..1000, got 0");
  EXPECT_EQ(error([](CompareOptions& o) { o.extrapolate = {2, 0.5}; }),
            "compare: --extrapolate factors must be in [1, 64] (multiples of --block), got 0.5");
  EXPECT_EQ(error([](CompareOptions& o) { o.budget = "weekly"; }),
            "compare: --budget must be tokens or seconds, got 'weekly'");
  EXPECT_EQ(error([](CompareOptions& o) { o.budget = "seconds"; }),
            "compare: --seconds must be in (0, 10000000] with --budget seconds (training seconds per run), got 0");
  EXPECT_FALSE(fs::exists(dir / "cmp"));  // checked before anything is written
  fs::remove_all(dir);
}

// The warm-up's steps are thrown away and draw on no generator of a run's:
// a run trained after it is bitwise the run trained without it.
TEST(WarmUp, LeavesTheRunsThatFollowUnchanged) {
  const fs::path dir = temp_dir("warm_up");
  TrainOptions o = tiny(dir);
  o.model.dropout = 0.1f;
  o.model.attn_dropout = 0.1f;
  o.out = (dir / "before").string();
  const TrainResult before = train(o);
  reset_device_peak(Device::cpu());
  warm_up(o, {"mha", "gqa:kv_heads=2", "window:size=4"});
  // It did train: its steps held about what the run's did at their peak.
  EXPECT_GT(device_memory_stats(Device::cpu()).peak, before.peak_bytes / 2);
  o.out = (dir / "after").string();
  const TrainResult after = train(o);
  EXPECT_EQ(before.final_val_loss, after.final_val_loss);
  EXPECT_EQ(before.final_train_loss, after.final_train_loss);
  // Every weight and optimizer moment bitwise (the files differ in the --out they record).
  const CheckpointData a = load_checkpoint((dir / "before" / "checkpoint.safetensors").string());
  const CheckpointData b = load_checkpoint((dir / "after" / "checkpoint.safetensors").string());
  ASSERT_EQ(a.model.size(), b.model.size());
  for (const auto& [name, t] : a.model) EXPECT_EQ(t.to_vector(), b.model.at(name).to_vector()) << name;
  ASSERT_EQ(a.optimizer.size(), b.optimizer.size());
  for (std::size_t i = 0; i < a.optimizer.size(); ++i)
    EXPECT_EQ(a.optimizer[i].second.to_vector(), b.optimizer[i].second.to_vector()) << a.optimizer[i].first;
  EXPECT_EQ(a.batch_rng, b.batch_rng);
  EXPECT_EQ(a.dropout_stream, b.dropout_stream);
  // A variant that does not exist fails naming it, as a run would.
  EXPECT_NE(error_of([&] { warm_up(o, {"nosuch"}); }).find("nosuch"), std::string::npos);
  // Running out of memory ends the warm-up quietly: the first run then meets
  // the limit and reports it as runs do (step, checkpoint, what to lower).
  TrainOptions big = o;
  big.batch = 64;  // a step needs about 2 MB
  cpu_allocator().set_limit(400000);
  const std::string oom = error_of([&] { warm_up(big, {"mha"}); });
  cpu_allocator().set_limit(0);
  EXPECT_EQ(oom, "(no error)");
  fs::remove_all(dir);
}

TEST(CompareReport, SentencesSayWhatTheTestSays) {
  stats::WelchResult w;
  EXPECT_NE(significance_sentence("mqa", "mha", w, 0.012).find("no test is possible"), std::string::npos);
  w.valid = true;
  w.diff = 0.04, w.se = 0.01, w.t = 4, w.df = 3.9, w.p = 0.003;
  EXPECT_EQ(significance_sentence("mqa", "mha", w, 0.04),
            "`mqa` is 0.040 ± 0.010 nats/char worse than `mha` (t = 4.00, df = 3.9, p = 0.003).");
  w.diff = -0.004, w.se = 0.006, w.t = -0.67, w.df = 3.5, w.p = 0.41;
  EXPECT_EQ(significance_sentence("gqa", "mha", w, -0.004),
            "`gqa` is within noise of `mha` (0.0040 ± 0.0060 nats/char better, t = -0.67, df = 3.5, p = 0.41).");
  EXPECT_EQ(format_p(0.0004), "p < 0.001");
  EXPECT_FALSE(cpu_model().empty());
}

TEST(Convert, PoolsHeadsAndFineTunes) {
  const fs::path dir = temp_dir("convert");
  TrainOptions o = tiny(dir);
  o.out = (dir / "mha").string();
  o.steps = 30;
  o.eval_every = 30;
  train(o);
  ConvertOptions co;
  co.ckpt = o.out;
  co.to = "gqa:kv_heads=2";
  co.out = (dir / "gqa").string();
  co.finetune_steps = 10;
  co.quiet = true;
  const ConvertResult r = convert(co);
  EXPECT_LT(r.params_after, r.params_before);
  EXPECT_GT(r.before, 0);
  EXPECT_TRUE(std::isfinite(r.after_conversion));
  EXPECT_TRUE(fs::exists(dir / "gqa" / "convert.md"));
  EXPECT_TRUE(fs::exists(dir / "gqa" / "checkpoint.safetensors"));
  co.to = "mqa";
  co.ckpt = (dir / "gqa").string();
  EXPECT_THROW(convert(co), Error);  // the source is no longer plain MHA
  fs::remove_all(dir);
}
