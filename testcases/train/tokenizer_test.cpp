// Tests for the character tokenizer, the UTF-8 decoder and read_corpus.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/tokenizer.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {

// Runs `f`, expects an attn::Error whose message contains `part`.
template <class F>
void expect_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing: " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << part;
  }
}

// A fresh file in a per-test temp folder, removed with the folder.
class CorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("attnlab_corpus_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  fs::path dir_;
};

}  // namespace

// --- round trips and the vocabulary ---

TEST(Tokenizer, AsciiRoundTrip) {
  const std::string text = "To be, or not to be: that is the question.\n";
  const CharTokenizer tok = CharTokenizer::from_text(text, "hamlet");
  const std::vector<int64_t> ids = tok.encode(text);
  EXPECT_EQ(ids.size(), text.size());
  EXPECT_EQ(tok.decode(ids), text);
}

TEST(Tokenizer, MultiByteRoundTrip) {
  // 2-byte é, 3-byte ’ and —, 4-byte 🐋: each is ONE token.
  const std::string text = "café ’whale’ — 🐋!";
  const CharTokenizer tok = CharTokenizer::from_text(text, "mixed");
  const std::vector<int64_t> ids = tok.encode(text);
  EXPECT_EQ(ids.size(), 17u);  // c a f é ␠ ’ w h a l e ’ ␠ — ␠ 🐋 !
  EXPECT_EQ(text.size(), 27u);  // bytes: 12 ASCII + é 2 + ’ 3 + ’ 3 + — 3 + 🐋 4
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.decode(tok.encode("🐋é")), "🐋é");
}

TEST(Tokenizer, VocabularyIsSortedCodePoints) {
  const CharTokenizer tok = CharTokenizer::from_text("🐋ébaab\n", "v");
  EXPECT_EQ(tok.vocab_size(), 5);  // \n a b é 🐋
  EXPECT_EQ(tok.encode("\nabé🐋"), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(tok.to_json(), R"({"chars":[10,97,98,233,128011],"type":"char"})");
}

TEST(Tokenizer, SameTextSameIds) {
  // Order of appearance does not matter, only the set of characters.
  const CharTokenizer a = CharTokenizer::from_text("abc", "a");
  const CharTokenizer b = CharTokenizer::from_text("cba", "b");
  EXPECT_EQ(a.encode("cab"), b.encode("cab"));
}

TEST(Tokenizer, UnknownCharacterIsNamed) {
  const CharTokenizer tok = CharTokenizer::from_text("hello world", "t");  // 8 characters
  expect_error([&] { tok.encode("heQ"); },
               "tokenizer: character 'Q' (U+0051) at byte 2 is not in the vocabulary of 8 characters");
  // The byte offset counts bytes, not characters: é takes two.
  const CharTokenizer tok2 = CharTokenizer::from_text("éa", "t");
  expect_error([&] { tok2.encode("éa🐋"); }, "character '🐋' (U+1F40B) at byte 3");
  expect_error([&] { tok2.encode("a\t"); }, "character '\\t' (U+0009) at byte 1");
}

TEST(Tokenizer, DecodeRejectsBadIds) {
  const CharTokenizer tok = CharTokenizer::from_text("abc", "t");
  expect_error([&] { tok.decode({0, 3}); },
               "tokenizer: id 3 at position 1 is not in the vocabulary (ids 0..2)");
  expect_error([&] { tok.decode({-1}); }, "tokenizer: id -1 at position 0");
  EXPECT_EQ(tok.decode({}), "");
}

TEST(Tokenizer, EmptyTextHasNoVocabulary) {
  expect_error([] { CharTokenizer::from_text("", "nothing.txt"); },
               "tokenizer: corpus 'nothing.txt' is empty");
}

// --- UTF-8: every class of invalid input, with its byte offset ---

TEST(TokenizerUtf8, ValidEdgesDecode) {
  // The first and last code point of each sequence length, and around the
  // surrogate gap.
  for (char32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFFu, 0x10000u,
                      0x10FFFFu}) {
    std::string s;
    append_utf8(s, cp);
    const std::vector<char32_t> back = decode_utf8(s, "t");
    ASSERT_EQ(back.size(), 1u) << std::hex << static_cast<unsigned>(cp);
    EXPECT_EQ(back[0], cp);
  }
  EXPECT_EQ(decode_utf8("a\xC3\xA9\xE2\x80\x99\xF0\x9F\x90\x8B", "t"),
            (std::vector<char32_t>{'a', 0xE9, 0x2019, 0x1F40B}));
}

TEST(TokenizerUtf8, InvalidClassesRejectedWithOffset) {
  struct Case {
    const char* name;
    std::string bytes;
    int offset;
  };
  const std::vector<Case> cases = {
      {"lone continuation byte", "ab\x80", 2},
      {"overlong 2-byte '/'", "x\xC0\xAF", 1},
      {"overlong 2-byte C1", "\xC1\x81", 0},
      {"overlong 3-byte", "xy\xE0\x80\xAF", 2},
      {"overlong 4-byte", "\xF0\x80\x80\xAF", 0},
      {"surrogate U+D800", "ok\xED\xA0\x80", 2},
      {"surrogate U+DFFF", "\xED\xBF\xBF", 0},
      {"truncated, next byte is ASCII", "a\xC3" "b", 1},
      {"truncated 3-byte at end", "abc\xE2\x82", 3},
      {"truncated 4-byte at end", "\xF0\x9F\x90", 0},
      {"above U+10FFFF", "\xF4\x90\x80\x80", 0},
      {"byte 0xF5", "aa\xF5\x80\x80\x80", 2},
      {"byte 0xFF", "\xFF", 0},
      {"byte 0xFE", "abcd\xFE", 4},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    expect_error([&] { decode_utf8(c.bytes, "corpus 'x.txt'"); },
                 "corpus 'x.txt': invalid UTF-8 at byte " + std::to_string(c.offset));
  }
}

