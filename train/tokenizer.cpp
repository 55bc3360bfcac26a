// The character tokenizer, the UTF-8 decoder it stands on, and the corpus reader.
#include "train/tokenizer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/error.h"

namespace attn {

namespace {

constexpr char32_t kMaxCodePoint = 0x10FFFF;

bool is_surrogate(char32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }

[[noreturn]] void bad_utf8(const std::string& what, std::size_t at, const char* why) {
  fail(what, ": invalid UTF-8 at byte ", at, " (", why, ")");
}

// Decodes the code point that starts at s[pos] and moves pos past it.
//
// A UTF-8 sequence is a lead byte saying how long it is (0xxxxxxx: 1,
// 110xxxxx: 2, 1110xxxx: 3, 11110xxx: 4) followed by continuation bytes
// 10xxxxxx. Besides well-formed bytes we also insist on the shortest form
// (an "overlong" 0xC0 0xAF for '/' has let attackers sneak past filters) and
// on real characters (no UTF-16 surrogates, nothing above U+10FFFF).
char32_t next_code_point(const std::string& s, std::size_t& pos, const std::string& what) {
  const std::size_t start = pos;
  const auto lead = static_cast<unsigned char>(s[pos]);
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  int length;
  char32_t cp;
  char32_t smallest;  // below this the sequence is overlong
  if (lead >= 0xC0 && lead <= 0xDF) {
    length = 2, cp = lead & 0x1F, smallest = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, cp = lead & 0x0F, smallest = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, cp = lead & 0x07, smallest = 0x10000;
  } else if (lead < 0xC0) {
    bad_utf8(what, start, "continuation byte without a lead byte");
  } else {
    bad_utf8(what, start, "byte above 0xF4");
  }
  for (int i = 1; i < length; ++i) {
    if (start + i >= s.size()) bad_utf8(what, start, "truncated sequence at end of text");
    const auto next = static_cast<unsigned char>(s[start + i]);
    if ((next & 0xC0) != 0x80) bad_utf8(what, start, "truncated sequence");
    cp = (cp << 6) | (next & 0x3F);
  }
  if (cp < smallest) bad_utf8(what, start, "overlong encoding");
  if (is_surrogate(cp)) bad_utf8(what, start, "UTF-16 surrogate");
  if (cp > kMaxCodePoint) bad_utf8(what, start, "code point above U+10FFFF");
  pos = start + length;
  return cp;
}

// "U+00E9": the standard way to name a code point.
std::string code_point_name(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

// How an error message shows a character: 'é' (U+00E9), or an escape for the
// invisible ones, so that a stray tab does not print as blank space.
std::string describe_char(char32_t cp) {
  std::string shown;
  if (cp == '\n') shown = "\\n";
  else if (cp == '\t') shown = "\\t";
  else if (cp == '\r') shown = "\\r";
  else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) shown = "?";
  else append_utf8(shown, cp);
  return "'" + shown + "' (" + code_point_name(cp) + ")";
}

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
  check(cp <= kMaxCodePoint && !is_surrogate(cp), "utf8: ", code_point_name(cp),
        " is not a Unicode character");
  auto put = [&](unsigned v) { out.push_back(static_cast<char>(v)); };
  if (cp < 0x80) {
    put(cp);
  } else if (cp < 0x800) {
    put(0xC0 | (cp >> 6));
    put(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    put(0xE0 | (cp >> 12));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  } else {
    put(0xF0 | (cp >> 18));
    put(0x80 | ((cp >> 12) & 0x3F));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  }
}

std::vector<char32_t> decode_utf8(const std::string& utf8, const std::string& what) {
  std::vector<char32_t> out;
  out.reserve(utf8.size());
  for (std::size_t pos = 0; pos < utf8.size();) out.push_back(next_code_point(utf8, pos, what));
  return out;
}

namespace {

// What a path is, when it is not a regular file: for the message.
const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a pipe (FIFO)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Checks that `text` is UTF-8 without keeping the code points: a decoded
// copy would cost 4 bytes per corpus byte.
void check_utf8(const std::string& text, const std::string& what) {
  for (std::size_t pos = 0; pos < text.size();) next_code_point(text, pos, what);
}

}  // namespace

std::string read_corpus(const std::string& path, int64_t max_bytes) {
  // O_NONBLOCK: opening a pipe that nobody writes to would otherwise wait
  // for a writer forever, before the check below could refuse it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail("data: cannot open '", path, "': ", std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("data: cannot read '", path, "': ", std::strerror(errno));
  check(S_ISREG(st.st_mode), "data: corpus '", path, "' is ", kind_of(st.st_mode),
        ", not a regular file; --data expects a text file (save the text to one first, e.g. zcat corpus.gz > "
        "corpus.txt)");
  check(st.st_size <= max_bytes, "data: corpus '", path, "' is ", st.st_size, " bytes, more than --max-corpus-bytes ",
        max_bytes, "; use a smaller file, or raise --max-corpus-bytes (training holds about 5 bytes of memory "
        "per corpus byte)");

  // Sized once from the file's length: growing a string while reading would
  // briefly hold up to three times the text.
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("data: cannot read '", path, "': ", std::strerror(errno));
    if (n == 0) break;  // the file shrank while we read it: keep what is there
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);

