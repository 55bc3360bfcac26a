// The bad-input catalogue (docs/bad_inputs.md) at the library level: each
// wrong input gives an attn::Error whose message names the op, the option or
// file, the value and what was expected, and no file that existed before is
// changed. (testcases/train/bad_inputs.sh checks the same through the
// `attnlab` command.)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "attention/registry.h"
#include "core/device.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "train/checkpoint.h"
#include "train/files.h"
#include "train/sampling.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "testcases/error_of.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {

#define EXPECT_ERROR_STARTS(call, start)                                     \
  do {                                                                       \
    const std::string msg_ = error_of([&] { call; });                        \
    EXPECT_EQ(msg_.rfind(start, 0), 0u) << "message: '" << msg_ << "'";      \
  } while (0)

#define EXPECT_ERROR_HAS(call, part)                                         \
  do {                                                                       \
    const std::string msg_ = error_of([&] { call; });                        \
    EXPECT_NE(msg_.find(part), std::string::npos) << "message: '" << msg_ << "'"; \
  } while (0)

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("attnlab_bad_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// Every file under `dir`, with its bytes: to compare before and after.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_bytes(e.path());
  return files;
}

std::string corpus_text() {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the cat sat on the mat. the dog sat on the log.\n";
  return text;
}

TrainOptions tiny(const fs::path& dir) {
  TrainOptions o;
  o.data = (dir / "corpus.txt").string();
  if (!fs::exists(o.data)) write_bytes(o.data, corpus_text());
  o.out = (dir / "run").string();
  o.steps = 4;
  o.batch = 2;
  o.eval_every = 4;
  o.eval_batches = 1;
  o.log_every = 2;
  o.sample_tokens = 0;
  o.quiet = true;
  o.model.layers = 1;
  o.model.heads = 2;
  o.model.embd = 16;
  o.model.block_size = 8;
  return o;
}

}  // namespace

TEST(BadInputs, TrainOptionsNameOptionValueAndRange) {
  TrainOptions o;
  o.data = "x";
  o.steps = -1;
  EXPECT_ERROR_STARTS(o.validate(), "train: --steps must be in 1..100000000, got -1");
  o = TrainOptions{};
  o.batch = 0;
  EXPECT_ERROR_STARTS(o.validate(), "train: --batch must be in 1..65536, got 0");
  o = TrainOptions{};
  o.lr = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ERROR_STARTS(o.validate(), "train: --lr must be in (0, 10), got nan");
  o = TrainOptions{};
  o.sample_tokens = -5;
  EXPECT_ERROR_STARTS(o.validate(), "train: --sample-tokens must be >= 0 (0 = no sample), got -5");
  o = TrainOptions{};
  o.beta1 = 1.5f;
  EXPECT_ERROR_STARTS(o.validate(), "train: --beta1 must be in [0, 1), got 1.5");
  o = TrainOptions{};
  o.beta2 = 1;
  EXPECT_ERROR_STARTS(o.validate(), "train: --beta2 must be in [0, 1), got 1");
  o = TrainOptions{};
  o.beta2 = -0.5f;
  EXPECT_ERROR_STARTS(o.validate(), "train: --beta2 must be in [0, 1), got -0.5");
  o = TrainOptions{};
  o.device = "tpu";
  EXPECT_ERROR_STARTS(o.validate(), "device: unknown device 'tpu'; expected cpu, cuda or cuda:N");
}

TEST(BadInputs, ModelConfigNamesOptionValueAndRange) {
  GPTConfig c;
  c.vocab = 10;
  c.embd = 16;
  c.heads = 3;
  EXPECT_ERROR_STARTS(c.validate(), "model: --heads 3 must divide --embd 16 (16 % 3 = 1)");
  c.heads = 2;
  c.dropout = 1;
  EXPECT_ERROR_STARTS(c.validate(), "model: --dropout must be in [0, 1), got 1");
  c.dropout = 0;
  c.attn_dropout = 1;
  EXPECT_ERROR_STARTS(c.validate(), "model: --attn-dropout must be in [0, 1), got 1");
  c.attn_dropout = -0.1f;
  EXPECT_ERROR_STARTS(c.validate(), "model: --attn-dropout must be in [0, 1), got -0.1");
  c.attn_dropout = 0;
  c.layers = 0;
  EXPECT_ERROR_STARTS(c.validate(), "model: --layers must be in 1..128, got 0");
}

