// The `attnlab` command line: train, sample, compare, convert, bench, variants, demo, eval.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "autograd/engine.h"
#include "core/comm/communicator.h"
#include "core/error.h"
#include "core/threads.h"
#include "autograd/ops.h"
#include "attention/registry.h"
#include "train/bench_attention.h"
#include "train/checkpoint.h"
#include "train/cli_text.h"
#include "train/compare.h"
#include "train/compare_cli.h"
#include "train/convert.h"
#include "train/launch.h"
#include "train/lesson_grade.h"
#include "train/lesson_runner.h"
#include "train/sampling.h"
#include "train/stop_signals.h"
#include "train/tokenizer.h"
#include "train/trainer.h"

namespace {

using namespace attn;

// Fits a small MLP to y = sin(x) with autograd and plain gradient descent:
// the smallest end-to-end check that the engine learns.
int run_demo(int steps, uint64_t seed) {
  check(steps >= 1 && steps <= 1000000, "demo: --steps must be in 1..1000000, got ", steps);
  Generator gen(seed);
  const int64_t n = 256, hidden = 32;
  const Tensor x = reshape(arange(-3.0, 3.0, 6.0 / n, DType::Float32), {n, 1});
  const Tensor y = sin(x);
  Tensor w1 = randn({1, hidden}, gen).set_requires_grad();
  Tensor b1 = zeros({hidden}).set_requires_grad();
  Tensor w2 = mul(randn({hidden, 1}, gen), 1.0f / std::sqrt(static_cast<float>(hidden))).set_requires_grad();
  Tensor b2 = zeros({1}).set_requires_grad();
  std::vector<Tensor*> params = {&w1, &b1, &w2, &b2};
  const float lr = 0.05f;
  for (int step = 0; step <= steps; ++step) {
    const Tensor pred = add(matmul(tanh(add(matmul(x, w1), b1)), w2), b2);
    const Tensor loss = mean(square(sub(pred, y)));
    for (Tensor* p : params) p->zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;  // the update itself is not part of the graph
      for (Tensor* p : params) *p = sub(*p, mul(p->grad(), lr)).set_requires_grad();
    }
    if (step % std::max(steps / 10, 1) == 0) std::printf("step %5d  mse %.6f\n", step, loss.item());
  }
  return 0;
}

int run_sample(const std::string& ckpt, const std::string& prompt, const SampleOptions& so,
               uint64_t seed, const std::string& device) {
  const CheckpointData d = load_checkpoint(checkpoint_path(ckpt));
  const GPTConfig config = GPTConfig::from_json(d.model_config);
  const CharTokenizer tok = CharTokenizer::from_json(d.tokenizer);
  GPT model(config, 0);
  model.to(Device::parse(device));
  load_model_weights(model, d, checkpoint_path(ckpt));
  Generator gen(seed);
  const std::vector<int64_t> ids = tok.encode(prompt.empty() ? "\n" : prompt);
  std::cout << prompt << tok.decode(generate(model, ids, so, gen)) << std::endl;
  return 0;
}

// A run that SIGINT or SIGTERM stopped has saved a checkpoint: say where,
// and the command that continues it. Returns the exit status.
int report_interrupted(int signal, const std::string& resume, int64_t step, int64_t steps, const std::string& out) {
  std::fprintf(stderr, "attnlab: %s: saved the run at step %lld of %lld in '%s'; continue it with: %s\n",
               signal_name(signal), static_cast<long long>(step), static_cast<long long>(steps), out.c_str(),
               resume.c_str());
  return exit_status_for(signal);
}

// For unsigned options: CLI11 2.1 reads "-1" as 2^64 - 1 without a word.
const CLI::Validator kWholeNumber(
    [](std::string& s) {
      const bool digits = !s.empty() && s.size() <= 20 &&
                          std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
      return digits ? std::string() : "expected a whole number >= 0, got '" + s + "'";
    },
    "UINT");

