// Tests for the safetensors reader and writer: round trips, the exact bytes
// written, atomic saves, and one test per check the loader makes (each bad
// file is built by hand, byte by byte).
#include "train/safetensors.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "testcases/error_of.h"

using namespace attn;
namespace fs = std::filesystem;
namespace st = attn::safetensors;

namespace {

// A fresh folder per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           ("attn_safetensors_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// n as 8 little-endian bytes.
std::string le64(uint64_t n) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

template <class T>
std::string raw(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

// A whole file: length, header, data.
std::string file_of(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

std::string parse_error(const std::string& bytes) {
  return error_of([&] { st::parse(bytes, "bad.safetensors"); });
}

// Files in `dir` whose name has ".tmp-" (leftover temporary files).
int temp_files_in(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) ++n;
  return n;
}

// A valid file with every dtype, an empty tensor and metadata.
std::string sample_file(const TempDir& dir) {
  const std::string path = dir / "sample.safetensors";
  st::save(path,
           {{"wte", from_vector({1, 2, 3, 4, 5, 6}, {2, 3})},
            {"ids", from_ints({7, -8, 9}, {3})},
            {"mask", from_bools({true, false, true, true}, {2, 2})},
            {"none", from_vector({}, {0, 4})}},
           {{"step", "12"}, {"format", "test"}});
  return read_bytes(path);
}

}  // namespace

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

TEST(Safetensors, RoundTripsEveryDtypeAndShape) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  st::save(path, {{"f", from_vector({1.5f, -2, 3e-8f, 1e30f, 0, -0.25f}, {2, 3})},
                  {"i", from_ints({1, -1, INT64_MAX, INT64_MIN}, {4})},
                  {"b", from_bools({true, false, false, true, true, false}, {3, 1, 2})},
                  {"scalar", from_vector({3.5f}, {})},
                  {"empty_f", from_vector({}, {0, 3})},
                  {"empty_i", from_ints({}, {2, 0})},
                  {"empty_b", from_bools({}, {0})}});
  const st::Checkpoint c = st::load(path);
  ASSERT_EQ(c.tensors.size(), 7u);
  EXPECT_TRUE(c.metadata.empty());

  const Tensor& f = c.tensors.at("f");
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.shape(), (Shape{2, 3}));
  EXPECT_EQ(f.to_vector(), (std::vector<float>{1.5f, -2, 3e-8f, 1e30f, 0, -0.25f}));

  const Tensor& i = c.tensors.at("i");
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EQ(i.to_int_vector(), (std::vector<int64_t>{1, -1, INT64_MAX, INT64_MIN}));

  const Tensor& b = c.tensors.at("b");
  EXPECT_EQ(b.dtype(), DType::Bool);
  EXPECT_EQ(b.shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(b.to_int_vector(), (std::vector<int64_t>{1, 0, 0, 1, 1, 0}));

  const Tensor& s = c.tensors.at("scalar");
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 3.5f);

  EXPECT_EQ(c.tensors.at("empty_f").shape(), (Shape{0, 3}));
  EXPECT_EQ(c.tensors.at("empty_i").shape(), (Shape{2, 0}));
  EXPECT_EQ(c.tensors.at("empty_i").dtype(), DType::Int64);
  EXPECT_EQ(c.tensors.at("empty_b").shape(), (Shape{0}));
  EXPECT_EQ(c.tensors.at("empty_b").dtype(), DType::Bool);
  for (const auto& [name, t] : c.tensors) {
    EXPECT_TRUE(t.device().is_cpu()) << name;
    EXPECT_TRUE(t.is_contiguous()) << name;
  }
}