TEST(BadInputs, AttentionVariantsAndOptions) {
  AttentionConfig c;
  c.embd = 16;
  c.heads = 2;
  c.block_size = 8;
  Generator g(0);
  EXPECT_ERROR_STARTS(make_attention("nope", c, g), "attention: unknown variant 'nope'; known variants: ");
  EXPECT_ERROR_STARTS(make_attention("gqa:kv_hedas=2", c, g),
                      "attention gqa: unknown option 'kv_hedas'; options: kv_heads, rope, rope_base, ntk, alibi");
  EXPECT_ERROR_STARTS(make_attention("gqa", c, g), "attention gqa: needs the option kv_heads=N, e.g. gqa:kv_heads=2");
  EXPECT_ERROR_STARTS(make_attention("gqa:kv_heads=0", c, g), "attention: kv_heads=0 must be >= 1 (and divide heads=2)");
  EXPECT_ERROR_STARTS(make_attention("gqa:kv_heads=3", c, g), "attention: kv_heads=3 must divide heads=2");
  EXPECT_ERROR_STARTS(make_attention("gqa:kv_heads=x", c, g),
                      "attention gqa: option kv_heads=x is not a non-negative integer");
  c.dropout = 0.1f;
  EXPECT_ERROR_STARTS(make_attention("linear", c, g),
                      "attention linear: has no attention dropout (linear attention never forms the "
                      "probabilities to drop); --attn-dropout must be 0 for it, got 0.1");
}

TEST(BadInputs, DevicesThatAreNotThere) {
  EXPECT_ERROR_STARTS(Device::parse("tpu"), "device: unknown device 'tpu'; expected cpu, cuda or cuda:N");
  EXPECT_ERROR_STARTS(Device::parse("cuda:-1"), "device: unknown device 'cuda:-1'");
}

TEST(BadInputs, CorpusEmptyBinaryNotUtf8MissingOrAFolder) {
  TempDir dir("corpus");
  const fs::path empty = dir.path / "empty.txt", binary = dir.path / "b.bin", latin = dir.path / "l.txt";
  write_bytes(empty, "");
  write_bytes(binary, std::string("ab\0cd", 5));
  write_bytes(latin, "caf\xe9\n");
  EXPECT_ERROR_STARTS(read_corpus(empty.string()), "data: corpus '" + empty.string() + "' is empty");
  EXPECT_ERROR_STARTS(read_corpus(binary.string()), "data: corpus '" + binary.string() + "' looks binary (NUL byte at 2)");
  EXPECT_ERROR_STARTS(read_corpus(latin.string()),
                      "data: corpus '" + latin.string() + "': invalid UTF-8 at byte 3 (truncated sequence)");
  EXPECT_ERROR_STARTS(read_corpus((dir.path / "no.txt").string()),
                      "data: cannot open '" + (dir.path / "no.txt").string() + "': No such file or directory");
  EXPECT_ERROR_STARTS(read_corpus(dir.path.string()), "data: corpus '" + dir.path.string() +
                                                          "' is a directory, not a regular file; --data expects a text file");
}

// Inputs that would read without end, or block: refused at open, at once.
TEST(BadInputs, CorpusThatIsNotARegularFileOrTooLarge) {
  TempDir dir("endless");
  const fs::path fifo = dir.path / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_ERROR_STARTS(read_corpus("/dev/zero"), "data: corpus '/dev/zero' is a character device, not a regular file; "
                                                "--data expects a text file (save the text to one first");
  // Nobody writes to this pipe: opening it for reading alone would wait forever.
  EXPECT_ERROR_STARTS(read_corpus(fifo.string()), "data: corpus '" + fifo.string() + "' is a pipe (FIFO), not a regular file");
  const fs::path big = dir.path / "big.txt";
  write_bytes(big, std::string(1000, 'a'));
  EXPECT_ERROR_STARTS(read_corpus(big.string(), 999), "data: corpus '" + big.string() +
                                                         "' is 1000 bytes, more than --max-corpus-bytes 999; use a "
                                                         "smaller file, or raise --max-corpus-bytes");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  TrainOptions o = tiny(dir.path);
  o.max_corpus_bytes = 100;  // the corpus is 2880 bytes
  EXPECT_ERROR_STARTS(train(o), "data: corpus '" + o.data + "' is 2880 bytes, more than --max-corpus-bytes 100");
  EXPECT_FALSE(fs::exists(o.out));
  o.max_corpus_bytes = 0;
  EXPECT_ERROR_STARTS(train(o), "train: --max-corpus-bytes must be >= 1, got 0");
}

