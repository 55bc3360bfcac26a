#include "train/bench_attention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "attention/bigbird.h"
#include "attention/flash.h"
#include "attention/kernel.h"
#include "attention/linear.h"
#include "attention/multiscale.h"
#include "attention/pattern.h"
#include "attention/performer.h"
#include "attention/sparse.h"
#include "attention/window.h"
#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cuda_settings.h"
#endif
#include "core/error.h"
#include "train/files.h"
#include "train/plot.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

// A method builds its kernel once per run, so that what a kernel keeps
// between calls (a sparse pattern's compiled blocks) is kept as training
// keeps it; best-of-N then times the calls, not the compiling.
struct Method {
  std::string name;
  bool quadratic;  // materialises T x T
  std::function<AttentionKernel(const BenchAttentionOptions&)> make;
};

AttentionKernel fixed(AttentionKernel k) { return k; }

// The strided pattern's local band: --sparse-local, or --window when 0.
int64_t sparse_local(const BenchAttentionOptions& o) { return o.sparse_local > 0 ? o.sparse_local : o.window; }

const std::vector<Method>& methods() {
  using O = BenchAttentionOptions;
  static const std::vector<Method> m = {
      {"dense", true, [](const O&) { return fixed(dense_causal_attention); }},
      {"flash", false, [](const O&) { return flash_kernel(0); }},
      {"flash-window", false, [](const O& o) { return flash_kernel(o.window); }},
      {"window-banded", false, [](const O& o) {
         return fixed([w = o.window](const AttentionCall& c) { return window_attention_banded(c, w); });
       }},
      // BigBird: the last --window keys, 16 global tokens and 2 random
      // blocks of 64 per query block of 64.
      {"bigbird", false, [](const O& o) {
         BigBirdPattern p;
         p.window = o.window, p.global = 16, p.random = 2, p.block = 64;
         return bigbird_kernel(p);
       }},
      // Half the heads with the window, half full: one flash call per group.
      {"multiscale", false, [](const O& o) { return multiscale_kernel({o.window, 0}); }},
      {"linear", false, [](const O&) { return fixed(linear_attention); }},
      // Performer: causal FAVOR+ with 64 orthogonal random features per head.
      {"performer", false, [](const O&) {
         return fixed([](const AttentionCall& c) {
           return performer_attention(c.q, c.k, c.v, performer_projection(64, c.q.shape()[3], true, 0), true);
         });
       }},
      // Sparse patterns through the block-skipping flash kernel, and the
      // same patterns as masks over dense attention: the reference,
      // labelled as such.
      {"sparse", false, [](const O& o) { return strided_sparse_kernel(sparse_local(o), o.sparse_stride); }},
      {"blocksparse", false, [](const O& o) { return block_sparse_kernel(o.sparse_block); }},
      {"sparse-masked", true, [](const O& o) {
         return fixed([l = sparse_local(o), s = o.sparse_stride](const AttentionCall& c) {
           return attention_with_pattern(
               c, strided_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset, l, s, c.q.device()));
         });
       }},
      {"blocksparse-masked", true, [](const O& o) {
         return fixed([b = o.sparse_block](const AttentionCall& c) {
           return attention_with_pattern(
               c, block_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset, b, c.q.device()));
         });
       }},
  };
  return m;
}

// For the block-skipping methods: the 64 x 64 blocks visited against the
// T (T + 64) / 2 / 64^2 or so that causal attention visits.
std::string kept_blocks(const std::string& method, int64_t t, const BenchAttentionOptions& o) {
  if (method != "sparse" && method != "blocksparse") return "";
  const int64_t visited = method == "sparse"
                              ? strided_sparse_blocks(t, t, 0, sparse_local(o), o.sparse_stride).entries()
                              : block_sparse_blocks(t, t, 0, o.sparse_block).entries();
  const int64_t n = (t + kSparseBlock - 1) / kSparseBlock, causal = n * (n + 1) / 2;
  char note[96];
  std::snprintf(note, sizeof note, "blocks visited: %lld of causal's %lld (1/%.1f)",
                static_cast<long long>(visited), static_cast<long long>(causal),
                static_cast<double>(causal) / static_cast<double>(visited));
  return note;
}