// BF16, as other tools write it: two bytes per value, little-endian, the
// top half of the float32 (1.0 = 0x3f80, -2.0 = 0xc000, 0.5 = 0x3f00).
TEST(Safetensors, ReadsAndWritesBFloat16) {
  const st::Checkpoint c = st::parse(file_of(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}})",
                                             std::string("\x80\x3f\x00\xc0\x00\x3f", 6)),
                                     "bf16.safetensors");
  const Tensor& w = c.tensors.at("w");
  EXPECT_EQ(w.dtype(), DType::BFloat16);
  EXPECT_EQ(w.to_vector(), (std::vector<float>{1.0f, -2.0f, 0.5f}));
  TempDir dir;
  const std::string path = dir / "b.safetensors";
  const Tensor x = from_vector({1.0f, 3.14159f, -1e-3f, 65504.0f}, {2, 2});
  st::save(path, {{"x", x.to(DType::BFloat16)}, {"f", x}});
  const st::Checkpoint back = st::load(path);
  EXPECT_EQ(back.tensors.at("x").dtype(), DType::BFloat16);
  EXPECT_EQ(back.tensors.at("x").to_vector(), x.to(DType::BFloat16).to_vector());
  EXPECT_EQ(back.tensors.at("f").to_vector(), x.to_vector());
  // The header names it as other readers expect.
  EXPECT_NE(read_bytes(path).find(R"("dtype":"BF16")"), std::string::npos);
}

TEST(Safetensors, SavesNonContiguousTensorsInRowMajorOrder) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  const Tensor base = from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  const Tensor transposed = make_view(base, {3, 2}, {1, 3}, 0);  // base.T
  const Tensor column = make_view(base, {2}, {3}, 1);             // base[:, 1]
  const Tensor ints = make_view(from_ints({0, 1, 2, 3}, {2, 2}), {2, 2}, {1, 2}, 0);
  ASSERT_FALSE(transposed.is_contiguous());
  ASSERT_FALSE(column.is_contiguous());
  st::save(path, {{"t", transposed}, {"c", column}, {"i", ints}});
  const st::Checkpoint c = st::load(path);
  EXPECT_EQ(c.tensors.at("t").shape(), (Shape{3, 2}));
  EXPECT_EQ(c.tensors.at("t").to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(c.tensors.at("c").to_vector(), (std::vector<float>{1, 4}));
  EXPECT_EQ(c.tensors.at("i").to_int_vector(), (std::vector<int64_t>{0, 2, 1, 3}));
}

TEST(Safetensors, SavesTensorsFromTheGpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  st::save(path, {{"g", from_vector({1, 2, 3}, {3}, Device::cuda())}});
  EXPECT_EQ(st::load(path).tensors.at("g").to_vector(), (std::vector<float>{1, 2, 3}));
}

TEST(Safetensors, RoundTripsMetadata) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  const std::map<std::string, std::string> metadata = {
      {"step", "100"},
      {"model_config", R"({"n_layer": 2, "name": "a \"quoted\" word"})"},
      {"multi line", "one\ntwo\tthree"},
      {"unicode", "héllo wörld ✓"},
      {"empty", ""}};
  st::save(path, {{"x", from_vector({1}, {1})}}, metadata);
  EXPECT_EQ(st::load(path).metadata, metadata);
}

TEST(Safetensors, MetadataOnlyAndEmptyFiles) {
  TempDir dir;
  st::save(dir / "m.safetensors", {}, {{"k", "v"}});
  const st::Checkpoint m = st::load(dir / "m.safetensors");
  EXPECT_TRUE(m.tensors.empty());
  EXPECT_EQ(m.metadata.at("k"), "v");

  st::save(dir / "e.safetensors", {});
  EXPECT_EQ(read_bytes(dir / "e.safetensors"), file_of("{}      "));  // padded to 8
  EXPECT_TRUE(st::load(dir / "e.safetensors").tensors.empty());
}

// ---------------------------------------------------------------------------
// The bytes written
// ---------------------------------------------------------------------------

