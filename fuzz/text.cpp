// Fuzz target: a corpus file, i.e. any bytes a student may point --data at.
//
// The bytes are written to a file and read by read_corpus (which refuses
// empty, binary and invalid UTF-8 files), decoded, tokenized and cut into
// batches, the way `attnlab train` does it. The same bytes also go to
// CharTokenizer::from_json, which reads the tokenizer stored in a checkpoint.
// Besides "no crash", the target checks the round trips the course relies
// on: decode(encode(text)) == text, and the tokenizer survives to_json.
#include <algorithm>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz/scratch.h"
#include "train/dataset.h"
#include "train/tokenizer.h"

namespace {

const attn_fuzz::Scratch scratch("corpus.txt");

// A broken invariant: stop here so libFuzzer saves the input.
void expect(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);

  try {  // the tokenizer as a checkpoint stores it
    (void)attn::CharTokenizer::from_json(bytes);
  } catch (const attn::Error&) {
  }

  std::string text;
  try {
    text = attn::read_corpus(scratch.write(bytes));
  } catch (const attn::Error&) {
    return 0;  // not a text file: refused with a message
  }
  expect(text == bytes);

  const auto tok = attn::CharTokenizer::from_text(text, "fuzz");
  const std::vector<int64_t> ids = tok.encode(text);
  expect(static_cast<int64_t>(ids.size()) == static_cast<int64_t>(attn::decode_utf8(text, "fuzz").size()));
  expect(tok.decode(ids) == text);
  expect(attn::CharTokenizer::from_json(tok.to_json()).encode(text) == ids);
  const std::vector<int32_t> corpus_ids = tok.encode_corpus(text);  // what training keeps
  expect(std::equal(ids.begin(), ids.end(), corpus_ids.begin(), corpus_ids.end()));

  // Batches as training cuts them: a block the split can hold, or an error.
  try {
    const attn::TextDataset dataset(corpus_ids, 0.1);
    attn::Generator gen(size);
    const int64_t block = 1 + static_cast<int64_t>(size % 8);
    const attn::Batch b = dataset.get_batch(attn::Split::Val, 2, block, gen);
    const std::vector<int64_t> x = b.x.to_int_vector(), y = b.y.to_int_vector();
    for (std::size_t i = 0; i + 1 < x.size(); ++i)
      if ((i + 1) % static_cast<std::size_t>(block) != 0) expect(y[i] == x[i + 1]);
  } catch (const attn::Error&) {
  }
  return 0;
}
