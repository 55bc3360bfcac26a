// `attnlab convert`: attention surgery on a trained checkpoint. Turns an
// MHA model into GQA/MQA by pooling its K/V heads (nn/surgery.h), reports
// the val loss before, right after, and after a short fine-tune, and leaves
// the fine-tuned model as a run folder.
#pragma once
#include <string>

#include "train/tokenizer.h"

namespace attn {

struct ConvertOptions {
  std::string ckpt;           // run folder or checkpoint of an MHA model
  std::string to;             // e.g. "gqa:kv_heads=2" or "mqa"
  std::string out;            // run folder for the converted model
  std::string data;           // corpus; default: the one the model trained on
  int64_t finetune_steps = 100;
  float lr = 0;               // 0 = a tenth of the original run's peak lr
  std::string device = "cpu";
  bool quiet = false;
  bool overwrite = false;     // may replace a run that `out` holds (run_folder.h)
  int64_t max_corpus_bytes = kDefaultMaxCorpusBytes;
};

struct ConvertResult {
  float before = 0, after_conversion = 0, after_finetune = 0;
  int64_t params_before = 0, params_after = 0;
  int interrupted_by = 0;     // a signal stopped the fine-tune (TrainResult::interrupted_by)
  int64_t steps = 0;          // the fine-tune's last step
  std::string data;           // the corpus it fine-tunes on
};

ConvertResult convert(const ConvertOptions& options);

}  // namespace attn