TEST(Safetensors, WritesExactlyTheExpectedBytes) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  st::save(path, {{"w", from_vector({1, 2, 3, 4}, {2, 2})}}, {{"k", "v"}});

  // 82 bytes of JSON, padded with 6 spaces to 88, a multiple of 8.
  std::string header =
      R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  ASSERT_EQ(header.size(), 82u);
  header += "      ";
  std::string expected = le64(88) + header;
  for (float v : {1.0f, 2.0f, 3.0f, 4.0f}) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) expected += static_cast<char>((bits >> (8 * i)) & 0xFF);
  }
  EXPECT_EQ(read_bytes(path), expected);
}

TEST(Safetensors, ListsTensorsByNameAndAlignsTheirData) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  st::save(path, {{"c", from_bools({true, false, true}, {3})},
                  {"a", from_vector({1}, {1})},
                  {"b", from_ints({5}, {1})}});
  // The header lists a, b, c; the data holds the largest elements first
  // (b: I64, a: F32, c: BOOL) so each starts at a multiple of its size.
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
      R"("b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("c":{"dtype":"BOOL","shape":[3],"data_offsets":[12,15]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const std::string expected =
      file_of(padded, raw<int64_t>({5}) + raw<float>({1}) + std::string("\1\0\1", 3));
  EXPECT_EQ(read_bytes(path), expected);
}

TEST(Safetensors, OutputIsDeterministic) {
  TempDir dir;
  const Tensor a = from_vector({1, 2, 3}, {3});
  const Tensor b = from_ints({4, 5}, {2});
  const std::map<std::string, std::string> meta = {{"z", "1"}, {"a", "2"}};
  st::save(dir / "1.safetensors", {{"a", a}, {"b", b}}, meta);
  st::save(dir / "2.safetensors", {{"a", a}, {"b", b}}, meta);
  st::save(dir / "3.safetensors", {{"b", b}, {"a", a}}, meta);  // input order does not matter
  EXPECT_EQ(read_bytes(dir / "1.safetensors"), read_bytes(dir / "2.safetensors"));
  EXPECT_EQ(read_bytes(dir / "1.safetensors"), read_bytes(dir / "3.safetensors"));
}

TEST(Safetensors, OverwritesAnExistingFile) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  st::save(path, {{"x", from_vector({1}, {1})}});
  st::save(path, {{"y", from_vector({2, 3}, {2})}});
  const st::Checkpoint c = st::load(path);
  EXPECT_EQ(c.tensors.count("x"), 0u);
  EXPECT_EQ(c.tensors.at("y").to_vector(), (std::vector<float>{2, 3}));
  EXPECT_EQ(temp_files_in(dir.path), 0);
}

// ---------------------------------------------------------------------------
// Saving: bad inputs and failures leave the old file alone
// ---------------------------------------------------------------------------

TEST(Safetensors, SaveRejectsBadNames) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  const Tensor t = from_vector({1}, {1});
  EXPECT_NE(error_of([&] { st::save(path, {{"a", t}, {"", t}}); }).find("tensor #1: its name is empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] { st::save(path, {{"a", t}, {"a", t}}); }).find("two tensors named 'a'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { st::save(path, {{"__metadata__", t}}); }).find("reserves that name"),
            std::string::npos);
  EXPECT_NE(error_of([&] { st::save(path, {{"a\xff", t}}); }).find("not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { st::save(path, {{"a", Tensor()}}); }).find("tensor 'a': it is undefined"),
            std::string::npos);
  EXPECT_NE(error_of([&] { st::save(path, {{"a", t}}, {{"k", "\xc3"}}); }).find("metadata entry 'k'"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { st::save("", {{"a", t}}); }), "safetensors: cannot save: the path is empty");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(temp_files_in(dir.path), 0);
}

TEST(Safetensors, BadInputKeepsThePreviousFile) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  st::save(path, {{"x", from_vector({1}, {1})}});
  const std::string before = read_bytes(path);
  const Tensor t = from_vector({2}, {1});
  EXPECT_THROW(st::save(path, {{"a", t}, {"a", t}}), Error);
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(temp_files_in(dir.path), 0);
}