// The slope of log(time) against log(T), least squares over the lengths
// measured: about 1 for a method linear in T, 2 for a quadratic one.
double loglog_slope(const std::vector<std::pair<double, double>>& points) {
  const double n = static_cast<double>(points.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [t, ms] : points) {
    const double x = std::log(t), y = std::log(ms);
    sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::vector<std::string> bench_attention_methods() {
  std::vector<std::string> names;
  for (const Method& m : methods()) names.push_back(m.name);
  return names;
}

std::vector<BenchRow> bench_attention(const BenchAttentionOptions& o) {
  check(o.heads >= 1, "bench attention: --heads must be >= 1, got ", o.heads);
  check(o.dim >= 1, "bench attention: --dim must be >= 1, got ", o.dim);
  check(o.window >= 1, "bench attention: --window must be >= 1, got ", o.window);
  check(o.repeats >= 1, "bench attention: --repeats must be >= 1, got ", o.repeats);
  check(o.sparse_local >= 0, "bench attention: --sparse-local must be >= 0 (0 = --window), got ", o.sparse_local);
  check(o.sparse_stride >= 1, "bench attention: --sparse-stride must be >= 1, got ", o.sparse_stride);
  check(o.sparse_block >= 1, "bench attention: --sparse-block must be >= 1, got ", o.sparse_block);
  check(o.precision == "fp32" || o.precision == "tf32" || o.precision == "bf16",
        "bench attention: --precision must be fp32, tf32 or bf16, got '", o.precision, "'");
  const bool multiscale = o.methods.empty() ||
                          std::find(o.methods.begin(), o.methods.end(), "multiscale") != o.methods.end();
  check(!multiscale || o.heads % 2 == 0, "bench attention: method multiscale gives half the heads ",
        "--window and half the full context, so --heads must be even, got ", o.heads);
  const Device device = Device::parse(o.device);
  check(o.precision != "tf32" || device.is_cuda(), "bench attention: --precision tf32 is a GPU tensor-core ",
        "mode; the CPU runs fp32");
  make_output_folder(o.out, "bench attention: --out");  // before the run, not after it
  const AutocastGuard autocast(o.precision == "bf16" ? DType::BFloat16 : DType::Float32);
#ifdef ATTNLAB_WITH_CUDA
  struct Tf32Setting {  // on for this run only
    explicit Tf32Setting(bool on) : before(cuda_tf32()) { set_cuda_tf32(on); }
    ~Tf32Setting() { set_cuda_tf32(before); }
    bool before;
  } tf32(device.is_cuda() && o.precision == "tf32");
#endif
  std::vector<std::pair<const Method*, AttentionKernel>> chosen;
  for (const Method& m : methods())
    if (o.methods.empty() || std::find(o.methods.begin(), o.methods.end(), m.name) != o.methods.end())
      chosen.push_back({&m, m.make(o)});
  for (const std::string& want : o.methods) {
    bool found = false;
    for (const Method& m : methods()) found = found || m.name == want;
    if (!found) {
      std::string list;
      for (const auto& n : bench_attention_methods()) list += (list.empty() ? "" : ", ") + n;
      fail("bench attention: unknown method '", want, "'; methods: ", list);
    }
  }
  std::vector<BenchRow> rows;
  for (int64_t T : o.lengths) {
    check(T >= 1, "bench attention: lengths must be >= 1, got ", T);
    Generator gen(static_cast<uint64_t>(T));
    const Tensor q0 = randn({1, o.heads, T, o.dim}, gen, device);
    const Tensor k0 = randn({1, o.heads, T, o.dim}, gen, device);
    const Tensor v0 = randn({1, o.heads, T, o.dim}, gen, device);
    for (const auto& [m, kernel] : chosen) {
      BenchRow row;
      row.method = m->name;
      row.length = T;
      // Dense attention keeps scores, weights and their gradients: ~4 T x T floats per head.
      const double dense_gib = 4.0 * o.heads * static_cast<double>(T) * T * 4 / (1 << 30);
      if (m->quadratic && dense_gib > o.max_dense_gib) {
        char note[96];
        std::snprintf(note, sizeof note, "skipped: needs ~%.1f GiB of T x T buffers", dense_gib);
        row.note = note;
        rows.push_back(row);
        std::fprintf(stderr, "%-14s T=%-6lld %s\n", m->name.c_str(), static_cast<long long>(T), note);
        continue;
      }
      double best_f = 1e300, best_b = 1e300;
      for (int r = 0; r < o.repeats; ++r) {
        Tensor q = q0.detach().set_requires_grad(), k = k0.detach().set_requires_grad(),
               v = v0.detach().set_requires_grad();
        AttentionCall call;
        call.q = q, call.k = k, call.v = v;
        call.scale = 1.0f / std::sqrt(static_cast<float>(o.dim));
        // Memory is counted by the allocator of the device the tensors live
        // on; GPU kernels run asynchronously, so the clock is read only
        // after device_synchronize() says the queued work is done.
        device_synchronize(device);
        const std::size_t base = device_memory_stats(device).current;
        reset_device_peak(device);
        double t0 = now_ms();
        Tensor out;
        if (o.backward) {
          out = kernel(call);
        } else {
          NoGradGuard ng;
          out = kernel(call);
        }
        device_synchronize(device);
        best_f = std::min(best_f, now_ms() - t0);
        row.forward_peak = device_memory_stats(device).peak - base;
        if (o.backward) {
          t0 = now_ms();
          sum(out).backward();
          device_synchronize(device);
          best_b = std::min(best_b, now_ms() - t0);
          row.backward_peak = device_memory_stats(device).peak - base;
        }
      }
      row.forward_ms = best_f;
      row.backward_ms = o.backward ? best_f + best_b : -1;
      row.note = kept_blocks(m->name, T, o);
      rows.push_back(row);
      std::fprintf(stderr, "%-14s T=%-6lld forward %9.2f ms  %8.1f MiB", m->name.c_str(),
                   static_cast<long long>(T), row.forward_ms, row.forward_peak / 1048576.0);
      if (o.backward)
        std::fprintf(stderr, "   fwd+bwd %9.2f ms  %8.1f MiB", row.backward_ms, row.backward_peak / 1048576.0);
      std::fprintf(stderr, "  %s\n", row.note.c_str());
    }
  }

  // Table and plots.
  make_output_folder(o.out, "bench attention: --out");
  std::ostringstream md;
  md << "# attention benchmark\n\nheads " << o.heads << ", head dim " << o.dim << ", window "
     << o.window << ", device " << o.device << ", precision " << o.precision << ", best of " << o.repeats
     << " runs; memory is the allocator's peak above what was live before the call.\n\n"
     << "sparse: strided, local " << sparse_local(o) << ", stride " << o.sparse_stride
     << "; blocksparse: block " << o.sparse_block << "; both in blocks of 64 x 64 through the "
     << "block-skipping flash kernel, their -masked twins the masked-dense reference.\n\n"
     << "| method | T | forward ms | forward peak MiB | fwd+bwd ms | fwd+bwd peak MiB | note |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (const BenchRow& r : rows) {
    char line[256];
    if (r.forward_ms < 0)
      std::snprintf(line, sizeof line, "| %s | %lld | | | | | %s |\n", r.method.c_str(),
                    static_cast<long long>(r.length), r.note.c_str());
    else
      std::snprintf(line, sizeof line, "| %s | %lld | %.2f | %.1f | %s | %s | %s |\n", r.method.c_str(),
                    static_cast<long long>(r.length), r.forward_ms, r.forward_peak / 1048576.0,
                    r.backward_ms < 0 ? "" : std::to_string(r.backward_ms).substr(0, 8).c_str(),
                    r.backward_ms < 0 ? "" : std::to_string(r.backward_peak / 1048576.0).substr(0, 7).c_str(),
                    r.note.c_str());
    md << line;
  }
  // How each method's time grows with T.
  md << "\n| method | log-log slope, forward | log-log slope, fwd+bwd | lengths |\n"
     << "| --- | ---: | ---: | --- |\n";
  for (const auto& [m, kernel] : chosen) {
    std::vector<std::pair<double, double>> fwd, both;
    std::string lengths;
    for (const BenchRow& r : rows) {
      if (r.method != m->name || r.forward_ms <= 0) continue;
      fwd.push_back({static_cast<double>(r.length), r.forward_ms});
      if (r.backward_ms > 0) both.push_back({static_cast<double>(r.length), r.backward_ms});
      lengths += (lengths.empty() ? "" : ", ") + std::to_string(r.length);
    }
    if (fwd.size() < 2) continue;
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %.2f | %s | %s |\n", m->name.c_str(), loglog_slope(fwd),
                  both.size() < 2 ? "" : std::to_string(loglog_slope(both)).substr(0, 4).c_str(),
                  lengths.c_str());
    md << line;
    std::fprintf(stderr, "%-18s log-log slope forward %.2f%s\n", m->name.c_str(), loglog_slope(fwd),
                 both.size() < 2 ? "" : (", fwd+bwd " + std::to_string(loglog_slope(both)).substr(0, 4)).c_str());
  }
  if (plot::available()) {
    for (const char* what : {"time", "memory"}) {
      plot::LineChart chart;
      chart.log_x = chart.log_y = true;
      chart.x_label = "sequence length T";
      chart.y_label = std::string(what) == "time" ? "forward time (ms)" : "forward peak memory (MiB)";
      chart.title = std::string("attention ") + what + " against sequence length";
      std::map<std::string, plot::Series> by_method;
      for (const BenchRow& r : rows) {
        if (r.forward_ms <= 0) continue;
        plot::Series& s = by_method[r.method];
        s.label = r.method;
        s.x.push_back(static_cast<double>(r.length));
        s.y.push_back(std::string(what) == "time" ? r.forward_ms
                                                   : std::max(r.forward_peak / 1048576.0, 1e-3));
      }
      for (auto& [name, s] : by_method) chart.series.push_back(s);
      if (!chart.series.empty()) {
        plot::write_line_chart((fs::path(o.out) / (std::string(what) + ".png")).string(), chart);
        md << "\n![" << what << "](" << what << ".png)\n";
      }
    }
  }
  write_text_atomically((fs::path(o.out) / "report.md").string(), md.str());
  return rows;
}

}  // namespace attn