// For yes/no options (--bias): CLI11 2.1 would also take "on", "2" or
// "-5" (false), so a typo could turn a switch off without a word.
const CLI::Validator kTrueFalse(
    [](std::string& s) {
      return s == "true" || s == "false" ? std::string() : "expected true or false, got '" + s + "'";
    },
    "");

// The subcommand chain parsed so far, e.g. "attnlab train".
std::string command_path(const CLI::App* app, const CLI::App** deepest) {
  std::string where = "attnlab";
  const CLI::App* at = app;
  for (std::vector<CLI::App*> subs = at->get_subcommands(); !subs.empty(); subs = at->get_subcommands()) {
    at = subs.front();
    where += " " + at->get_name();
  }
  if (deepest) *deepest = at;
  return where;
}

// CLI11's usage errors in attnlab's style: the command, the option, the
// value and what was expected ("Could not convert: --steps = abc" does not
// say that --steps takes a whole number).
std::string usage_error(const CLI::App* app, const CLI::Error& e) {
  const CLI::App* at = nullptr;
  const std::string where = command_path(app, &at);
  std::string msg = e.what();
  const std::string convert = "Could not convert: ";
  if (msg.rfind(convert, 0) == 0) {
    const std::string rest = msg.substr(convert.size());
    const std::size_t eq = rest.find(" = ");
    const std::string name = rest.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : rest.substr(eq + 3);
    const CLI::Option* opt = at->get_option_no_throw(name);
    const std::string type = opt ? opt->get_type_name() : "";
    const char* expected = type.find("UINT") != std::string::npos    ? "a whole number >= 0"
                           : type.find("INT") != std::string::npos   ? "a whole number"
                           : type.find("FLOAT") != std::string::npos ? "a number"
                                                                     : "a valid value";
    msg = name + " '" + value + "' is not " + expected;
  }
  return where + ": " + msg + "\nRun '" + where + " --help' for the options.\n";
}

// CLI11 2.1 reports an unknown command word only as "A subcommand is
// required". Returns the message for the first unknown one, or "".
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* at = &app;
  std::string where = "attnlab";
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    const std::vector<CLI::App*> subs = at->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty()) break;  // a positional argument of a command, like "lesson status 04"
    CLI::App* next = nullptr;
    std::string names;
    for (CLI::App* s : subs) {
      if (s->check_name(argv[i])) next = s;
      names += (names.empty() ? "" : ", ") + s->get_name();
    }
    if (next == nullptr)
      return where + ": unknown command '" + argv[i] + "'; expected one of: " + names + "\n";
    at = next;
    where += " " + next->get_name();
  }
  return "";
}