TEST(Safetensors, SaveIntoMissingFolderFails) {
  TempDir dir;
  const std::string path = dir / "no/such/folder/t.safetensors";
  const std::string e = error_of([&] { st::save(path, {{"x", from_vector({1}, {1})}}); });
  EXPECT_NE(e.find("safetensors: cannot create '" + path + ".tmp-"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
  EXPECT_NE(e.find("saving '" + path + "'"), std::string::npos) << e;
  EXPECT_EQ(temp_files_in(dir.path), 0);
}

TEST(Safetensors, SaveOverAFolderFailsAndCleansUp) {
  TempDir dir;
  const std::string path = dir / "ckpt";
  fs::create_directory(path);
  write_bytes(dir / "ckpt/keep.txt", "precious");
  const std::string e = error_of([&] { st::save(path, {{"x", from_vector({1}, {1})}}); });
  EXPECT_NE(e.find("safetensors: cannot rename '" + path + ".tmp-"), std::string::npos) << e;
  EXPECT_NE(e.find("to '" + path + "'"), std::string::npos) << e;
  EXPECT_TRUE(fs::is_directory(path));
  EXPECT_EQ(read_bytes(dir / "ckpt/keep.txt"), "precious");
  EXPECT_EQ(temp_files_in(dir.path), 0);
}

// A full disk, simulated with a file size limit: write() fails half way
// through (EFBIG instead of ENOSPC), exactly where a full disk would.
TEST(Safetensors, FailedWriteKeepsThePreviousFile) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  st::save(path, {{"old", from_vector({1, 2, 3}, {3})}});
  const std::string before = read_bytes(path);

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit small = saved;
  small.rlim_cur = 4096;
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // else the kernel kills us
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string e =
      error_of([&] { st::save(path, {{"new", zeros({10000})}}); });  // 40 kB > 4 kB
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_NE(e.find("safetensors: cannot write '" + path + ".tmp-"), std::string::npos) << e;
  EXPECT_NE(e.find("File too large"), std::string::npos) << e;
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(st::load(path).tensors.at("old").to_vector(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(temp_files_in(dir.path), 0);
}

// ---------------------------------------------------------------------------
// Loading: the file itself
// ---------------------------------------------------------------------------

TEST(Safetensors, MissingFile) {
  TempDir dir;
  const std::string path = dir / "nope.safetensors";
  EXPECT_EQ(error_of([&] { st::load(path); }),
            "safetensors: cannot open '" + path + "': No such file or directory");
}

TEST(Safetensors, LoadingAFolderFails) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { st::load(dir.path.string()); }),
            "safetensors: cannot open '" + dir.path.string() + "': Is a directory");
}

TEST(Safetensors, LoadNamesThePathInErrors) {
  TempDir dir;
  const std::string path = dir / "short.safetensors";
  write_bytes(path, "abc");
  EXPECT_EQ(error_of([&] { st::load(path); }),
            "safetensors: " + path +
                ": file is 3 bytes long, too short for the 8-byte header length that starts every "
                "safetensors file");
}

// ---------------------------------------------------------------------------
// Loading: one test per check, each on hand-built bytes
// ---------------------------------------------------------------------------

TEST(SafetensorsCheck, FileShorterThan8Bytes) {
  EXPECT_NE(parse_error("").find("safetensors: bad.safetensors: file is 0 bytes long"), std::string::npos);
  EXPECT_NE(parse_error(std::string(7, '\0')).find("file is 7 bytes long"), std::string::npos);
}

TEST(SafetensorsCheck, HeaderLongerThanTheFile) {
  EXPECT_EQ(parse_error(le64(100) + "{}"),
            "safetensors: bad.safetensors: header length is 100 bytes but only 2 bytes follow the "
            "length field (the file is truncated)");
  EXPECT_NE(parse_error(le64(UINT64_MAX)).find("header length is 18446744073709551615 bytes"),
            std::string::npos);
}