TEST(BadInputs, BlockLargerThanTheValidationSplit) {
  TempDir dir("block");
  TrainOptions o = tiny(dir.path);
  write_bytes(o.data, corpus_text().substr(0, 170));  // train split 153, val split 17
  o.model.block_size = 20;
  EXPECT_ERROR_STARTS(train(o), "train: --block 20 is larger than the corpus allows (train split 153 tokens, val split 17)");
  EXPECT_FALSE(fs::exists(o.out + "/checkpoint.safetensors"));
}

TEST(BadInputs, OutputFolderThatIsAFile) {
  TempDir dir("out");
  TrainOptions o = tiny(dir.path);
  write_bytes(dir.path / "notes.txt", "mine\n");
  o.out = (dir.path / "notes.txt").string();
  EXPECT_ERROR_STARTS(train(o), "train: --out '" + o.out + "' is a file, expected a folder (the file was left as it was)");
  EXPECT_EQ(read_bytes(dir.path / "notes.txt"), "mine\n");
  EXPECT_ERROR_STARTS(make_output_folder((dir.path / "notes.txt" / "sub").string(), "x: --out"),
                      "x: --out '" + (dir.path / "notes.txt" / "sub").string() + "': cannot create the folder: Not a directory");
}

// One trained run for the checkpoint tests.
class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    o = tiny(dir.path);
    train(o);
    ckpt = (fs::path(o.out) / "checkpoint.safetensors").string();
    before = snapshot(dir.path);
  }
  void expect_unchanged() { EXPECT_TRUE(snapshot(dir.path) == before) << "a file of the run changed"; }
  TempDir dir{"ckpt"};
  TrainOptions o;
  std::string ckpt;
  std::map<std::string, std::string> before;
};

TEST_F(BadCheckpoint, RunFolderWithoutACheckpoint) {
  fs::create_directories(dir.path / "empty_run");
  before = snapshot(dir.path);
  EXPECT_ERROR_STARTS(load_checkpoint(checkpoint_path((dir.path / "empty_run").string())),
                      "checkpoint: run folder '" + (dir.path / "empty_run").string() + "' has no checkpoint.safetensors");
  expect_unchanged();
}

TEST_F(BadCheckpoint, TruncatedAtEveryTenthOfItsLength) {
  const std::string bytes = read_bytes(ckpt);
  const fs::path cut = dir.path / "cut.safetensors";
  for (int tenth = 0; tenth < 10; ++tenth) {
    write_bytes(cut, bytes.substr(0, bytes.size() * tenth / 10));
    EXPECT_ERROR_STARTS(load_checkpoint(cut.string()), "safetensors: " + cut.string() + ": ");
  }
  fs::remove(cut);
  expect_unchanged();
}

TEST_F(BadCheckpoint, TamperedFormatTag) {
  std::string bytes = read_bytes(ckpt);
  bytes.replace(bytes.find("attnlab-checkpoint-1"), 20, "attnlab-checkpoint-9");
  const fs::path bad = dir.path / "bad.safetensors";
  write_bytes(bad, bytes);
  EXPECT_ERROR_STARTS(load_checkpoint(bad.string()), "checkpoint '" + bad.string() +
                                                         "': format is 'attnlab-checkpoint-9', expected 'attnlab-checkpoint-1'");
}

TEST_F(BadCheckpoint, WeightsOfAnotherModelShape) {
  const CheckpointData d = load_checkpoint(ckpt);
  GPTConfig other = GPTConfig::from_json(d.model_config);
  other.embd = 32;
  GPT model(other, 0);
  EXPECT_ERROR_STARTS(load_model_weights(model, d, ckpt),
                      "checkpoint '" + ckpt + "': its tensors do not fit the model its metadata describes (load_state_dict: '");
  EXPECT_ERROR_HAS(load_model_weights(model, d, ckpt), "has shape [");
  other.embd = 16;
  other.layers = 2;
  GPT deeper(other, 0);
  EXPECT_ERROR_HAS(load_model_weights(deeper, d, ckpt), "'blocks.1.");
  expect_unchanged();
}

