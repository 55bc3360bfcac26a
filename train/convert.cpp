#include "train/convert.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "nn/surgery.h"
#include "train/checkpoint.h"
#include "train/files.h"
#include "train/optim.h"
#include "train/run_folder.h"
#include "train/trainer.h"

namespace attn {

ConvertResult convert(const ConvertOptions& o) {
  check(!o.to.empty(), "convert: --to is required, e.g. --to gqa:kv_heads=2");
  check(!o.out.empty(), "convert: --out is required");
  check(o.finetune_steps >= 1, "convert: --finetune-steps must be >= 1, got ", o.finetune_steps);
  const CheckpointData d = load_checkpoint(checkpoint_path(o.ckpt));
  TrainOptions t = TrainOptions::from_json(d.train_options);
  if (!o.data.empty()) t.data = o.data;
  t.device = o.device;
  t.max_corpus_bytes = o.max_corpus_bytes;
  const Device device = Device::parse(o.device);
  // Checked (a run there is refused without --overwrite) and locked before
  // the evaluations below, which take a while.
  RunFolder folder(RunFolder::Request{o.out, "", o.overwrite, "convert"});

  GPT source(GPTConfig::from_json(d.model_config), 0);
  source.to(device);
  load_model_weights(source, d, checkpoint_path(o.ckpt));
  ConvertResult r;
  r.params_before = source.num_parameters();
  r.before = validation_loss(source, t, d.tokenizer);

  std::unique_ptr<GPT> target = mha_to_gqa(source, o.to);
  r.params_after = target->num_parameters();
  r.after_conversion = validation_loss(*target, t, d.tokenizer);

  // Fine-tune: the converted weights become step 0 of a new run (fresh
  // optimizer, a gentler learning rate), which train() then resumes.
  t.model = target->config();
  t.out = o.out;
  t.steps = o.finetune_steps;
  t.lr = o.lr > 0 ? o.lr : t.lr / 10;
  t.min_lr = std::min(t.min_lr, t.lr);
  t.warmup = std::min<int64_t>(t.warmup, o.finetune_steps / 10);
  t.eval_every = std::max<int64_t>(o.finetune_steps / 4, 1);
  t.quiet = o.quiet;
  CheckpointData start;
  start.model_config = t.model.to_json();
  start.tokenizer = d.tokenizer;
  start.train_options = t.to_json();
  start.model = target->state_dict();
  AdamW fresh(target->named_parameters(), t.lr);
  start.optimizer = fresh.state();
  start.batch_rng = Generator(t.seed + 3).state();
  start.dropout_stream = {target->dropout_source().seed, target->dropout_source().offset};
  save_checkpoint((folder.path() / "checkpoint.safetensors").string(), start);
  folder.checkpoint_written();  // with --overwrite: the converted model replaces the old run now
  t.resume = o.out;
  const TrainResult tuned = train(t, folder);
  r.after_finetune = tuned.final_val_loss;
  r.steps = tuned.steps;
  r.interrupted_by = tuned.interrupted_by;
  r.data = t.data;
  if (r.interrupted_by != 0) return r;  // no report for a fine-tune that did not finish

  char report[1024];
  std::snprintf(report, sizeof report,
                "# attention surgery: %s -> %s\n\n"
                "| | parameters | val loss |\n| --- | ---: | ---: |\n"
                "| before (%s) | %lld | %.4f |\n| right after pooling K/V heads | %lld | %.4f |\n"
                "| after %lld fine-tuning steps | %lld | %.4f |\n",
                source.config().attention.c_str(), o.to.c_str(), source.config().attention.c_str(),
                static_cast<long long>(r.params_before), r.before,
                static_cast<long long>(r.params_after), r.after_conversion,
                static_cast<long long>(o.finetune_steps), static_cast<long long>(r.params_after),
                r.after_finetune);
  write_text_atomically((std::filesystem::path(o.out) / "convert.md").string(), report);
  return r;
}

}  // namespace attn