void add_train_options(CLI::App* cmd, TrainOptions& o) {
  GPTConfig& m = o.model;
  cmd->add_option("--data", o.data, "corpus: any UTF-8 text file")->required();
  cmd->add_option("--out", o.out, "run folder for config, metrics, checkpoint, plots (default: the --resume folder, "
                                  "else a new numbered folder runs/<N>)");
  cmd->add_option("--resume", o.resume, "continue the run in this folder (or checkpoint file)");
  cmd->add_flag("--overwrite", o.overwrite, "replace the run that --out holds (it stays whole until the new run's "
                                            "first checkpoint)");
  cmd->add_option("--max-corpus-bytes", o.max_corpus_bytes, "refuse a corpus larger than this")->capture_default_str();
  cmd->add_option("--device", o.device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
  cmd->add_option("--stop-at", o.stop_at, "end this run after that step; --resume continues it (0 = off)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "seed for init, batches and dropout")->check(kWholeNumber)->capture_default_str();
  cmd->add_option("--attention", m.attention, "attention variant, e.g. mha, gqa:kv_heads=2, mqa")->capture_default_str();
  cmd->add_option("--layers", m.layers, "transformer blocks")->capture_default_str();
  cmd->add_option("--heads", m.heads, "query heads per block")->capture_default_str();
  cmd->add_option("--embd", m.embd, "model width")->capture_default_str();
  cmd->add_option("--block", m.block_size, "context length in characters")->capture_default_str();
  cmd->add_option("--batch", o.batch, "sequences per step")->capture_default_str();
  cmd->add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", o.min_lr, "learning rate at the end of the cosine decay")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "linear warmup steps")->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay (matrices only)")->capture_default_str();
  cmd->add_option("--beta1", o.beta1, "AdamW decay of the gradient average, in [0, 1)")->capture_default_str();
  cmd->add_option("--beta2", o.beta2, "AdamW decay of the squared-gradient average, in [0, 1)")->capture_default_str();
  cmd->add_option("--grad-clip", o.grad_clip, "global gradient-norm clip, 0 = off")->capture_default_str();
  cmd->add_option("--optimizer", o.optimizer, "adamw or sgd")->capture_default_str();
  cmd->add_option("--precision", o.precision, "products in fp32, tf32 (GPU tensor cores) or bf16 (bfloat16 operands, "
                                              "float32 accumulation and master weights)")->capture_default_str();
  cmd->add_option("--dropout", m.dropout, "dropout probability")->capture_default_str();
  cmd->add_option("--attn-dropout", m.attn_dropout,
                  "dropout on the attention probabilities (default: --dropout's value)");
  cmd->add_option("--norm", m.norm, "layernorm or rmsnorm")->capture_default_str();
  cmd->add_option("--norm-position", m.norm_position, "pre or post")->capture_default_str();
  cmd->add_option("--mlp", m.mlp, "gelu or swiglu")->capture_default_str();
  // Shown as "--bias true|false=true": CLI11 would write BOOLEAN=1, and 1 is refused.
  cmd->add_option("--bias", m.bias, "biases in the linear layers and LayerNorms (false: none, as nanoGPT's bias=False)")
      ->check(kTrueFalse)->type_name("true|false")->default_str("true");
  cmd->add_option("--eval-every", o.eval_every, "evaluate (and checkpoint) every N steps")->capture_default_str();
  cmd->add_option("--eval-batches", o.eval_batches, "batches per evaluation")->capture_default_str();
  cmd->add_option("--log-every", o.log_every, "log the batch loss every N steps")->capture_default_str();
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "extra checkpoints every N steps (0 = at evals)")->capture_default_str();
  cmd->add_option("--sample-tokens", o.sample_tokens, "characters to sample at the end")->capture_default_str();
  cmd->add_flag("--quiet", o.quiet, "no progress output");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"attnlab: a from-scratch training framework for learning attention"};
  app.require_subcommand(1);
  app.failure_message(usage_error);
  // A value given twice: the last one wins (handy when editing long commands).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  // --threads, on every command that computes: one setting for our thread
  // pool and OpenBLAS together (core/threads.h).
  int threads = 0;
  std::vector<CLI::Option*> thread_options;
  auto with_threads = [&](CLI::App* cmd) {
    thread_options.push_back(cmd->add_option(
        "--threads", threads, "CPU threads (default: the physical cores; results do not depend on it)"));
  };

  TrainOptions train_opts;
  auto* train_cmd = app.add_subcommand("train", "train a char-level GPT on a text file");
  add_train_options(train_cmd, train_opts);

  std::string ckpt, prompt, sample_device = "cpu";
  SampleOptions so;
  uint64_t sample_seed = 0;
  auto* sample_cmd = app.add_subcommand("sample", "generate text from a checkpoint");
  sample_cmd->add_option("--ckpt", ckpt, "run folder or checkpoint file")->required();
  sample_cmd->add_option("--prompt", prompt, "text to continue");
  sample_cmd->add_option("--tokens", so.tokens, "characters to generate")->capture_default_str();
  sample_cmd->add_option("--temperature", so.temperature, "0 = greedy; <1 sharper, >1 flatter")->capture_default_str();
  sample_cmd->add_option("--top-k", so.top_k, "sample from the k most likely only (0 = all)")->capture_default_str();
  sample_cmd->add_option("--seed", sample_seed, "sampling seed")->check(kWholeNumber)->capture_default_str();
  sample_cmd->add_option("--device", sample_device, "cpu or cuda[:N]")->capture_default_str();
  sample_cmd->add_flag("--stream", so.stream, "generate past the block size with a rolling KV cache: "
                                             "the first --sinks tokens and the last --window (chapter 18)");
  auto* sinks_opt = sample_cmd->add_option("--sinks", so.sinks, "with --stream: first tokens kept for good")
                        ->capture_default_str();
  auto* window_opt = sample_cmd->add_option("--window", so.window, "with --stream: newest tokens kept "
                                                                    "(default: the block size - sinks)");

  // --data-parallel (train, compare): this process is one rank of an mpirun
  // job (train/data_parallel.h).
  bool data_parallel = false;
  train_cmd->add_flag("--data-parallel", data_parallel, "one rank of a job started by mpirun -np N: the batch is "
                                                        "split over the ranks, gradients averaged (needs an MPI build)");

  TrainOptions compare_opts;
  std::vector<std::string> compare_variants;
  std::string compare_prompt = "Call me Ishmael.";
  auto* compare_cmd = app.add_subcommand("compare", "train the same model once per attention variant and write a report");
  add_train_options(compare_cmd, compare_opts);
  compare_cmd->remove_option(compare_cmd->get_option("--attention"));
  compare_cmd->remove_option(compare_cmd->get_option("--resume"));
  compare_cmd->get_option("--out")->description("folder for the comparison's runs and report (default: a new "
                                                "numbered folder runs/<N>)");
  compare_cmd->get_option("--overwrite")->description("replace the runs an earlier comparison with other settings "
                                                      "left in --out (runs with the same settings are reused)");
  compare_cmd->add_option("--attention", compare_variants,
                          "variants to compare, e.g. mha,gqa:kv_heads=2,mqa (or repeat the option)")->required();
  compare_cmd->add_option("--prompt", compare_prompt, "prompt for the attention heatmaps")->capture_default_str();
  CompareOptions co;  // compare's own options (seeds, budget, extrapolation): train/compare_cli.cpp
  add_compare_options(compare_cmd, co);
  compare_cmd->add_flag("--data-parallel", data_parallel, "one rank of a job started by mpirun -np N: every run's "
                                                          "batch is split over the ranks (needs --out and an MPI build)");

  BenchAttentionOptions bench_opts;
  auto* bench_cmd = app.add_subcommand("bench", "benchmarks");
  bench_cmd->require_subcommand(1);
  auto* bench_attn = bench_cmd->add_subcommand("attention", "time and memory of attention methods against sequence length");
  bench_attn->add_option("--lengths", bench_opts.lengths, "sequence lengths")->delimiter(',')->capture_default_str();
  bench_attn->add_option("--methods", bench_opts.methods, "methods (default: all)")->delimiter(',');
  bench_attn->add_option("--heads", bench_opts.heads, "heads")->capture_default_str();
  bench_attn->add_option("--dim", bench_opts.dim, "head dim")->capture_default_str();
  bench_attn->add_option("--window", bench_opts.window, "window size for windowed methods")->capture_default_str();
  bench_attn->add_option("--sparse-local", bench_opts.sparse_local,
                         "sparse: the strided pattern's local band (0 = --window)")->capture_default_str();
  bench_attn->add_option("--sparse-stride", bench_opts.sparse_stride,
                         "sparse: the strided pattern's stride")->capture_default_str();
  bench_attn->add_option("--sparse-block", bench_opts.sparse_block,
                         "blocksparse: the pattern's block")->capture_default_str();
  bench_attn->add_option("--repeats", bench_opts.repeats, "runs per point (best is kept)")->capture_default_str();
  bench_attn->add_option("--max-dense-gib", bench_opts.max_dense_gib, "skip T x T methods above this")->capture_default_str();
  bench_attn->add_option("--device", bench_opts.device, "cpu or cuda[:N]")->capture_default_str();
  bench_attn->add_option("--out", bench_opts.out, "folder for report.md and plots")->capture_default_str();
  bench_attn->add_option("--precision", bench_opts.precision,
                         "products in fp32, tf32 (GPU tensor cores) or bf16 (bfloat16 operands, float32 sums)")
      ->capture_default_str();
  bool forward_only = false;
  bench_attn->add_flag("--forward-only", forward_only, "skip the backward pass");

  ConvertOptions convert_opts;
  auto* convert_cmd = app.add_subcommand("convert", "attention surgery: MHA checkpoint -> GQA/MQA, with a short fine-tune");
  convert_cmd->add_option("--ckpt", convert_opts.ckpt, "run folder or checkpoint of an MHA model")->required();
  convert_cmd->add_option("--to", convert_opts.to, "target variant, e.g. gqa:kv_heads=2 or mqa")->required();
  convert_cmd->add_option("--out", convert_opts.out, "run folder for the converted model")->required();
  convert_cmd->add_option("--data", convert_opts.data, "corpus (default: the one the model trained on)");
  convert_cmd->add_option("--finetune-steps", convert_opts.finetune_steps, "fine-tuning steps")->capture_default_str();
  convert_cmd->add_option("--lr", convert_opts.lr, "fine-tuning lr (0 = original / 10)")->capture_default_str();
  convert_cmd->add_option("--device", convert_opts.device, "cpu or cuda[:N]")->capture_default_str();
  convert_cmd->add_flag("--quiet", convert_opts.quiet, "no progress output");
  convert_cmd->add_flag("--overwrite", convert_opts.overwrite, "replace the run that --out holds");
  convert_cmd->add_option("--max-corpus-bytes", convert_opts.max_corpus_bytes, "refuse a corpus larger than this")
      ->capture_default_str();

  auto* list_cmd = app.add_subcommand("variants", "list the registered attention variants");

  auto* lesson_cmd = app.add_subcommand("lesson", "the course: list chapters, run a chapter's suites on your code");
  lesson_cmd->require_subcommand(1);
  auto* lesson_list = lesson_cmd->add_subcommand("list", "chapters with pass / fail / not started per suite");
  auto* lesson_status_cmd = lesson_cmd->add_subcommand("status", "the same for one chapter");
  std::string lesson_chapter, lesson_level;
  lesson_status_cmd->add_option("chapter", lesson_chapter, "e.g. 04 or gqa")->required();
  auto* lesson_test_cmd = lesson_cmd->add_subcommand("test", "run a chapter's suites with full output");
  lesson_test_cmd->add_option("chapter", lesson_chapter, "e.g. 04 or gqa")->required();
  lesson_test_cmd->add_option("--level", lesson_level, "basic or advanced (default: both)");
  GradeOptions grade_opts;  // train/lesson_grade.h; lessons/README.md, "Grading a class"
  auto* lesson_grade_cmd = lesson_cmd->add_subcommand("grade", "grade the chapters' suites on your code, each test "
                                                               "alone under time and memory limits");
  lesson_grade_cmd->add_option("chapters", grade_opts.chapters, "e.g. 01 04 (default: every chapter)");
  lesson_grade_cmd->add_option("--timeout-s", grade_opts.timeout_s, "time limit per test, seconds")->capture_default_str();
  lesson_grade_cmd->add_option("--memory-mb", grade_opts.memory_mb, "memory limit per test, MB (0 = none)")
      ->capture_default_str();
  lesson_grade_cmd->add_option("--format", grade_opts.format, "table, gradescope (results.json) or junit (XML)")
      ->capture_default_str();
  lesson_grade_cmd->add_option("--output", grade_opts.output, "file to write (default: standard output)");
  lesson_grade_cmd->add_option("--hidden", grade_opts.hidden, "folder of hidden tests, DIR/NN_name/*.cpp, shown after "
                                                              "the due date");
  lesson_grade_cmd->add_flag("--solution", grade_opts.solution, "teacher's check: grade the reference solution "
                                                                "(must score the maximum)");

  int demo_steps = 2000;
  uint64_t demo_seed = 0;
  auto* demo_cmd = app.add_subcommand("demo", "fit a small MLP to sin(x) with autograd");
  demo_cmd->add_option("--steps", demo_steps, "gradient steps");
  demo_cmd->add_option("--seed", demo_seed, "random seed")->check(kWholeNumber);

  EvalOptions eval_opts;
  auto* eval_cmd = add_eval_command(app, eval_opts);

  LaunchOptions launch_opts;
  std::vector<std::string> launch_command;
  auto* launch_cmd = app.add_subcommand("launch", "start one process per rank on this machine (as torchrun does): "
                                                  "attnlab launch --nproc N -- COMMAND ...");
  launch_cmd->add_option("--nproc", launch_opts.ranks, "ranks (processes) to start")->check(kWholeNumber);
  launch_cmd->add_option("--grace", launch_opts.grace_s,
                         "seconds between SIGTERM and SIGKILL for the other ranks when one fails");
  launch_cmd->add_flag("--nccl", launch_opts.nccl, "hand the ranks an NCCL unique id (ATTNLAB_NCCL_ID)");
  launch_cmd->add_option("command", launch_command, "the command each rank runs (after --)");

  if (const std::string bad = unknown_command(app, argc, argv); !bad.empty()) {
    std::fprintf(stderr, "%s", bad.c_str());
    return static_cast<int>(CLI::ExitCodes::ExtrasError);
  }
  for (CLI::App* cmd : {train_cmd, sample_cmd, compare_cmd, bench_attn, convert_cmd, demo_cmd, eval_cmd})
    with_threads(cmd);
  CLI11_PARSE(app, argc, argv);
  // The options named on the command line: --resume checks them against the run.
  for (const CLI::Option* opt : train_cmd->get_options())
    if (opt->count() > 0) train_opts.given.push_back(opt->get_name());
  // --attn-dropout left out follows --dropout, as nanoGPT's one dropout does.
  for (auto [cmd, opts] : {std::pair{train_cmd, &train_opts}, std::pair{compare_cmd, &compare_opts}})
    if (cmd->get_option("--attn-dropout")->count() == 0) {
      opts->model.attn_dropout = opts->model.dropout;
      opts->attn_dropout_inherited = true;
    }
  try {
    bool threads_given = false;
    for (const CLI::Option* opt : thread_options)
      if (opt->count() > 0) set_num_threads(threads), threads_given = true;
    if (data_parallel) {
      comm::start_processes(&argc, &argv);
      // The ranks on one machine share its cores.
      if (!threads_given) set_num_threads(std::max(1, physical_cores() / comm::world().local_size()));
      check(!compare_cmd->parsed() || !compare_opts.out.empty(),
            "compare: --data-parallel needs --out, the one folder every rank names");
    }
    // With several ranks, rank 0 alone prints results (every rank computes them).
    const bool speaks = comm::world().rank() == 0;
    if (demo_cmd->parsed()) return run_demo(demo_steps, demo_seed);
    if (launch_cmd->parsed()) return launch(launch_opts, launch_command);
    if (sample_cmd->parsed()) {
      check(so.stream || (sinks_opt->count() == 0 && window_opt->count() == 0),
            "sample: --sinks and --window shape the rolling cache of --stream; add --stream");
      return run_sample(ckpt, prompt, so, sample_seed, sample_device);
    }
    if (lesson_list->parsed() || lesson_status_cmd->parsed()) {
      std::printf("%-28s %-9s %-12s %s\n", "chapter", "suite", "state", "tests passed/failed");
      for (const SuiteStatus& st : lesson_status(lesson_status_cmd->parsed() ? lesson_chapter : ""))
        std::printf("%-28s %-9s %-12s %d/%d\n", st.chapter.c_str(), st.level.c_str(), st.state.c_str(),
                    st.passed, st.failed);
      return 0;
    }
    if (lesson_test_cmd->parsed()) return lesson_test(lesson_chapter, lesson_level);
    if (lesson_grade_cmd->parsed()) return lesson_grade(grade_opts);
    if (list_cmd->parsed()) {
      for (const std::string& n : attention_names())
        std::printf("%-20s %s\n", n.c_str(), attention_help(n).c_str());
      return 0;
    }
    if (compare_cmd->parsed()) {
      co.base = compare_opts;
      co.prompt = compare_prompt;
      co.command = command_line(argc, argv);
      for (const std::string& list : compare_variants)
        for (const std::string& v : split_variants(list)) co.variants.push_back(v);
      return run_compare(co);
    }
    if (eval_cmd->parsed()) {
      check(eval_opts.stream || (eval_cmd->get_option("--sinks")->count() == 0 &&
                                 eval_cmd->get_option("--window")->count() == 0),
            "eval: --sinks and --window shape the rolling cache of --stream; add --stream");
      return run_eval(eval_opts);
    }
    if (bench_attn->parsed()) {
      bench_opts.backward = !forward_only;
      bench_attention(bench_opts);
      std::printf("report: %s/report.md\n", bench_opts.out.c_str());
      return 0;
    }
    if (convert_cmd->parsed()) {
      const StopOnSignals stop_on_signals;
      const ConvertResult r = convert(convert_opts);
      if (r.interrupted_by != 0)
        return report_interrupted(r.interrupted_by, resume_command(argv[0], r.data, convert_opts.out,
                                                                   convert_opts.finetune_steps, convert_opts.device),
                                  r.steps, convert_opts.finetune_steps, convert_opts.out);
      std::printf("val loss: before %.4f, after pooling %.4f, after fine-tune %.4f (parameters %lld -> %lld)\n",
                  r.before, r.after_conversion, r.after_finetune,
                  static_cast<long long>(r.params_before), static_cast<long long>(r.params_after));
      return 0;
    }
    if (train_cmd->parsed()) {
      const StopOnSignals stop_on_signals;
      const TrainResult r = train(train_opts);
      if (!speaks) return r.interrupted_by != 0 ? exit_status_for(r.interrupted_by) : 0;
      if (r.interrupted_by != 0)
        return report_interrupted(r.interrupted_by,
                                  resume_command(argv[0], train_opts.data, r.out, r.planned_steps, train_opts.device),
                                  r.steps, r.planned_steps, r.out);
      std::printf("trained %lld steps: train loss %.4f, val loss %.4f, %.0f tokens/s, %lld parameters\n",
                  static_cast<long long>(r.steps), r.final_train_loss, r.final_val_loss,
                  r.tokens_per_second, static_cast<long long>(r.parameters));
      std::printf("best val loss %.4f; %.1f s in %lld steps (%.2f ms/step), %.1f s in all; peak %.0f MiB\n",
                  r.best_val_loss, r.train_seconds, static_cast<long long>(r.steps_run),
                  1000.0 * r.train_seconds / static_cast<double>(std::max<int64_t>(1, r.steps_run)),
                  r.seconds, static_cast<double>(r.peak_bytes) / 1048576.0);
      std::printf("run folder: %s\n", r.out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnlab: %s\n", e.what());
    // The other ranks would wait for this one forever: end the whole job.
    if (comm::world().size() > 1) {
      std::fprintf(stderr, "attnlab: rank %d of %d failed: ending every rank\n", comm::world().rank(),
                   comm::world().size());
      comm::world().abort(1);
    }
    return 1;
  }
  return 0;
}