  check(!text.empty(), "data: corpus '", path, "' is empty");
  // Text files never contain NUL; binary ones (images, archives) almost always do.
  const std::size_t nul = text.find('\0');
  check(nul == std::string::npos, "data: corpus '", path, "' looks binary (NUL byte at ", nul, ")");
  check_utf8(text, "data: corpus '" + path + "'");
  return text;
}

CharTokenizer::CharTokenizer(std::vector<char32_t> chars) : chars_(std::move(chars)) {
  for (std::size_t id = 0; id < chars_.size(); ++id) ids_[chars_[id]] = static_cast<int64_t>(id);
}

CharTokenizer CharTokenizer::from_text(const std::string& utf8, const std::string& source) {
  check(!utf8.empty(), "tokenizer: corpus '", source, "' is empty, so there is no vocabulary");
  // One bit per possible code point (136 KiB) marks the ones that occur;
  // read in order, they come out sorted, so the same text always gives the
  // same ids.
  std::vector<bool> seen(kMaxCodePoint + 1);
  const std::string what = "tokenizer: corpus '" + source + "'";
  for (std::size_t pos = 0; pos < utf8.size();) seen[next_code_point(utf8, pos, what)] = true;
  std::vector<char32_t> chars;
  for (char32_t cp = 0; cp <= kMaxCodePoint; ++cp)
    if (seen[cp]) chars.push_back(cp);
  return CharTokenizer(std::move(chars));
}

template <class Id>
void CharTokenizer::encode_into(const std::string& utf8, std::vector<Id>& ids) const {
  for (std::size_t pos = 0; pos < utf8.size();) {
    const std::size_t at = pos;
    const char32_t cp = next_code_point(utf8, pos, "tokenizer");
    const auto it = ids_.find(cp);
    if (it == ids_.end()) {
      fail("tokenizer: character ", describe_char(cp), " at byte ", at,
           " is not in the vocabulary of ", vocab_size(), " characters");
    }
    ids.push_back(static_cast<Id>(it->second));
  }
}

std::vector<int64_t> CharTokenizer::encode(const std::string& utf8) const {
  std::vector<int64_t> ids;
  ids.reserve(utf8.size());
  encode_into(utf8, ids);
  return ids;
}

std::vector<int32_t> CharTokenizer::encode_corpus(const std::string& utf8) const {
  // One id per character: every byte that is not a continuation byte
  // (10xxxxxx) starts one. Counting first sizes the vector exactly.
  const auto characters = static_cast<std::size_t>(
      std::count_if(utf8.begin(), utf8.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  std::vector<int32_t> ids;
  ids.reserve(characters);
  encode_into(utf8, ids);
  return ids;
}

std::string CharTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    check(ids[i] >= 0 && ids[i] < vocab_size(), "tokenizer: id ", ids[i], " at position ", i,
          " is not in the vocabulary (ids 0..", vocab_size() - 1, ")");
    append_utf8(out, chars_[static_cast<std::size_t>(ids[i])]);
  }
  return out;
}

std::string CharTokenizer::to_json() const {
  // Code points as numbers rather than a string: nothing to escape, and
  // every id is visible when a student opens the checkpoint metadata.
  nlohmann::json j;
  j["type"] = "char";
  j["chars"] = nlohmann::json::array();
  for (char32_t cp : chars_) j["chars"].push_back(static_cast<uint32_t>(cp));
  return j.dump();
}

CharTokenizer CharTokenizer::from_json(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  check(!j.is_discarded(), "tokenizer: metadata is not valid JSON: '", text.substr(0, 80), "'");
  check(j.is_object() && j.contains("chars") && j["chars"].is_array(),
        "tokenizer: metadata must be a JSON object with a \"chars\" array, got ",
        j.dump().substr(0, 80));
  if (j.contains("type")) {
    check(j["type"] == "char", "tokenizer: metadata type ", j["type"].dump(), " is not \"char\"");
  }
  const nlohmann::json& list = j["chars"];
  check(!list.empty(), "tokenizer: metadata \"chars\" is empty; a vocabulary needs a character");
  std::vector<char32_t> chars;
  std::set<char32_t> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& v = list[i];
    const bool in_range = v.is_number_unsigned() && v.get<uint64_t>() <= kMaxCodePoint &&
                          !is_surrogate(static_cast<char32_t>(v.get<uint64_t>()));
    check(in_range, "tokenizer: metadata \"chars\"[", i, "] = ", v.dump(),
          " is not a Unicode code point (an integer in 0..1114111, not a surrogate)");
    const auto cp = static_cast<char32_t>(v.get<uint64_t>());
    check(seen.insert(cp).second, "tokenizer: metadata \"chars\"[", i, "] = ", code_point_name(cp),
          " appears twice; every character needs one id");
    chars.push_back(cp);
  }
  return CharTokenizer(std::move(chars));
}

}  // namespace attn