TEST(SafetensorsCheck, HeaderLargerThan100MB) {
  EXPECT_NE(parse_error(le64(100'000'001) + "{}").find("more than the limit of 100000000"),
            std::string::npos);
}

TEST(SafetensorsCheck, EmptyHeader) {
  EXPECT_NE(parse_error(le64(0)).find("header is empty"), std::string::npos);
}

TEST(SafetensorsCheck, InvalidJson) {
  EXPECT_NE(parse_error(file_of("{abc}")).find("header is not valid JSON: parse error at line 1"),
            std::string::npos);
  EXPECT_NE(parse_error(file_of(R"({"a":{}} trailing)")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(file_of("{\"\xff\":{}}")).find("not valid JSON"), std::string::npos);  // bad UTF-8
  EXPECT_NE(parse_error(file_of("{\"a\"")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(file_of(R"({"a":1e999})")).find("not valid JSON: number overflow"),
            std::string::npos);
}

TEST(SafetensorsCheck, HeaderNotAnObject) {
  EXPECT_EQ(parse_error(file_of("[1, 2]")),
            "safetensors: bad.safetensors: header must be a JSON object starting with '{', but its "
            "first byte is '['");
  EXPECT_NE(parse_error(file_of(" {}")).find("first byte is ' '"), std::string::npos);
  EXPECT_NE(parse_error(file_of("\n{}")).find("first byte is '\\x0a'"), std::string::npos);
}

TEST(SafetensorsCheck, DuplicateTensorName) {
  const std::string e = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  EXPECT_NE(parse_error(file_of(R"({"a":)" + e + R"(,"a":)" + e + "}", raw<float>({1})))
                .find("header names tensor 'a' twice"),
            std::string::npos);
}

TEST(SafetensorsCheck, EntryNotAnObject) {
  EXPECT_EQ(parse_error(file_of(R"({"w":[1,2]})")),
            "safetensors: bad.safetensors: tensor 'w' is [1,2], expected an object with dtype, "
            "shape and data_offsets");
  EXPECT_NE(parse_error(file_of(R"({"w":"F32"})")).find("tensor 'w' is \"F32\""), std::string::npos);
}

TEST(SafetensorsCheck, EmptyTensorName) {
  EXPECT_NE(parse_error(file_of(R"({"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})"))
                .find("a tensor with an empty name"),
            std::string::npos);
}

TEST(SafetensorsCheck, MissingFields) {
  EXPECT_NE(parse_error(file_of(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", raw<float>({1})))
                .find("tensor 'w' has no \"dtype\" field"),
            std::string::npos);
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", raw<float>({1})))
                .find("tensor 'w' has no \"shape\" field"),
            std::string::npos);
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1]}})", raw<float>({1})))
                .find("tensor 'w' has no \"data_offsets\" field"),
            std::string::npos);
}

TEST(SafetensorsCheck, UnknownField) {
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})",
                                raw<float>({1})))
                .find("tensor 'w' has an unknown field 'x'"),
            std::string::npos);
}

TEST(SafetensorsCheck, DtypeNotAString) {
  EXPECT_EQ(parse_error(file_of(R"({"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", raw<float>({1}))),
            "safetensors: bad.safetensors: tensor 'w' has dtype 5, expected a string such as \"F32\"");
}

TEST(SafetensorsCheck, UnknownDtype) {
  EXPECT_EQ(parse_error(file_of(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd")),
            "safetensors: bad.safetensors: tensor 'w' has dtype 'F16', which attnlab does not support "
            "(supported: F32, BF16, I64, BOOL)");
}

TEST(SafetensorsCheck, ShapeNotAnArray) {
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", raw<float>({1, 2})))
                .find("tensor 'w' has shape \"2\", expected an array of non-negative integers"),
            std::string::npos);
}

TEST(SafetensorsCheck, NegativeShape) {
  EXPECT_EQ(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,0]}})")),
            "safetensors: bad.safetensors: tensor 'w' has shape [2,-2]: dimension 1 is -2, expected a "
            "non-negative integer");
}

