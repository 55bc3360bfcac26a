// Untimed steps before a comparison (warm_up.h).
#include "train/warm_up.h"

#include "attention/registry.h"
#include "autograd/autocast.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "train/optim.h"

#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cuda_settings.h"
#endif

namespace attn {

namespace {

void warm_up_each(const TrainOptions& base, const std::vector<std::string>& variants, int steps,
                  const Device& device, Generator& gen) {
  for (const std::string& spec : variants) {
    GPTConfig config = base.model;
    config.attention = spec;
    config.vocab = 64;  // the corpus's alphabet is not read here; the kernels are the same
    if (base.attn_dropout_inherited && !attention_dropout_unsupported(spec).empty()) config.attn_dropout = 0;
    GPT model(config, 0);
    model.to(device);
    model.train();
    AdamW opt(model.named_parameters(), base.lr);
    std::vector<int64_t> tokens(static_cast<std::size_t>(base.batch * config.block_size));
    for (int s = 0; s < steps; ++s) {
      for (int64_t& t : tokens) t = static_cast<int64_t>(gen.uniform() * config.vocab) % config.vocab;
      const Tensor x = from_ints(tokens, {base.batch, config.block_size}, device);
      const Tensor loss = cross_entropy(model.forward(x), x);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    device_synchronize(device);
  }
}

}  // namespace

void warm_up(const TrainOptions& base, const std::vector<std::string>& variants, int steps) {
  const Device device = Device::parse(base.device);
  const AutocastGuard autocast(base.precision == "bf16" ? DType::BFloat16 : DType::Float32);
#ifdef ATTNLAB_WITH_CUDA
  if (device.is_cuda()) set_cuda_tf32(base.precision == "tf32");
#endif
  // Its own generator: the runs' seeds draw nothing here.
  Generator gen(0x5eed);
  // A model too large for the device stops the warm-up, not the comparison:
  // its first run then meets the same limit and says so as any run does
  // (which step, which checkpoint is intact, what to lower).
  try {
    warm_up_each(base, variants, steps, device, gen);
  } catch (const OutOfMemory&) {
  }
}

}  // namespace attn
