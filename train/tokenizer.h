// Turning text into token ids and back, one Unicode character per token.
//
// The char-level language models read a corpus as a sequence of code points
// (not bytes: 'é' is one token, not two). The vocabulary is the set of
// distinct code points in the corpus, sorted, so the same text always gives
// the same ids. It is stored as JSON in the checkpoint so that sampling later
// uses exactly the ids the model was trained with.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace attn {

// Decodes UTF-8 into code points. Invalid input (overlong forms, surrogates,
// truncated sequences, bytes that never occur in UTF-8) is an error naming
// `what` and the byte offset: "corpus 'x.txt': invalid UTF-8 at byte 1234".
std::vector<char32_t> decode_utf8(const std::string& utf8, const std::string& what);
// Appends the UTF-8 encoding of one code point to `out`.
void append_utf8(std::string& out, char32_t cp);

// --max-corpus-bytes' default: 256 MiB, about 1.3 GB of memory while
// training (a corpus byte costs at most 5 bytes at the peak, README "Memory").
constexpr int64_t kDefaultMaxCorpusBytes = int64_t{256} << 20;

// Reads a whole UTF-8 text file, refusing missing, empty, binary (a NUL
// byte) and invalid UTF-8 files with a message that says which. The corpus
// must be a regular file of at most `max_bytes` bytes (--max-corpus-bytes),
// checked at open, before anything is read: /dev/zero, a pipe or a folder
// would otherwise be read without end, or fail late and vaguely.
std::string read_corpus(const std::string& path, int64_t max_bytes = kDefaultMaxCorpusBytes);

class CharTokenizer {
 public:
  // Builds the vocabulary from every character of `utf8`. `source` names the
  // text in error messages (usually the corpus path).
  static CharTokenizer from_text(const std::string& utf8, const std::string& source);
  // The inverse of to_json(); checks what it reads.
  static CharTokenizer from_json(const std::string& json);

  std::vector<int64_t> encode(const std::string& utf8) const;
  // The same ids, 4 bytes each rather than 8, in a vector sized exactly:
  // for a whole corpus, whose ids are what training keeps in memory.
  std::vector<int32_t> encode_corpus(const std::string& utf8) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t vocab_size() const { return static_cast<int64_t>(chars_.size()); }
  // {"type": "char", "chars": [10, 32, 33, ...]} (code points, by id).
  std::string to_json() const;

 private:
  explicit CharTokenizer(std::vector<char32_t> chars);
  template <class Id>
  void encode_into(const std::string& utf8, std::vector<Id>& ids) const;
  std::vector<char32_t> chars_;                  // id -> code point
  std::unordered_map<char32_t, int64_t> ids_;    // code point -> id
};

}  // namespace attn