TEST(TokenizerUtf8, FromTextAndEncodeCheckUtf8) {
  expect_error([] { CharTokenizer::from_text("ab\xC3", "x.txt"); },
               "tokenizer: corpus 'x.txt': invalid UTF-8 at byte 2");
  const CharTokenizer tok = CharTokenizer::from_text("abc", "t");
  expect_error([&] { tok.encode("a\xFF"); }, "tokenizer: invalid UTF-8 at byte 1");
}

TEST(TokenizerUtf8, AppendRejectsNonCharacters) {
  std::string s;
  expect_error([&] { append_utf8(s, 0xD800); }, "U+D800 is not a Unicode character");
  expect_error([&] { append_utf8(s, 0x110000); }, "U+110000");
}

// --- JSON, as stored in checkpoints ---

TEST(Tokenizer, JsonRoundTrip) {
  const std::string text = "Call me Ishmael — ’tis 🐋\n";
  const CharTokenizer tok = CharTokenizer::from_text(text, "t");
  const CharTokenizer back = CharTokenizer::from_json(tok.to_json());
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  EXPECT_EQ(back.encode(text), tok.encode(text));
  EXPECT_EQ(back.to_json(), tok.to_json());
  // Ids follow the stored order, whatever it is.
  const CharTokenizer custom = CharTokenizer::from_json(R"({"chars": [98, 97]})");
  EXPECT_EQ(custom.encode("ab"), (std::vector<int64_t>{1, 0}));
}

TEST(Tokenizer, BadJsonRejected) {
  const auto bad = [](const std::string& json, const std::string& part) {
    SCOPED_TRACE(json);
    expect_error([&] { CharTokenizer::from_json(json); }, part);
  };
  bad("{\"chars\": [97,", "tokenizer: metadata is not valid JSON");
  bad("", "tokenizer: metadata is not valid JSON");
  bad("[97, 98]", "must be a JSON object with a \"chars\" array");
  bad("{\"vocab\": [97]}", "must be a JSON object with a \"chars\" array");
  bad("{\"chars\": \"ab\"}", "must be a JSON object with a \"chars\" array");
  bad("{\"chars\": []}", "\"chars\" is empty");
  bad("{\"chars\": [97, -1]}", "\"chars\"[1] = -1 is not a Unicode code point");
  bad("{\"chars\": [1114112]}", "\"chars\"[0] = 1114112 is not a Unicode code point");
  bad("{\"chars\": [55296]}", "\"chars\"[0] = 55296 is not a Unicode code point");
  bad("{\"chars\": [97.5]}", "\"chars\"[0] = 97.5 is not");
  bad("{\"chars\": [\"a\"]}", "\"chars\"[0] = \"a\" is not");
  bad("{\"chars\": [97, 98, 97]}", "\"chars\"[2] = U+0061 appears twice");
  bad("{\"type\": \"bpe\", \"chars\": [97]}", "type \"bpe\" is not \"char\"");
}

// --- read_corpus ---

TEST_F(CorpusTest, ReadsUtf8File) {
  const std::string text = "Whale ahoy — 🐋\nsecond line\n";
  EXPECT_EQ(read_corpus(write("ok.txt", text)), text);
}

TEST_F(CorpusTest, MissingFile) {
  const std::string p = (dir_ / "nope.txt").string();
  expect_error([&] { read_corpus(p); },
               "data: cannot open '" + p + "': No such file or directory");
}

TEST_F(CorpusTest, DirectoryIsNotACorpus) {
  const std::string p = dir_.string();
  expect_error([&] { read_corpus(p); }, "data: corpus '" + p + "' is a directory, not a regular file; --data expects a text file");
}

TEST_F(CorpusTest, ReadsAFileUpToTheLimitAndNoMore) {
  const std::string p = write("ten.txt", "0123456789");
  EXPECT_EQ(read_corpus(p, 10), "0123456789");
  expect_error([&] { read_corpus(p, 9); },
               "data: corpus '" + p + "' is 10 bytes, more than --max-corpus-bytes 9; use a smaller file");
}

// The ids of a corpus are 4 bytes each, and the vector holds exactly one
// per character: what training keeps of its text.
TEST(Tokenizer, CorpusIdsAreTheIdsIn32BitsSizedExactly) {
  const std::string text = "a 🐋 é\nbaa";
  const CharTokenizer tok = CharTokenizer::from_text(text, "t");
  const std::vector<int32_t> ids = tok.encode_corpus(text);
  const std::vector<int64_t> wide = tok.encode(text);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), wide);
  EXPECT_EQ(ids.size(), decode_utf8(text, "t").size());
  EXPECT_EQ(ids.capacity(), ids.size());
}

TEST_F(CorpusTest, EmptyFile) {
  const std::string p = write("empty.txt", "");
  expect_error([&] { read_corpus(p); }, "data: corpus '" + p + "' is empty");
}

TEST_F(CorpusTest, BinaryFile) {
  const std::string p = write("model.bin", std::string("0123456789abcdefg\0rest", 22));
  expect_error([&] { read_corpus(p); }, "data: corpus '" + p + "' looks binary (NUL byte at 17)");
}

TEST_F(CorpusTest, InvalidUtf8) {
  // Latin-1 'é' (one byte 0xE9) is the classic wrongly encoded file.
  const std::string p = write("latin1.txt", "caf\xE9 au lait");
  expect_error([&] { read_corpus(p); }, "data: corpus '" + p + "': invalid UTF-8 at byte 3");
}