TEST_F(BadCheckpoint, ResumeWithAnotherShapeNamesTheOption) {
  TrainOptions again = o;
  again.resume = o.out;
  again.steps = 8;
  again.model.layers = 3;
  again.given = {"--data", "--layers", "--steps"};
  EXPECT_ERROR_STARTS(train(again), "train: --layers 3 differs from the run being resumed ('" + ckpt + "' has 1)");
  expect_unchanged();
  // The optimizer's betas (floats: shown as typed, not as 0.9900000095367432)
  // and the model's bias are stored options like the others.
  again = o;
  again.resume = o.out;
  again.beta2 = 0.99f;
  again.given = {"--beta2"};
  EXPECT_ERROR_STARTS(train(again), "train: --beta2 0.99 differs from the run being resumed ('" + ckpt + "' has 0.95)");
  expect_unchanged();
  again = o;
  again.resume = o.out;
  again.model.bias = false;
  again.given = {"--bias"};
  EXPECT_ERROR_STARTS(train(again), "train: --bias false differs from the run being resumed ('" + ckpt + "' has true)");
  expect_unchanged();
  again = o;
  again.resume = o.out;
  again.steps = 8;
  again.model.layers = 3;
  // Without the option named (a library caller), the stored run decides.
  again.given.clear();
  EXPECT_NO_THROW(train(again));
}

TEST_F(BadCheckpoint, FullDiskWhileSavingKeepsTheOldCheckpoint) {
  // RLIMIT_FSIZE makes the write fail part way (EFBIG, like a full disk's
  // ENOSPC). SIGXFSZ would kill the process: ignore it while the limit holds.
  const CheckpointData d = load_checkpoint(ckpt);
  CheckpointData bigger = d;
  bigger.step = 99;
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit small = old;
  small.rlim_cur = 4096;
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string msg = error_of([&] { save_checkpoint(ckpt, bigger); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(msg.rfind("safetensors: cannot write '" + ckpt + ".tmp-", 0), 0u) << msg;
  EXPECT_NE(msg.find("File too large (saving '" + ckpt + "'; any existing file there was left as it was)"),
            std::string::npos) << msg;
  expect_unchanged();  // the old checkpoint, and no temporary file left behind
  EXPECT_EQ(load_checkpoint(ckpt).step, d.step);
}

TEST_F(BadCheckpoint, FullDiskWhileWritingATextFile) {
  // A file-size limit below the text's size makes the write fail part way
  // (EFBIG, as a full disk's ENOSPC would), as in the checkpoint test above.
  const fs::path config = fs::path(o.out) / "config.json";
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit small = old;
  small.rlim_cur = 4096;
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string msg = error_of([&] { write_text_atomically(config.string(), std::string(10000, ' ') + "{}\n"); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  // The temporary name is unique: "<path>.tmp-<pid>-<n>".
  const std::string tmp = config.string() + ".tmp-" + std::to_string(::getpid()) + "-";
  EXPECT_EQ(msg.rfind("writing '" + tmp, 0), 0u) << msg;
  EXPECT_NE(msg.find("' failed: File too large; '" + config.string() + "' was left as it was"), std::string::npos) << msg;
  expect_unchanged();  // config.json as it was, and no temporary file left behind
}

TEST_F(BadCheckpoint, SamplingOptionsNameTheValue) {
  const CheckpointData d = load_checkpoint(ckpt);
  GPT model(GPTConfig::from_json(d.model_config), 0);
  load_model_weights(model, d, ckpt);
  Generator gen(0);
  SampleOptions so;
  so.tokens = 2;
  so.temperature = std::numeric_limits<float>::infinity();
  EXPECT_ERROR_STARTS(generate(model, {0}, so, gen),
                      "sample: --temperature must be a finite number >= 0 (0 = greedy), got inf");
  so.temperature = 1;
  so.top_k = -1;
  EXPECT_ERROR_STARTS(generate(model, {0}, so, gen), "sample: --top-k must be >= 0, got -1");
  so.top_k = 0;
  EXPECT_ERROR_STARTS(generate(model, {}, so, gen), "sample: the prompt must contain at least one character");
}