TEST(SafetensorsCheck, NonIntegerShape) {
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,0]}})"))
                .find("dimension 0 is 2.5, expected a non-negative integer"),
            std::string::npos);
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,0]}})"))
                .find("dimension 0 is \"2\""),
            std::string::npos);
  // Past int64 (JSON reads 1e30 as a float, 2^63 as unsigned): not a size either.
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,0]}})"))
                .find("dimension 0 is 9223372036854775808"),
            std::string::npos);
}

TEST(SafetensorsCheck, ShapeWhoseSizeOverflows) {
  // 2^32 * 2^32 elements: the product wraps to 0 in 64 bits.
  EXPECT_EQ(parse_error(file_of(
                R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})")),
            "safetensors: bad.safetensors: tensor 'w' has shape [4294967296,4294967296]: the product "
            "of its sizes overflows 64 bits");
  // 2^31 * 2^31 elements fit, but not their 4-byte size.
  EXPECT_NE(parse_error(file_of(
                R"({"w":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}})"))
                .find("overflows 64 bits"),
            std::string::npos);
  // Refused even with a zero: Tensor would overflow computing numel().
  EXPECT_NE(parse_error(file_of(
                R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})"))
                .find("overflows 64 bits"),
            std::string::npos);
  // A zero makes an empty tensor, however large the other sizes.
  const st::Checkpoint c =
      st::parse(file_of(R"({"w":{"dtype":"F32","shape":[0,4294967296],"data_offsets":[0,0]}})"), "ok");
  EXPECT_EQ(c.tensors.at("w").shape(), (Shape{0, 4294967296}));
}

TEST(SafetensorsCheck, DataOffsetsNotTwoAscendingIntegers) {
  for (const char* offsets : {R"([0])", R"([0,4,8])", R"("0-4")", R"([0,"4"])", R"([-1,4])",
                              R"([0.5,4])", R"([8,4])", R"({"begin":0})"}) {
    const std::string e = parse_error(file_of(
        std::string(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)") + offsets + "}}", raw<float>({1})));
    EXPECT_NE(e.find("tensor 'w' has data_offsets"), std::string::npos) << offsets << ": " << e;
    EXPECT_NE(e.find("expected two non-negative integers [begin, end] with begin <= end"),
              std::string::npos)
        << offsets << ": " << e;
  }
}

TEST(SafetensorsCheck, ByteLengthDoesNotMatchTheShape) {
  EXPECT_EQ(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", raw<float>({1}))),
            "safetensors: bad.safetensors: tensor 'w' has data_offsets [0, 4] (4 bytes) but its shape "
            "[2] of F32 needs 8 bytes");
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,4]}})", raw<float>({1})))
                .find("shape [1] of I64 needs 8 bytes"),
            std::string::npos);
}

TEST(SafetensorsCheck, OffsetsOutsideTheDataBuffer) {
  EXPECT_EQ(parse_error(file_of(R"({"wte":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}})",
                                std::string(256, '\0'))),
            "safetensors: bad.safetensors: tensor 'wte' has data_offsets [0, 400] but the data buffer "
            "has 256 bytes");
  // Offsets near 2^64: begin + length must not wrap around.
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1],)"
                                R"("data_offsets":[18446744073709551612,18446744073709551615]}})",
                                raw<float>({1})))
                .find("(3 bytes) but its shape [1] of F32 needs 4 bytes"),
            std::string::npos);
  EXPECT_NE(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1],)"
                                R"("data_offsets":[18446744073709551611,18446744073709551615]}})",
                                raw<float>({1})))
                .find("but the data buffer has 4 bytes"),
            std::string::npos);
}

