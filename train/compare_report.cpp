// report.md of `attnlab compare` (compare_report.h), section by section:
// setup, table, significance, length generalisation, plots (drawn in
// compare_plots.cpp), every run, how to reproduce it, and the machine.
#include "train/compare_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "attention/registry.h"
#include "core/threads.h"
#include "train/compare_plots.h"
#include "train/files.h"
#include "train/plot.h"

namespace attn {

namespace fs = std::filesystem;

// ---- words and numbers ----

std::string format_p(double p) {
  char buf[32];
  if (p < 0.001) return "p < 0.001";
  std::snprintf(buf, sizeof buf, p < 0.01 ? "p = %.3f" : "p = %.2f", p);
  return buf;
}

namespace {

const double kLn2 = std::log(2.0);

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Decimals that show `spread` with two significant digits, at least 3:
// 0.040 ± 0.010, but 0.00012 ± 0.00034 for two runs of the same model.
int decimals_for(double spread) {
  if (!(spread > 0) || !std::isfinite(spread)) return 3;
  return std::clamp(static_cast<int>(std::ceil(-std::log10(spread) - 1e-9)) + 1, 3, 8);
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::vector<double> values(const VariantReport& v, double SeedRun::*field) {
  std::vector<double> out;
  for (const SeedRun& r : v.runs) out.push_back(r.*field);
  return out;
}

// The final val losses of the seeds both variants ran, in the baseline's
// order: the pairs of the paired t-test.
std::pair<std::vector<double>, std::vector<double>> seed_pairs(const VariantReport& base, const VariantReport& v) {
  std::pair<std::vector<double>, std::vector<double>> pairs;
  for (const SeedRun& b : base.runs)
    for (const SeedRun& r : v.runs)
      if (r.seed == b.seed) {
        pairs.first.push_back(b.final_val);
        pairs.second.push_back(r.final_val);
      }
  return pairs;
}

stats::TTestResult paired_test(const VariantReport& base, const VariantReport& v) {
  const auto [a, b] = seed_pairs(base, v);
  return stats::paired_t_test(a, b);
}

std::string test_cell(const stats::TTestResult& t, const char* df_format) {
  if (!t.valid) return "n/a (1 seed)";
  return format_p(t.p) + fmt(" (t = %.2f", t.t) + fmt(df_format, t.df);
}

// "2.1234 ± 0.0056" (mean ± sample std over seeds), "2.1234" for one seed.
std::string mean_std(const std::vector<double>& xs, int decimals = 4) {
  const stats::Summary s = stats::summarize(xs);
  return s.n < 2 ? fixed(s.mean, decimals) : fixed(s.mean, decimals) + " ± " + fixed(s.std, decimals);
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt("%.2fG", n / 1e9);
  if (n >= 1e6) return fmt("%.2fM", n / 1e6);
  if (n >= 1e3) return fmt("%.1fk", n / 1e3);
  return fmt("%.0f", n);
}

std::string human_bytes(std::size_t b) {
  if (b >= (1u << 20)) return fmt("%.1f MiB", b / 1048576.0);
  if (b >= 1024) return fmt("%.1f KiB", b / 1024.0);
  return fmt("%.0f B", static_cast<double>(b));
}

std::string human_seconds(double s) {
  if (s < 90) return fmt("%.1f s", s);
  return fmt("%.0f min ", std::floor(s / 60)) + fmt("%.0f s", std::fmod(s, 60.0));
}

}  // namespace

std::string significance_sentence(const std::string& variant, const std::string& baseline,
                                  const stats::WelchResult& w, double mean_diff) {
  const std::string v = "`" + variant + "`", b = "`" + baseline + "`";
  if (!w.valid)
    return v + " differs from " + b + " by " + fmt("%+.4f", mean_diff) +
           " nats/char; with one seed per variant no test is possible.";
  const int d = decimals_for(w.se);
  const std::string size = w.diff == 0 ? "the same mean loss, ± " + fixed(w.se, d) + " nats/char"
                           : fixed(std::fabs(w.diff), d) + " ± " + fixed(w.se, d) + " nats/char " +
                                 (w.diff > 0 ? "worse" : "better");
  const std::string test = "t = " + fmt("%.2f", w.t) + ", df = " + fmt("%.1f", w.df) + ", " + format_p(w.p);
  if (w.p < 0.05) return v + " is " + size + " than " + b + " (" + test + ").";
  return v + " is within noise of " + b + " (" + size + ", " + test + ").";
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      std::string name = line.substr(line.find(':') + 1);
      name.erase(0, name.find_first_not_of(' '));
      return name.empty() ? "unknown CPU" : name;
    }
  return "unknown CPU";
}

namespace {

// ---- setup and table ----

std::string budget_words(const CompareOptions& o) {
  const int64_t tokens_per_step = o.base.batch * o.base.model.block_size;
  if (o.budget == "seconds")
    return human_seconds(o.seconds) + " of training time per run (forward, backward and update; " +
           "evaluations not counted), at most " + std::to_string(o.base.steps) +
           " steps, over which the LR schedule is laid out";
  return std::to_string(o.base.steps) + " steps per run (" + human_count(double(o.base.steps) * tokens_per_step) +
         " tokens)";
}

std::string setup_paragraph(const CompareOptions& o) {
  const TrainOptions& b = o.base;
  std::ostringstream s;
  s << "Every variant trains the same model (" << b.model.layers << " layers, " << b.model.heads << " heads, embd "
    << b.model.embd << ", block " << b.model.block_size << ", dropout " << b.model.dropout << ") on the same data (`"
    << b.data << "`, batch " << b.batch << ") with the same optimizer (" << b.optimizer << ", lr " << b.lr
    << " with " << b.warmup << " warmup steps and a cosine decay to " << b.min_lr << ") and the same budget: "
    << budget_words(o) << ". Only the attention differs. Each variant trains with " << o.seeds
    << (o.seeds == 1 ? " seed (" : " seeds (") << b.seed;
  if (o.seeds > 1) s << ".." << b.seed + o.seeds - 1;
  s << "; the seed sets the initial weights, the batches and the dropout masks). The val loss is the mean "
       "cross-entropy on "
    << b.eval_batches << " batches of the held-out last 10 % of the text, in nats per character (bits = nats / ln 2).\n\n";
  return s.str();
}

double tokens_per_second(const SeedRun& r) { return r.train_seconds > 0 ? double(r.tokens) / r.train_seconds : 0; }

std::string table_row(const CompareOptions& o, const VariantReport& v, const VariantReport& base) {
  std::vector<double> steps, tps, bits;
  std::size_t peak = 0;
  for (const SeedRun& r : v.runs) {
    steps.push_back(static_cast<double>(r.steps));
    tps.push_back(tokens_per_second(r));
    bits.push_back(r.final_val / kLn2);
    peak = std::max(peak, r.peak_bytes);
  }
  const std::vector<double> final_val = values(v, &SeedRun::final_val);
  std::string delta = "baseline", welch = "—", paired = "—";
  if (&v != &base) {
    delta = fmt("%+.4f", stats::summarize(final_val).mean - stats::summarize(values(base, &SeedRun::final_val)).mean);
    welch = test_cell(stats::welch_t_test(values(base, &SeedRun::final_val), final_val), ", df = %.1f)");
    paired = test_cell(paired_test(base, v), ", df = %.0f)");
  }
  std::ostringstream row;
  row << "| `" << v.spec << "` | " << (o.budget == "seconds" ? mean_std(steps, 0) : fixed(steps.front(), 0)) << " | "
      << human_count(stats::summarize(steps).mean * o.base.batch * o.base.model.block_size) << " | "
      << mean_std(final_val) << " | " << mean_std(values(v, &SeedRun::best_val)) << " | " << mean_std(bits) << " | "
      << delta << " | " << welch << " | " << paired << " | " << mean_std(tps, 0) << " | " << v.runs.front().parameters
      << " | " << (v.kv_bytes_per_token ? human_bytes(v.kv_bytes_per_token) : "no cache") << " | "
      << (peak ? human_bytes(peak) : "—") << " |\n";
  return row.str();
}

std::string results_table(const CompareOptions& o, const CompareResult& r) {
  const VariantReport& base = r.variants.front();
  std::ostringstream s;
  s << "| variant | steps | tokens | final val loss | best val loss | final bits/char | Δ final vs `" << base.spec
    << "` | Welch test | paired test | train tokens/s | parameters | KV cache / token | peak memory |\n"
    << "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const VariantReport& v : r.variants) s << table_row(o, v, base);
  s << "\nLosses are mean ± standard deviation over the seeds (nats/char unless marked). Best is the lowest of "
       "the run's evaluations (every "
    << o.base.eval_every
    << " steps and at the end). Train tokens/s counts training time only (mean ± standard deviation over "
       "the seeds: on a shared machine speed is noisy too). KV cache per token is "
    << "measured from a cache the model allocates (all layers, one sequence); peak memory is the training "
       "device's allocator peak ("
    << o.base.device << ").\n\n";
  return s.str();
}

// ---- significance ----

std::string significance_section(const CompareResult& r) {
  const VariantReport& base = r.variants.front();
  std::ostringstream s;
  s << "## Is the difference real?\n\n";
  if (r.variants.size() < 2) return s.str() + "One variant: nothing to compare.\n\n";
  if (base.runs.size() < 2)
    s << "**One seed per variant: no significance test is possible**, and differences this small may well be "
         "noise. Run with `--seeds 3` or more.\n\n";
  else
    s << "Each variant's final val loss over its " << base.runs.size() << " seeds, against `" << base.spec
      << "`'s, by Welch's t-test (two-sided; ± is the standard error of the difference; t with the "
         "Welch–Satterthwaite degrees of freedom df). Significant means p < 0.05, for each comparison on its "
         "own: among many variants that truly equal the baseline, one in twenty would still pass.\n\n";
  const std::vector<double> base_final = values(base, &SeedRun::final_val);
  for (std::size_t i = 1; i < r.variants.size(); ++i) {
    const std::vector<double> final_val = values(r.variants[i], &SeedRun::final_val);
    const double diff = stats::summarize(final_val).mean - stats::summarize(base_final).mean;
    s << "- " << significance_sentence(r.variants[i].spec, base.spec, stats::welch_t_test(base_final, final_val), diff)
      << "\n";
  }
  if (base.runs.size() < 2) return s.str() + "\n";
  const std::size_t m = r.variants.size() - 1;
  s << "\nPaired by seed. A seed gives every variant the same batches in the same order and the same "
       "evaluation windows, so part of the seed-to-seed spread is shared: a lucky seed lowers every variant's "
       "loss. The paired t-test takes the difference seed by seed, d = loss(variant) − loss(`"
    << base.spec
    << "`), where that shared part cancels (± is sd(d) / √n, df = n − 1; the interval is "
       "mean(d) ± t(0.975, df) · sd(d) / √n, positive meaning worse than `"
    << base.spec << "`). ";
  if (m > 1)
    s << "Holm's adjustment then accounts for the " << m << " comparisons made at once: an adjusted p below 0.05 "
      << "keeps the chance of any false \"significant\" among them under 5 %.";
  s << "\n\n";
  std::vector<stats::TTestResult> paired;
  std::vector<double> p;
  for (std::size_t i = 1; i < r.variants.size(); ++i) {
    paired.push_back(paired_test(base, r.variants[i]));
    p.push_back(paired.back().valid ? paired.back().p : 1.0);
  }
  const std::vector<double> holm = stats::holm_adjust(p);
  for (std::size_t i = 1; i < r.variants.size(); ++i) {
    const stats::TTestResult& t = paired[i - 1];
    s << "- " << significance_sentence(r.variants[i].spec, base.spec, t, t.diff);
    if (t.valid && t.se > 0) {
      const double half = stats::student_t_quantile(0.975, t.df) * t.se;
      const int d = decimals_for(t.se);
      s << " 95 % interval of the difference: [" << fixed(t.diff - half, d) << ", " << fixed(t.diff + half, d)
        << "] nats/char.";
    }
    if (m > 1 && t.valid) s << " Holm-adjusted " << format_p(holm[i - 1]) << ".";
    s << "\n";
  }
  return s.str() + "\n";
}

// ---- length generalisation ----

std::string positions_of(const VariantReport& v) {
  const VariantSpec spec = parse_variant(v.spec);
  std::string window;
  if (spec.name == "window" && spec.options.count("size")) window = ", window " + spec.options.at("size");
  if (spec.options.count("window")) window = ", window " + spec.options.at("window");
  if (v.learned_positions) return "learned" + window;
  if (spec.options.count("alibi")) return "ALiBi" + window;
  if (spec.options.count("ntk")) return "RoPE + NTK ×" + spec.options.at("ntk") + window;
  if (spec.options.count("rope")) return "RoPE" + window;
  if (spec.name == "mla") return "RoPE key (MLA)";
  return "in the attention" + window;
}

std::string length_cell(const VariantReport& v, std::size_t i) {
  const LengthLoss& first = v.runs.front().lengths[i];
  if (!first.unavailable.empty()) return "n/a (" + first.unavailable + ")";
  std::vector<double> losses;
  for (const SeedRun& r : v.runs) losses.push_back(r.lengths[i].loss);
  return mean_std(losses);
}

std::string factor_name(int64_t length, int64_t block) {
  const double f = double(length) / double(block);
  return (f == std::round(f) ? fmt("%.0fx", f) : fmt("%.2gx", f)) + " (" + std::to_string(length) + ")";
}

// "`mha:alibi`: 1.5230 at 1x, 1.5012 at 4x (-0.0218)": how far the loss
// moves from the training length to the longest one.
std::string length_sentence(const VariantReport& v) {
  const std::vector<LengthLoss>& ls = v.runs.front().lengths;
  std::size_t last = 0;
  for (std::size_t i = 0; i < ls.size(); ++i)
    if (ls[i].unavailable.empty()) last = i;
  if (last == 0) return "";
  double at1 = 0, atn = 0;
  for (const SeedRun& r : v.runs) at1 += r.lengths[0].loss, atn += r.lengths[last].loss;
  at1 /= double(v.runs.size());
  atn /= double(v.runs.size());
  const int64_t block = ls[0].length;
  return "- `" + v.spec + "`: " + fixed(at1, 4) + " at " + factor_name(block, block) + ", " + fixed(atn, 4) + " at " +
         factor_name(ls[last].length, block) + " (" + fmt("%+.4f", atn - at1) + " nats/char)\n";
}

std::string extrapolation_section(const CompareOptions& o, const CompareResult& r) {
  if (o.extrapolate.empty()) return "";
  const std::vector<LengthLoss>& ls = r.variants.front().runs.front().lengths;
  const int64_t block = o.base.model.block_size;
  std::ostringstream s;
  s << "## Length generalisation\n\nEvery trained model read the val text in windows longer than the block it "
       "trained on (consecutive windows, at most "
    << o.eval_windows << " per length, spread over the whole val split): the mean loss over all positions, "
                         "nats/char, mean ± std over seeds. A learned position table has no row past the block: "
                         "n/a.\n\n| variant | positions |";
  for (const LengthLoss& l : ls) s << " " << factor_name(l.length, block) << " |";
  s << "\n| --- | --- |";
  for (std::size_t i = 0; i < ls.size(); ++i) s << " ---: |";
  s << "\n";
  for (const VariantReport& v : r.variants) {
    s << "| `" << v.spec << "` | " << positions_of(v) << " |";
    for (std::size_t i = 0; i < ls.size(); ++i) s << " " << length_cell(v, i) << " |";
    s << "\n";
  }
  s << "\n";
  for (const VariantReport& v : r.variants) s << length_sentence(v);
  return s.str() + "\n";
}

// ---- every run, reproduce, machine ----

std::string runs_section(const CompareResult& r) {
  std::ostringstream s;
  s << "## Every run\n\n| variant | seed | steps | training time | final val loss | best val loss | this time |\n"
    << "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (const VariantReport& v : r.variants)
    for (const SeedRun& run : v.runs)
      s << "| `" << v.spec << "` | " << run.seed << " | " << run.steps << " | " << human_seconds(run.train_seconds)
        << " | " << fixed(run.final_val, 4) << " | " << fixed(run.best_val, 4) << " | " << run.how << " |\n";
  return s.str() + "\n";
}

std::string reproduce_section(const CompareOptions& o) {
  std::ostringstream s;
  s << "## Reproduce\n\n";
  if (o.command.empty()) return s.str() + "(Written by a program calling compare(); there is no command line.)\n\n";
  s << "```sh\n" << o.command << "\n```\n\nThe same command in the same folder reuses the finished runs (and "
    << "resumes an interrupted one from its checkpoint); delete `" << o.base.out << "` to train everything anew.\n\n";
  return s.str();
}

std::string machine_section(const CompareOptions& o, const CompareResult& r) {
  int trained = 0, total = 0;
  for (const VariantReport& v : r.variants)
    for (const SeedRun& run : v.runs) total += 1, trained += run.how != "reused";
  std::ostringstream s;
  s << "## Machine\n\n- CPU: " << cpu_model() << " (" << physical_cores() << " physical cores for this process)\n"
    << "- threads: " << num_threads() << " (results do not depend on it)\n- device: " << o.base.device << "\n"
    << "- plot text: " << plot::font_description() << "\n"
    << "- this report: " << human_seconds(r.seconds) << " of wall time, " << trained << " of " << total
    << " runs trained or resumed in it\n";
  return s.str();
}

}  // namespace

void write_compare_report(const CompareOptions& o, const CompareResult& r) {
  std::ostringstream md;
  md << "# attention comparison\n\n" << setup_paragraph(o) << results_table(o, r) << significance_section(r)
     << extrapolation_section(o, r) << plots_section(o, r) << runs_section(r) << reproduce_section(o)
     << machine_section(o, r);
  write_text_atomically((fs::path(o.base.out) / "report.md").string(), md.str());
}

}  // namespace attn
