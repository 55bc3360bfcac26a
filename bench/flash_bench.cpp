// Our flash attention (attention/flash.h) on the GPU: causal, forward and
// forward+backward against sequence length, in fp32 or under bfloat16
// autocast (--precision bf16: bfloat16 products, FlashProducts in
// core/backend.h). bench/attention_bench_torch.py times
// torch.nn.functional.scaled_dot_product_attention on the same shapes.
//
// Prints one JSON object per length on stdout: median milliseconds of the
// forward (no autograd graph) and of forward+backward (out.backward(dout)),
// and the CUDA allocator's peak above what was live before the call.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "attention/flash.h"
#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/threads.h"

using namespace attn;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Median time of fn over `repeats` runs after `warmup` untimed ones; the
// GPU is synchronised around each run, since kernel launches return before
// the kernels finish.
template <class Fn>
double median_ms(const Device& dev, int warmup, int repeats, Fn fn) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    device_synchronize(dev);
    const double t0 = now_ms();
    fn();
    device_synchronize(dev);
    t.push_back(now_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flash attention forward / forward+backward timing (causal, fp32 or bf16)"};
  std::string device_name = "cuda";
  std::vector<int64_t> lengths = {1024, 4096, 16384};
  int64_t B = 4, H = 8, D = 64;
  int warmup = 2, repeats = 5;
  app.add_option("--device", device_name, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--lengths", lengths, "sequence lengths")->delimiter(',')->capture_default_str();
  app.add_option("--batch", B)->capture_default_str();
  app.add_option("--heads", H)->capture_default_str();
  app.add_option("--dim", D, "head dim")->capture_default_str();
  std::string precision = "fp32";
  app.add_option("--precision", precision, "fp32, or bf16 (bfloat16 products under autocast)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads (0: the default, the physical cores)");
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--repeats", repeats, "timed runs (the median is reported)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) set_num_threads(threads);

  try {
    const Device dev = Device::parse(device_name);
    const AutocastGuard autocast(precision == "bf16" ? DType::BFloat16 : DType::Float32);
    FlashOptions o;
    o.causal = true;
    for (int64_t T : lengths) {
      Generator gen(static_cast<uint64_t>(T));
      const Tensor q0 = randn({B, H, T, D}, gen, dev), k0 = randn({B, H, T, D}, gen, dev),
                   v0 = randn({B, H, T, D}, gen, dev), dout = randn({B, H, T, D}, gen, dev);
      device_synchronize(dev);
      const std::size_t base = device_memory_stats(dev).current;
      reset_device_peak(dev);
      const double fwd = median_ms(dev, warmup, repeats, [&] {
        NoGradGuard no_grad;
        flash_attention(q0, k0, v0, o);
      });
      const double fwd_peak = (device_memory_stats(dev).peak - base) / 1048576.0;
      reset_device_peak(dev);
      const double both = median_ms(dev, warmup, repeats, [&] {
        Tensor q = q0.detach().set_requires_grad(), k = k0.detach().set_requires_grad(),
               v = v0.detach().set_requires_grad();
        flash_attention(q, k, v, o).backward(dout);
      });
      const double both_peak = (device_memory_stats(dev).peak - base) / 1048576.0;
      std::printf(
          "{\"impl\": \"attnlab flash\", \"precision\": \"%s\", \"B\": %lld, \"H\": %lld, \"T\": %lld, \"D\": %lld, "
          "\"fwd_ms\": %.3f, \"fwdbwd_ms\": %.3f, \"fwd_peak_mib\": %.1f, \"fwdbwd_peak_mib\": %.1f}\n",
          precision.c_str(), static_cast<long long>(B), static_cast<long long>(H), static_cast<long long>(T),
          static_cast<long long>(D), fwd, both, fwd_peak, both_peak);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flash_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