TEST(SafetensorsCheck, OverlappingTensors) {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  EXPECT_EQ(parse_error(file_of(header, raw<float>({1, 2, 3}))),
            "safetensors: bad.safetensors: tensors 'a' (data_offsets [0, 8]) and 'b' (data_offsets "
            "[4, 12]) overlap");
  // The same range twice (two names for the same bytes) overlaps too.
  const std::string twice =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_NE(parse_error(file_of(twice, raw<float>({1}))).find("overlap"), std::string::npos);
  // An empty tensor inside another one's bytes.
  const std::string inside =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})";
  EXPECT_NE(parse_error(file_of(inside, raw<float>({1, 2}))).find("overlap"), std::string::npos);
}

TEST(SafetensorsCheck, HolesInTheDataBuffer) {
  const std::string gap =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  EXPECT_EQ(parse_error(file_of(gap, raw<float>({1, 2, 3}))),
            "safetensors: bad.safetensors: bytes [4, 8) of the data buffer belong to no tensor "
            "(between 'a' and 'b')");
  EXPECT_EQ(parse_error(file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                raw<float>({1, 2}))),
            "safetensors: bad.safetensors: bytes [0, 4) of the data buffer belong to no tensor "
            "(before 'a')");
  EXPECT_EQ(parse_error(file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                raw<float>({1}) + "xy")),
            "safetensors: bad.safetensors: bytes [4, 6) at the end of the data buffer belong to no "
            "tensor");
  EXPECT_NE(parse_error(file_of("{}", "junk")).find("bytes [0, 4) at the end"), std::string::npos);
}

TEST(SafetensorsCheck, MetadataNotStringToString) {
  EXPECT_EQ(parse_error(file_of(R"({"__metadata__":["a"]})")),
            "safetensors: bad.safetensors: __metadata__ is [\"a\"], expected an object of string values");
  EXPECT_EQ(parse_error(file_of(R"({"__metadata__":{"step":5}})")),
            "safetensors: bad.safetensors: __metadata__ entry 'step' is 5, expected a string");
  EXPECT_NE(parse_error(file_of(R"({"__metadata__":{"a":{"b":"c"}}})")).find("entry 'a' is an object"),
            std::string::npos);
}

TEST(SafetensorsCheck, BoolBytesMustBe0Or1) {
  EXPECT_EQ(parse_error(file_of(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                std::string("\1\0\2", 3))),
            "safetensors: bad.safetensors: tensor 'm' is BOOL but its byte 2 is 2 (expected 0 or 1)");
}

