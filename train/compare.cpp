#include "train/compare.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/files.h"
#include "train/plot.h"
#include "train/tokenizer.h"

namespace attn {

namespace fs = std::filesystem;

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

namespace {

std::vector<std::pair<double, double>> val_curve(const fs::path& metrics) {
  std::vector<std::pair<double, double>> pts;
  std::ifstream f(metrics);
  std::string line;
  while (std::getline(f, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("split", "") == "val")
      pts.emplace_back(j["step"].get<double>(), j["loss"].get<double>());
  }
  return pts;
}

// Layer-0 attention weights (mean over heads) for the prompt, from the
// trained checkpoint. False when the variant keeps no weights.
bool write_heatmap(const fs::path& run, const std::string& prompt, const fs::path& png,
                   const std::string& title, const Device& device) {
  const CheckpointData d = load_checkpoint(checkpoint_path(run.string()));
  const CharTokenizer tok = CharTokenizer::from_json(d.tokenizer);
  GPT model(GPTConfig::from_json(d.model_config), 0);
  model.to(device);
  model.load_state_dict(d.model);
  model.eval();
  std::vector<int64_t> ids = tok.encode(prompt);
  if (static_cast<int64_t>(ids.size()) > model.config().block_size) ids.resize(model.config().block_size);
  Attention& a = model.blocks().front()->attention();
  a.keep_weights = true;
  NoGradGuard no_grad;
  model.forward(from_ints(ids, {1, static_cast<int64_t>(ids.size())}, device));
  if (!a.last_weights.defined() || !plot::available()) return false;
  const Tensor w = mean(select(a.last_weights, 0, 0), {0});  // [T, T]
  plot::Heatmap h;
  h.title = title;
  h.x_label = "key position";
  h.y_label = "query position";
  h.values = w.to_vector();
  h.rows = h.cols = static_cast<int>(ids.size());
  for (int64_t id : ids) {
    std::string ch = tok.decode({id});
    if (ch == "\n") ch = "\\n";
    h.row_names.push_back(ch);
    h.col_names.push_back(ch);
  }
  plot::write_heatmap(png.string(), h);
  return true;
}

std::string human_bytes(std::size_t b) {
  char buf[32];
  if (b >= (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%zu B", b);
  return buf;
}

}  // namespace

std::vector<VariantReport> compare(const CompareOptions& o) {
  check(!o.variants.empty(), "compare: no variants given; e.g. --attention mha,gqa:kv_heads=2,mqa");
  const fs::path out(o.base.out);
  make_output_folder(out.string(), "compare: --out");
  const Device device = Device::parse(o.base.device);
  std::vector<VariantReport> reports;
  std::set<std::string> seen;
  for (const std::string& spec : o.variants) {
    check(seen.insert(spec).second, "compare: variant '", spec, "' is listed twice");
    TrainOptions t = o.base;
    t.model.attention = spec;
    t.out = (out / folder_name(spec)).string();
    if (!t.quiet) std::fprintf(stderr, "== %s\n", spec.c_str());
    VariantReport r;
    r.spec = spec;
    r.folder = folder_name(spec);
    r.result = train(t);
    GPTConfig config = t.model;
    config.vocab = 1;  // only the attention's cache layout matters here
    GPT probe(config, 0);
    if (probe.blocks().front()->attention().cache_layout().heads > 0)
      r.kv_bytes_per_token = probe.make_cache(1).bytes_per_token();
    reports.push_back(r);
  }

  // One loss plot with a line per variant.
  std::vector<std::string> heatmaps;
  if (plot::available()) {
    plot::LineChart chart;
    chart.title = "validation loss by attention variant";
    chart.x_label = "step";
    chart.y_label = "val loss (nats/char)";
    for (const VariantReport& r : reports) {
      plot::Series s{r.spec, {}, {}};
      for (auto [x, y] : val_curve(out / r.folder / "metrics.jsonl")) s.x.push_back(x), s.y.push_back(y);
      if (!s.x.empty()) chart.series.push_back(s);
    }
    if (!chart.series.empty()) plot::write_line_chart((out / "loss.png").string(), chart);
    for (const VariantReport& r : reports) {
      const std::string png = "attention_" + r.folder + ".png";
      if (write_heatmap(out / r.folder, o.prompt, out / png, r.spec + ": layer 0, mean over heads", device))
        heatmaps.push_back(png);
    }
  }

  std::ostringstream md;
  md << "# attention comparison\n\n"
     << "Same data, seed, model size and steps (" << o.base.steps << ", batch " << o.base.batch
     << ", block " << o.base.model.block_size << ", " << o.base.model.layers << " layers, "
     << o.base.model.heads << " heads, embd " << o.base.model.embd << ") for every variant; only the "
     << "attention differs. Corpus: `" << o.base.data << "`.\n\n"
     << "| variant | parameters | train loss | val loss | tokens/s | KV cache / token | peak memory |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const VariantReport& r : reports) {
    char row[512];
    std::snprintf(row, sizeof row, "| `%s` | %lld | %.4f | %.4f | %.0f | %s | %s |\n", r.spec.c_str(),
                  static_cast<long long>(r.result.parameters), r.result.final_train_loss,
                  r.result.final_val_loss, r.result.tokens_per_second,
                  r.kv_bytes_per_token ? human_bytes(r.kv_bytes_per_token).c_str() : "no cache",
                  human_bytes(r.result.peak_bytes).c_str());
    md << row;
  }
  md << "\nKV cache per token is measured from a cache the model allocates (all layers, one "
        "sequence); peak memory is the peak of the training device's allocator ("
     << o.base.device << ") during training.\n\n";
  if (plot::available()) md << "![validation loss](loss.png)\n\n";
  for (const std::string& h : heatmaps) md << "![" << h << "](" << h << ")\n\n";
  write_text_atomically((out / "report.md").string(), md.str());
  return reports;
}

}  // namespace attn
