// One training step of the nanoGPT character model, timed on the GPU:
// forward, cross-entropy, backward, AdamW. bench/train_step_torch.py times
// the same step in PyTorch; bench/run_gpu_bench.sh runs both and
// bench/bench_report.py puts them side by side.
//
// Shape (nanoGPT's shakespeare_char): 6 layers, 6 heads, embd 384, block 256,
// batch 64, vocab 65, dropout 0 and attention dropout 0 unless --dropout and
// --attn-dropout say otherwise (as bench/train_step_torch.py's defaults:
// the two are independent here). Prints one JSON object per configuration
// (attention x precision) on stdout:
//   median_ms   a whole step, the GPU synchronised before and after;
//   fwd/bwd/opt the same step cut in three (a sync between phases, so the
//               three add up to a little more than median_ms): where the
//               time goes;
//   peak_mib    the CUDA allocator's peak during the timed steps.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/autocast.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/threads.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "train/optim.h"
#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cuda_settings.h"
#endif

using namespace attn;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"one nanoGPT-char training step (forward, cross-entropy, backward, AdamW)"};
  std::string device_name = "cuda";
  std::vector<std::string> attentions = {"mha", "flash"};
  std::vector<std::string> precisions;  // default: fp32 and tf32 on a GPU, fp32 on the CPU
  int warmup = 3, steps = 10;
  GPTConfig c;
  c.vocab = 65, c.block_size = 256, c.layers = 6, c.heads = 6, c.embd = 384, c.dropout = 0;
  int64_t batch = 64;
  app.add_option("--device", device_name, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--attention", attentions, "variants to time")->delimiter(',');
  app.add_option("--precision", precisions, "fp32, tf32 (cuBLAS TF32 tensor cores; default fp32 and tf32 on a GPU) "
                                            "and/or bf16 (bfloat16 operands, float32 accumulation)")
      ->delimiter(',');
  app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
  app.add_option("--steps", steps, "timed steps (the median is reported)")->capture_default_str();
  app.add_option("--batch", batch, "sequences per step")->capture_default_str();
  app.add_option("--block", c.block_size, "sequence length")->capture_default_str();
  app.add_option("--layers", c.layers)->capture_default_str();
  app.add_option("--heads", c.heads)->capture_default_str();
  app.add_option("--embd", c.embd)->capture_default_str();
  app.add_option("--dropout", c.dropout, "dropout (embeddings, residual branches)")->capture_default_str();
  app.add_option("--attn-dropout", c.attn_dropout, "dropout on the attention probabilities")->capture_default_str();
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads (0: the default, the physical cores)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) set_num_threads(threads);

  try {
    const Device dev = Device::parse(device_name);
    if (precisions.empty()) precisions = dev.is_cuda() ? std::vector<std::string>{"fp32", "tf32"} : std::vector<std::string>{"fp32"};
    for (const std::string& precision : precisions) {
      check(precision == "fp32" || precision == "tf32" || precision == "bf16", "--precision: fp32, tf32 or bf16, got ",
            precision);
      check(precision != "tf32" || dev.is_cuda(), "--precision tf32: TF32 is a GPU tensor-core mode; the CPU runs fp32");
      // bf16: the products' operands rounded to bfloat16 (autograd/autocast.h).
      const AutocastGuard autocast(precision == "bf16" ? DType::BFloat16 : DType::Float32);
#ifdef ATTNLAB_WITH_CUDA
      if (dev.is_cuda()) set_cuda_tf32(precision == "tf32");
#endif
      for (const std::string& attention : attentions) {
        c.attention = attention;
        GPT model(c, 1337);
        model.to(dev);
        AdamW opt(model.named_parameters(), 6e-4f, 0.9f, 0.95f, 1e-8f, 0.1f);
        // One fixed random batch: the data pipeline is not what is timed.
        Generator gen(1);
        std::vector<int64_t> xs(batch * c.block_size), ys(xs.size());
        for (auto& t : xs) t = static_cast<int64_t>(gen.uniform() * c.vocab) % c.vocab;
        for (auto& t : ys) t = static_cast<int64_t>(gen.uniform() * c.vocab) % c.vocab;
        const Tensor x = from_ints(xs, {batch, c.block_size}, dev);
        const Tensor y = from_ints(ys, {batch, c.block_size}, dev);

        float loss_value = 0;
        // One step. With `split`, the GPU is synchronised after each phase
        // and the phase times go to split[0..2] (forward, backward, AdamW).
        auto step = [&](double* split) {
          double t0 = now_ms();
          auto lap = [&](int phase) {
            if (!split) return;
            device_synchronize(dev);
            const double t = now_ms();
            split[phase] = t - t0;
            t0 = t;
          };
          const Tensor loss = cross_entropy(model.forward(x), y);
          lap(0);
          opt.zero_grad();
          loss.backward();
          lap(1);
          opt.step();
          lap(2);
          return loss;
        };
        for (int i = 0; i < warmup; ++i) loss_value = step(nullptr).item();
        device_synchronize(dev);
        reset_device_peak(dev);
        std::vector<double> whole, fwd, bwd, upd;
        for (int i = 0; i < steps; ++i) {
          const double t0 = now_ms();
          step(nullptr);
          device_synchronize(dev);
          whole.push_back(now_ms() - t0);
        }
        const double peak_mib = device_memory_stats(dev).peak / 1048576.0;
        for (int i = 0; i < steps; ++i) {
          double split[3];
          loss_value = step(split).item();
          fwd.push_back(split[0]), bwd.push_back(split[1]), upd.push_back(split[2]);
        }
        std::printf(
            "{\"impl\": \"attnlab\", \"attention\": \"%s\", \"precision\": \"%s\", \"device\": \"%s\", "
            "\"median_ms\": %.3f, \"min_ms\": %.3f, \"fwd_ms\": %.3f, \"bwd_ms\": %.3f, \"opt_ms\": %.3f, "
            "\"peak_mib\": %.1f, \"params\": %lld, \"loss\": %.4f, \"steps\": %d, \"threads\": %d, "
            "\"dropout\": %g, \"attn_dropout\": %g}\n",
            attention.c_str(), precision.c_str(), dev.str().c_str(), median(whole),
            *std::min_element(whole.begin(), whole.end()), median(fwd), median(bwd), median(upd),
            peak_mib, static_cast<long long>(model.num_parameters()), loss_value, steps,
            dev.is_cuda() ? 0 : num_threads(), static_cast<double>(c.dropout),
            static_cast<double>(c.attn_dropout));
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_step_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