TEST(SafetensorsCheck, NamesInMessagesStayOnOneLine) {
  const std::string e =
      parse_error(file_of(R"({"a\nb":{"dtype":"X","shape":[0],"data_offsets":[0,0]}})"));
  EXPECT_NE(e.find("tensor 'a\\x0ab' has dtype 'X'"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(SafetensorsCheck, AcceptsFilesFromOtherWriters) {
  // Spaces after the JSON, fields in another order, unsorted data, no
  // alignment: all allowed by the format.
  const std::string header =
      R"({"b": {"shape": [1], "data_offsets": [0, 1], "dtype": "BOOL"},)"
      R"( "a": {"data_offsets": [1, 9], "dtype": "I64", "shape": []}}   )";
  const st::Checkpoint c = st::parse(file_of(header, std::string("\1", 1) + raw<int64_t>({-5})), "ok");
  EXPECT_EQ(c.tensors.at("a").to_int_vector(), (std::vector<int64_t>{-5}));
  EXPECT_EQ(c.tensors.at("b").to_int_vector(), (std::vector<int64_t>{1}));
}

// Written by Hugging Face's Python safetensors 0.8.0 (safetensors.numpy.save_file):
//   {"wte": arange(6).reshape(2, 3) - 2.5 (float32), "ids": [1, -1, 2**63-1, -2**63],
//    "mask": [True, False, True], "scalar": float32 3.5, "empty": zeros((0, 3))}
//   metadata {"step": "7", "u": "héllo ✓"}
TEST(SafetensorsCheck, ReadsAFileWrittenByPythonSafetensors) {
  const std::string hex =
      "58010000000000007b225f5f6d657461646174615f5f223a7b2275223a2268c3a96c6c6f20e29c93222c227374657022"
      "3a2237227d2c22696473223a7b226474797065223a22493634222c227368617065223a5b345d2c22646174615f6f6666"
      "73657473223a5b302c33325d7d2c22656d707479223a7b226474797065223a22463332222c227368617065223a5b302c"
      "335d2c22646174615f6f666673657473223a5b33322c33325d7d2c227363616c6172223a7b226474797065223a224633"
      "32222c227368617065223a5b5d2c22646174615f6f666673657473223a5b33322c33365d7d2c22777465223a7b226474"
      "797065223a22463332222c227368617065223a5b322c335d2c22646174615f6f666673657473223a5b33362c36305d7d"
      "2c226d61736b223a7b226474797065223a22424f4f4c222c227368617065223a5b335d2c22646174615f6f6666736574"
      "73223a5b36302c36335d7d7d202020200100000000000000ffffffffffffffffffffffffffffff7f0000000000000080"
      "00006040000020c00000c0bf000000bf0000003f0000c03f00002040010001";
  std::string bytes;
  for (std::size_t i = 0; i < hex.size(); i += 2)
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  const st::Checkpoint c = st::parse(bytes, "python.safetensors");
  EXPECT_EQ(c.metadata, (std::map<std::string, std::string>{{"step", "7"}, {"u", "héllo ✓"}}));
  ASSERT_EQ(c.tensors.size(), 5u);
  EXPECT_EQ(c.tensors.at("wte").shape(), (Shape{2, 3}));
  EXPECT_EQ(c.tensors.at("wte").to_vector(), (std::vector<float>{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}));
  EXPECT_EQ(c.tensors.at("ids").to_int_vector(), (std::vector<int64_t>{1, -1, INT64_MAX, INT64_MIN}));
  EXPECT_EQ(c.tensors.at("mask").dtype(), DType::Bool);
  EXPECT_EQ(c.tensors.at("mask").to_int_vector(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(c.tensors.at("scalar").dim(), 0);
  EXPECT_EQ(c.tensors.at("scalar").item(), 3.5f);
  EXPECT_EQ(c.tensors.at("empty").shape(), (Shape{0, 3}));
}

// ---------------------------------------------------------------------------
// Hostile files never crash
// ---------------------------------------------------------------------------

TEST(SafetensorsCheck, EveryTruncationIsAnError) {
  TempDir dir;
  const std::string bytes = sample_file(dir);
  ASSERT_NO_THROW(st::parse(bytes, "whole"));
  int not_rejected = 0;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    try {
      st::parse(bytes.substr(0, n), "cut");
      ++not_rejected;
      ADD_FAILURE() << "a file cut to " << n << " of " << bytes.size() << " bytes was accepted";
    } catch (const Error&) {
    }
    if (not_rejected > 5) break;  // one message per broken byte would drown the log
  }
}

TEST(SafetensorsCheck, CorruptedBytesAreAcceptedOrRejectedCleanly) {
  // Every header byte (and the length), replaced by a few values: the file
  // either still parses or gives an attn::Error; nothing else escapes.
  TempDir dir;
  const std::string bytes = sample_file(dir);
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | static_cast<unsigned char>(bytes[i]);
  for (std::size_t pos = 0; pos < 8 + header_bytes; ++pos) {
    for (char c : {'\0', '\xff', '"', '{', '}', '[', ']', ',', ':', '-', '9', ' ', 'e', '.'}) {
      std::string bad = bytes;
      bad[pos] = c;
      try {
        st::parse(bad, "flipped");
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      }
    }
  }
}

TEST(SafetensorsCheck, DeeplyNestedHeaderDoesNotCrash) {
  const int depth = 100000;
  const std::string header = R"({"w":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  EXPECT_NE(parse_error(file_of(header)).find("tensor 'w' is an array of 1 elements"), std::string::npos);
}
