#include "megalith/model/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace megalith {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / fmt::format("megalith_{}_{}_{}_{}", info->test_suite_name(),
                                                    info->name(), ::getpid(), counter++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A raw safetensors file: 8-byte little-endian header length, header, data.
std::string raw_file(const std::string& header, const std::string& data, uint64_t header_len) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((header_len >> (8 * i)) & 0xff);
  return out + header + data;
}
std::string raw_file(const std::string& header, const std::string& data = "") {
  return raw_file(header, data, header.size());
}

// A tensor whose element i is element i of `bits`.
template <typename T>
TensorToWrite tensor_from(std::string name, DType dtype, Shape shape, const std::vector<T>& bits) {
  return {std::move(name), dtype, std::move(shape),
          [&bits](int64_t first, int64_t count, void* out) {
            std::memcpy(out, bits.data() + first, size_t(count) * sizeof(T));
          }};
}

template <typename T>
std::vector<T> random_bits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<T> v(n);
  for (T& x : v) x = T(rng());
  return v;
}

// The bytes of an entry, copied out (the mapping may be unaligned).
std::string entry_bytes(const SafetensorsEntry& e) {
  return std::string(static_cast<const char*>(e.data), e.nbytes());
}

template <typename T>
std::string as_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(SafetensorsRoundTrip, Bf16F16F32Bitwise) {
  TempDir tmp;
  // Random bit patterns cover NaNs, infinities and denormals: nothing may be converted.
  const auto bf16 = random_bits<uint16_t>(7 * 13, 1);
  const auto f16 = random_bits<uint16_t>(5, 2);
  const auto f32 = random_bits<uint32_t>(3 * 4 * 5, 3);
  const std::vector<uint32_t> scalar = {0x3f800000u};
  const std::vector<uint16_t> none;
  const std::vector<TensorToWrite> tensors = {
      tensor_from("a.bf16", DType::kBF16, {7, 13}, bf16),
      tensor_from("b.f16", DType::kF16, {5}, f16),
      tensor_from("c.empty", DType::kBF16, {0, 4}, none),
      tensor_from("d.f32", DType::kF32, {3, 4, 5}, f32),
      tensor_from("e.scalar", DType::kF32, {}, scalar),
  };
  const fs::path path = tmp.path() / "model.safetensors";
  ASSERT_TRUE(write_safetensors(path, tensors, {{"format", "pt"}}).ok());

  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ((*file)->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ((*file)->entries().size(), 5u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"a.bf16", as_bytes(bf16)}, {"b.f16", as_bytes(f16)},       {"c.empty", ""},
      {"d.f32", as_bytes(f32)},   {"e.scalar", as_bytes(scalar)},
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsEntry* e = (*file)->find(expected[i].first);
    ASSERT_NE(e, nullptr) << expected[i].first;
    ASSERT_TRUE(e->dtype.has_value());
    EXPECT_EQ(*e->dtype, tensors[i].dtype);
    EXPECT_EQ(e->dtype_name, dtype_safetensors_name(tensors[i].dtype));
    EXPECT_EQ(e->shape, tensors[i].shape);
    EXPECT_EQ(entry_bytes(*e), expected[i].second) << expected[i].first;
    EXPECT_EQ(e->view().nbytes(), e->nbytes());
  }
  // Tensors are laid out in the given order.
  EXPECT_EQ((*file)->find("a.bf16")->begin, 0u);
  EXPECT_EQ((*file)->find("b.f16")->begin, bf16.size() * 2);
  EXPECT_EQ((*file)->find("e.scalar")->end, (*file)->data_section().size());
  EXPECT_EQ((*file)->find("missing"), nullptr);
}

TEST(SafetensorsWrite, HeaderIsPaddedJsonWithMetadata) {
  TempDir tmp;
  const std::vector<uint16_t> w = {1, 2, 3};
  const fs::path path = tmp.path() / "x.safetensors";
  ASSERT_TRUE(
      write_safetensors(path, {tensor_from("w", DType::kBF16, {3}, w)}, {{"format", "pt"}}).ok());
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 6);
  const std::string header = bytes.substr(8, n);
  const auto json = nlohmann::json::parse(header);  // trailing spaces are valid JSON whitespace
  EXPECT_EQ(json["__metadata__"]["format"], "pt");
  EXPECT_EQ(json["w"]["dtype"], "BF16");
  EXPECT_EQ(json["w"]["data_offsets"], nlohmann::json::array({0, 6}));
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));

  // Without metadata there is no "__metadata__" key.
  ASSERT_TRUE(write_safetensors(path, {tensor_from("w", DType::kBF16, {3}, w)}, {}).ok());
  EXPECT_EQ(read_file(path).find("__metadata__"), std::string::npos);
}

TEST(SafetensorsWrite, StreamsLargeTensorsInBoundedChunks) {
  TempDir tmp;
  const int64_t numel = 3 * (int64_t{1} << 20) + 5;
  int64_t next = 0, max_count = 0;
  TensorToWrite t{"big", DType::kF32, {numel}, [&](int64_t first, int64_t count, void* out) {
                    EXPECT_EQ(first, next);  // in order, no gaps
                    next = first + count;
                    max_count = std::max(max_count, count);
                    auto* f = static_cast<uint32_t*>(out);
                    for (int64_t i = 0; i < count; ++i) f[i] = uint32_t(first + i) * 2654435761u;
                  }};
  const fs::path path = tmp.path() / "big.safetensors";
  ASSERT_TRUE(write_safetensors(path, {t}, {}).ok());
  EXPECT_EQ(next, numel);
  EXPECT_LE(max_count, int64_t{1} << 20);

  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  const SafetensorsEntry* e = (*file)->find("big");
  ASSERT_NE(e, nullptr);
  for (int64_t i : {int64_t{0}, int64_t{1} << 20, numel - 1}) {
    uint32_t v;
    std::memcpy(&v, static_cast<const char*>(e->data) + 4 * i, 4);
    EXPECT_EQ(v, uint32_t(i) * 2654435761u) << i;
  }
}

TEST(SafetensorsWrite, RejectsBadTensorsAndReportsIoErrors) {
  TempDir tmp;
  const fs::path path = tmp.path() / "bad.safetensors";
  const std::vector<uint16_t> w = {1, 2};
  const auto expect_error = [&](const fs::path& p, const std::vector<TensorToWrite>& ts,
                                const std::string& problem) {
    Status s = write_safetensors(p, ts, {});
    ASSERT_FALSE(s.ok()) << problem;
    EXPECT_NE(s.message().find(p.filename().string()), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(problem), std::string::npos) << s.message();
  };
  expect_error(path,
               {tensor_from("w", DType::kBF16, {2}, w), tensor_from("w", DType::kBF16, {2}, w)},
               "given twice");
  expect_error(path, {tensor_from("w", DType::kBF16, {-2}, w)}, "negative dimension");
  expect_error(path, {tensor_from("__metadata__", DType::kBF16, {2}, w)}, "reserved");
  expect_error(path, {TensorToWrite{"w", DType::kBF16, {2}, nullptr}}, "no fill function");
  expect_error(path, {tensor_from("w", DType::kBF16, {int64_t{1} << 62, 8}, w)}, "too large");
  expect_error(tmp.path() / "no_such_dir" / "x.safetensors",
               {tensor_from("w", DType::kBF16, {2}, w)}, "cannot create");
  if (fs::exists("/dev/full")) {  // a disk that is always full
    expect_error("/dev/full", {tensor_from("w", DType::kBF16, {2}, w)}, "write failed");
  }
  // An empty tensor needs no fill function.
  EXPECT_TRUE(write_safetensors(path, {TensorToWrite{"e", DType::kF32, {0}, nullptr}}, {}).ok());
}

// One hand-written malformed file and a word its error must contain besides the file name.
struct MalformedCase {
  std::string name;
  std::string bytes;
  std::string problem;
};

std::string entry_json(const std::string& name, const std::string& body) {
  return "\"" + name + "\":{" + body + "}";
}

std::vector<MalformedCase> malformed_cases() {
  const std::string ok_w = entry_json("w", R"("dtype":"F32","shape":[2],"data_offsets":[0,8])");
  const std::string data8(8, 'x');
  const auto one = [&](const std::string& body, const std::string& data = std::string(8, 'x')) {
    return raw_file("{" + entry_json("w", body) + "}", data);
  };
  return {
      {"empty", "", "empty"},
      {"shorter_than_8", "abcde", "shorter than"},
      {"header_len_beyond_file", raw_file("{}", "", 1000), "past the end"},
      {"header_len_absurd", raw_file("{}", "", uint64_t{1} << 62), "exceeds"},
      {"header_len_over_cap", raw_file("{}", "", 200'000'000), "exceeds"},
      {"header_len_zero", raw_file("", "", 0), "not valid JSON"},
      {"not_json", raw_file("{\"w\": nope}"), "not valid JSON"},
      {"trailing_garbage", raw_file("{} x"), "not valid JSON"},
      {"invalid_utf8", raw_file("{\"\xff\":1}"), "not valid JSON"},
      {"nul_padding", raw_file(std::string("{}\0\0\0\0\0\0", 8)), "not valid JSON"},
      {"not_object", raw_file("[1,2]"), "must be a JSON object"},
      {"deep_nesting", raw_file(std::string(1000, '[') + std::string(1000, ']')), "nests deeper"},
      {"entry_not_object", raw_file("{\"w\":5}"), "expected an object"},
      {"missing_dtype", one(R"("shape":[2],"data_offsets":[0,8])"), "missing \"dtype\""},
      {"dtype_not_string", one(R"("dtype":4,"shape":[2],"data_offsets":[0,8])"),
       "\"dtype\" must be a string"},
      {"unknown_dtype", one(R"("dtype":"F7","shape":[2],"data_offsets":[0,8])"),
       "unknown dtype 'F7'"},
      {"lowercase_dtype", one(R"("dtype":"f32","shape":[2],"data_offsets":[0,8])"),
       "unknown dtype"},
      {"missing_shape", one(R"("dtype":"F32","data_offsets":[0,8])"), "missing \"shape\""},
      {"shape_not_array", one(R"("dtype":"F32","shape":2,"data_offsets":[0,8])"),
       "non-negative integers"},
      {"negative_dim", one(R"("dtype":"F32","shape":[-2],"data_offsets":[0,8])"),
       "non-negative integers"},
      {"float_dim", one(R"("dtype":"F32","shape":[2.0],"data_offsets":[0,8])"),
       "non-negative integers"},
      {"string_dim", one(R"("dtype":"F32","shape":["2"],"data_offsets":[0,8])"),
       "non-negative integers"},
      {"dim_beyond_int64",
       one(R"("dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8])"), "beyond 2^63"},
      {"numel_overflow",
       one(R"("dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8])"), "64 bits"},
      {"bytes_overflow", one(R"("dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8])"),
       "64 bits"},
      {"missing_offsets", one(R"("dtype":"F32","shape":[2])"), "missing \"data_offsets\""},
      {"offsets_not_array", one(R"("dtype":"F32","shape":[2],"data_offsets":8)"), "[begin, end]"},
      {"offsets_one_value", one(R"("dtype":"F32","shape":[2],"data_offsets":[8])"), "[begin, end]"},
      {"offsets_three_values", one(R"("dtype":"F32","shape":[2],"data_offsets":[0,8,8])"),
       "[begin, end]"},
      {"offsets_negative", one(R"("dtype":"F32","shape":[2],"data_offsets":[-8,0])"),
       "[begin, end]"},
      {"offsets_float", one(R"("dtype":"F32","shape":[2],"data_offsets":[0,8.5])"), "[begin, end]"},
      {"begin_after_end", one(R"("dtype":"F32","shape":[0],"data_offsets":[8,0])"), "begin after"},
      {"end_beyond_data", one(R"("dtype":"F32","shape":[4],"data_offsets":[0,16])"),
       "beyond the data section"},
      {"end_huge",
       one(R"("dtype":"F32","shape":[2],)"
           R"("data_offsets":[18446744073709551608,18446744073709551615])"),
       "beyond the data section"},
      {"size_mismatch", one(R"("dtype":"BF16","shape":[2],"data_offsets":[0,8])"), "needs 4 bytes"},
      {"overlap",
       raw_file("{" + ok_w + "," +
                    entry_json("v", R"("dtype":"F32","shape":[1],"data_offsets":[4,8])") + "}",
                data8),
       "overlap"},
      {"empty_inside_another",
       raw_file("{" + ok_w + "," +
                    entry_json("e", R"("dtype":"F32","shape":[0],"data_offsets":[4,4])") + "}",
                data8),
       "overlap"},
      {"hole_in_middle",
       raw_file("{" + entry_json("a", R"("dtype":"F32","shape":[1],"data_offsets":[0,4])") + "," +
                    entry_json("b", R"("dtype":"F32","shape":[1],"data_offsets":[8,12])") + "}",
                std::string(12, 'x')),
       "hole"},
      {"hole_at_start", one(R"("dtype":"F32","shape":[1],"data_offsets":[4,8])"), "hole"},
      {"trailing_data", raw_file("{" + ok_w + "}", std::string(12, 'x')), "hole"},
      {"no_tensors_but_data", raw_file("{}", data8), "hole"},
      {"metadata_not_object", raw_file("{\"__metadata__\":[1]," + ok_w + "}", data8),
       "__metadata__"},
      {"metadata_value_not_string",
       raw_file("{\"__metadata__\":{\"format\":1}," + ok_w + "}", data8), "__metadata__"},
      {"metadata_nested", raw_file("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}," + ok_w + "}", data8),
       "__metadata__"},
  };
}

TEST(SafetensorsOpen, MalformedFilesAreErrorsNamingTheFile) {
  TempDir tmp;
  for (const MalformedCase& c : malformed_cases()) {
    const fs::path path = tmp.path() / ("case_" + c.name + ".safetensors");
    write_file(path, c.bytes);
    auto file = SafetensorsFile::open(path);
    ASSERT_FALSE(file.ok()) << c.name;
    const std::string& msg = file.status().message();
    EXPECT_NE(msg.find(path.filename().string()), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.problem), std::string::npos) << c.name << ": " << msg;
  }
}

TEST(SafetensorsOpen, MissingFileDirectoryAndFifo) {
  TempDir tmp;
  const fs::path missing = tmp.path() / "missing.safetensors";
  auto file = SafetensorsFile::open(missing);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("missing.safetensors"), std::string::npos);

  const fs::path dir = tmp.path() / "dir.safetensors";
  fs::create_directory(dir);
  file = SafetensorsFile::open(dir);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("dir.safetensors: is a directory"), std::string::npos)
      << file.status().message();

  // A FIFO must be refused, not block the open waiting for a writer.
  const fs::path fifo = tmp.path() / "fifo.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  file = SafetensorsFile::open(fifo);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("fifo.safetensors: is not a regular file"),
            std::string::npos)
      << file.status().message();
}

TEST(SafetensorsOpen, UnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their permissions";
  TempDir tmp;
  const fs::path path = tmp.path() / "locked.safetensors";
  write_file(path, raw_file("{}"));
  fs::permissions(path, fs::perms::none);
  auto file = SafetensorsFile::open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("locked.safetensors: cannot open"), std::string::npos)
      << file.status().message();
}

TEST(SafetensorsOpen, UnsupportedDtypesAreEntriesWithoutDType) {
  TempDir tmp;
  const fs::path path = tmp.path() / "ids.safetensors";
  const std::string header =
      "{" + entry_json("ids", R"("dtype":"I64","shape":[2],"data_offsets":[0,16])") + "," +
      entry_json("mask", R"("dtype":"BOOL","shape":[3],"data_offsets":[16,19])") + "," +
      entry_json("fp8", R"("dtype":"F8_E4M3","shape":[1],"data_offsets":[19,20])") + "}";
  write_file(path, raw_file(header, std::string(20, '\1')));
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  const SafetensorsEntry* ids = (*file)->find("ids");
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->dtype_name, "I64");
  EXPECT_FALSE(ids->dtype.has_value());
  EXPECT_EQ(ids->shape, (Shape{2}));
  EXPECT_EQ((*file)->find("mask")->dtype_name, "BOOL");
  EXPECT_EQ((*file)->find("fp8")->nbytes(), 1u);
}

TEST(SafetensorsOpen, UnalignedDataSectionAndEmptyTensors) {
  TempDir tmp;
  const fs::path path = tmp.path() / "odd.safetensors";
  // An odd header length puts the data at an odd address. Empty tensors may share an offset
  // with the start or end of another tensor (but not sit inside one, as in the reference
  // implementation).
  const std::string body =
      "{" + entry_json("w", R"("dtype":"F32","shape":[2],"data_offsets":[0,8])") + "," +
      entry_json("e0", R"("dtype":"BF16","shape":[0],"data_offsets":[0,0])") + "," +
      entry_json("e1", R"("dtype":"F16","shape":[3,0],"data_offsets":[8,8])") + "," +
      entry_json("e2", R"("dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[8,8])") +
      "}";
  const std::string header = body.size() % 2 == 1 ? body : body + " ";
  const float values[2] = {1.5f, -2.25f};
  write_file(path, raw_file(header, std::string(reinterpret_cast<const char*>(values), 8)));
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  const SafetensorsEntry* w = (*file)->find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->data) % 2, 1u);
  float copy[2];
  std::memcpy(copy, w->data, 8);
  EXPECT_EQ(copy[0], 1.5f);
  EXPECT_EQ(copy[1], -2.25f);
  EXPECT_EQ((*file)->entries().size(), 4u);
  EXPECT_EQ((*file)->find("e2")->nbytes(), 0u);
}

// Size of a safetensors dtype, for checking entries independently of the reader.
uint64_t spec_dtype_size(const std::string& name) {
  static const std::map<std::string, uint64_t> kSizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  auto it = kSizes.find(name);
  return it == kSizes.end() ? 0 : it->second;
}

// Opens `bytes` as a file and checks the reader's promise: a clean error naming the file, or
// entries that lie inside the data section and match their dtype and shape. Returns whether the
// file opened.
bool expect_open_is_safe(const fs::path& path, const std::string& bytes, const std::string& what) {
  write_file(path, bytes);
  auto file = SafetensorsFile::open(path);
  // Removed at once, because overwriting a file by truncation is slow on ext4.
  fs::remove(path);
  if (!file.ok()) {
    EXPECT_NE(file.status().message().find(path.filename().string()), std::string::npos)
        << what << ": " << file.status().message();
    return false;
  }
  const auto section = (*file)->data_section();
  const auto* lo = reinterpret_cast<const char*>(section.data());
  EXPECT_LE(section.size(), bytes.size() - 8) << what;
  for (const auto& [name, e] : (*file)->entries()) {
    const auto* p = static_cast<const char*>(e.data);
    EXPECT_LE(e.begin, e.end) << what;
    EXPECT_GE(p, lo) << what;
    EXPECT_LE(p + e.nbytes(), lo + section.size()) << what;
    uint64_t numel = 1;
    for (int64_t d : e.shape) numel *= uint64_t(d);
    EXPECT_EQ(e.nbytes(), numel * spec_dtype_size(e.dtype_name)) << what << " " << name;
    // Touch the bytes: the sanitizer or a fault would catch anything outside the mapping.
    if (e.nbytes() > 0) {
      volatile char first = p[0], last = p[e.nbytes() - 1];
      (void)first;
      (void)last;
    }
  }
  return true;
}

TEST(SafetensorsFuzz, HeaderMutationsNeverCrash) {
  TempDir tmp;
  const std::vector<uint16_t> a = {1, 2, 3, 4, 5, 6};
  const std::vector<uint32_t> b = {7, 8};
  const fs::path valid = tmp.path() / "valid.safetensors";
  ASSERT_TRUE(
      write_safetensors(
          valid, {tensor_from("a", DType::kBF16, {2, 3}, a), tensor_from("b", DType::kF32, {2}, b)},
          {{"format", "pt"}})
          .ok());
  const std::string base = read_file(valid);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | uint8_t(base[i]);
  ASSERT_LT(8 + header_len, base.size());
  // Truncation at every length.
  for (size_t n = 0; n < base.size(); ++n) {
    expect_open_is_safe(tmp.path() / fmt::format("truncated_{}.safetensors", n), base.substr(0, n),
                        fmt::format("truncated to {}", n));
  }

  int opened = 0;
  std::mt19937_64 rng(20240611);
  const auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  const std::string kInteresting = "\"{}[],:-0189eE.\\ \x7f\xff";
  for (int iter = 0; iter < 4000; ++iter) {
    std::string m = base;
    const uint64_t h = header_len;
    const int mutations = 1 + int(pick(3));
    std::string what = fmt::format("mutation {}:", iter);
    for (int k = 0; k < mutations; ++k) {
      const size_t pos = 8 + pick(std::min<uint64_t>(h, m.size() - 8));
      switch (pick(6)) {
        case 0:  // flip one bit of the header
          m[pos] = char(m[pos] ^ (1 << pick(8)));
          break;
        case 1:  // a JSON-significant byte
          m[pos] = kInteresting[pick(kInteresting.size())];
          break;
        case 2:  // delete a byte, shifting the rest of the header
          m.erase(pos, 1);
          break;
        case 3:  // duplicate a byte
          m.insert(pos, 1, m[pos]);
          break;
        case 4: {  // a nearby or random header length
          const uint64_t len = pick(2) ? h + pick(33) - 16 : (pick(2) ? rng() : pick(1 << 20));
          for (int i = 0; i < 8; ++i) m[i] = char((len >> (8 * i)) & 0xff);
          break;
        }
        case 5:  // a digit changed, so offsets and shapes lie
          if (std::isdigit(uint8_t(m[pos]))) m[pos] = char('0' + pick(10));
          break;
      }
      what += fmt::format(" {}", pos);
    }
    opened += expect_open_is_safe(tmp.path() / fmt::format("mutant_{}.safetensors", iter), m, what);
    if (::testing::Test::HasFailure()) return;  // one failing mutant is enough to debug
  }
  // Both outcomes must be exercised: mutants that still parse (a changed digit in a name or
  // in the metadata) and mutants that are refused.
  EXPECT_GT(opened, 100);
  EXPECT_LT(opened, 3000);
}

// ---------------------------------------------------------------------------------------------
// TensorStore

std::vector<TensorToWrite> sample_tensors(const std::vector<std::vector<uint16_t>>& data) {
  std::vector<TensorToWrite> out;
  for (size_t i = 0; i < data.size(); ++i) {
    out.push_back(tensor_from(fmt::format("layers.{}.weight", i), DType::kBF16,
                              {int64_t(data[i].size())}, data[i]));
  }
  return out;
}

TEST(TensorStore, SingleFileRoundTrip) {
  TempDir tmp;
  const std::vector<std::vector<uint16_t>> data = {random_bits<uint16_t>(10, 4),
                                                   random_bits<uint16_t>(3, 5)};
  ASSERT_TRUE(write_checkpoint_tensors(tmp.path(), sample_tensors(data), 1 << 20).ok());
  EXPECT_TRUE(fs::exists(tmp.path() / "model.safetensors"));
  EXPECT_FALSE(fs::exists(tmp.path() / "model.safetensors.index.json"));
  auto store = TensorStore::open_dir(tmp.path());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ(store->names(), (std::vector<std::string>{"layers.0.weight", "layers.1.weight"}));
  EXPECT_EQ(entry_bytes(*store->find("layers.1.weight")), as_bytes(data[1]));
  EXPECT_EQ(store->files().size(), 1u);
  EXPECT_EQ(store->files()[0]->metadata().at("format"), "pt");
  EXPECT_EQ(store->file_of("layers.0.weight"), tmp.path() / "model.safetensors");
  EXPECT_EQ(store->find("nope"), nullptr);
  EXPECT_TRUE(store->file_of("nope").empty());
}

TEST(TensorStore, ShardedRoundTrip) {
  TempDir tmp;
  // 40 + 40 + 100 + 20 bytes with 90-byte shards: [0, 1], [2] (alone, over the limit), [3].
  const std::vector<std::vector<uint16_t>> data = {
      random_bits<uint16_t>(20, 6), random_bits<uint16_t>(20, 7), random_bits<uint16_t>(50, 8),
      random_bits<uint16_t>(10, 9)};
  ASSERT_TRUE(write_checkpoint_tensors(tmp.path(), sample_tensors(data), 90).ok());
  for (const char* shard : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                            "model-00003-of-00003.safetensors"}) {
    EXPECT_TRUE(fs::exists(tmp.path() / shard)) << shard;
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "model.safetensors"));
  const auto index = nlohmann::json::parse(read_file(tmp.path() / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 200);
  EXPECT_EQ(index["weight_map"]["layers.0.weight"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layers.1.weight"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layers.2.weight"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layers.3.weight"], "model-00003-of-00003.safetensors");

  auto store = TensorStore::open_dir(tmp.path());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ(store->files().size(), 3u);
  ASSERT_EQ(store->names().size(), 4u);
  for (size_t i = 0; i < data.size(); ++i) {
    const std::string name = fmt::format("layers.{}.weight", i);
    const SafetensorsEntry* e = store->find(name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_EQ(entry_bytes(*e), as_bytes(data[i])) << name;
  }
  EXPECT_EQ(store->file_of("layers.2.weight"), tmp.path() / "model-00002-of-00003.safetensors");

  // Saving again as one file removes the shards and the index, and the other way round.
  ASSERT_TRUE(write_checkpoint_tensors(tmp.path(), sample_tensors(data), 1 << 20).ok());
  EXPECT_FALSE(fs::exists(tmp.path() / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(tmp.path() / "model-00001-of-00003.safetensors"));
  ASSERT_TRUE(write_checkpoint_tensors(tmp.path(), sample_tensors(data), 90).ok());
  EXPECT_FALSE(fs::exists(tmp.path() / "model.safetensors"));
  store = TensorStore::open_dir(tmp.path());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ(store->files().size(), 3u);
}

// Asserts that open_dir fails with a message that names `file` and contains `problem`.
void expect_store_error(const fs::path& dir, const std::string& file, const std::string& problem) {
  auto store = TensorStore::open_dir(dir);
  ASSERT_FALSE(store.ok()) << problem;
  const std::string& msg = store.status().message();
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find(problem), std::string::npos) << msg;
}

TEST(TensorStore, DirectoryErrors) {
  TempDir tmp;
  expect_store_error(tmp.path() / "absent", "absent", "no such directory");
  write_file(tmp.path() / "plain", "x");
  expect_store_error(tmp.path() / "plain", "plain", "not a directory");
  expect_store_error(tmp.path(), tmp.path().string(),
                     "no model.safetensors or model.safetensors.index.json found");
  write_file(tmp.path() / "pytorch_model.bin", "x");
  expect_store_error(tmp.path(), tmp.path().string(), "convert it to safetensors");
  write_file(tmp.path() / "model.safetensors", raw_file("[]"));
  expect_store_error(tmp.path(), "model.safetensors", "must be a JSON object");
}

// A sharded checkpoint: shard k holds tensor tk (one F32), plus the given index text.
void write_shards(const fs::path& dir, int shards, const std::string& index) {
  for (int k = 1; k <= shards; ++k) {
    const std::string header =
        "{" +
        entry_json(fmt::format("t{}", k), R"("dtype":"F32","shape":[1],"data_offsets":[0,4])") +
        "}";
    write_file(dir / fmt::format("s{}.safetensors", k), raw_file(header, "abcd"));
  }
  write_file(dir / "model.safetensors.index.json", index);
}

TEST(TensorStore, IndexErrors) {
  const std::string kIndex = "model.safetensors.index.json";
  struct IndexCase {
    std::string name, index, file, problem;
  };
  const std::vector<IndexCase> cases = {
      {"bad_json", R"({"weight_map": {"t1": "s1.safetensors",}})", kIndex, "not valid JSON"},
      {"nul_byte", std::string("{\"weight_map\": {\"t1\": \"s1.safetensors\"}}\0junk", 45), kIndex,
       "NUL"},
      {"not_object", R"(["s1.safetensors"])", kIndex, "must be a JSON object"},
      {"no_weight_map", R"({"metadata": {}})", kIndex, "missing \"weight_map\""},
      {"weight_map_not_object", R"({"weight_map": ["s1.safetensors"]})", kIndex, "weight_map"},
      {"weight_map_empty", R"({"weight_map": {}})", kIndex, "non-empty"},
      {"shard_not_string", R"({"weight_map": {"t1": 1}})", kIndex, "file name string"},
      {"traversal_parent", R"({"weight_map": {"t1": "../s1.safetensors"}})", kIndex,
       "not a plain file name"},
      {"traversal_dotdot", R"({"weight_map": {"t1": ".."}})", kIndex, "not a plain file name"},
      {"absolute", R"({"weight_map": {"t1": "/etc/passwd"}})", kIndex, "not a plain file name"},
      {"subdirectory", R"({"weight_map": {"t1": "sub/s1.safetensors"}})", kIndex,
       "not a plain file name"},
      {"empty_name", R"({"weight_map": {"t1": ""}})", kIndex, "not a plain file name"},
      {"missing_shard",
       R"({"weight_map": {"t1": "s1.safetensors", "t2": "s2.safetensors",
                          "t3": "s9.safetensors"}})",
       "s9.safetensors", "no such file"},
      {"tensor_not_in_shard", R"({"weight_map": {"t1": "s1.safetensors", "t2": "s1.safetensors"}})",
       "s1.safetensors", "does not hold it"},
  };
  for (const IndexCase& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir tmp;
    write_shards(tmp.path(), 2, c.index);
    expect_store_error(tmp.path(), c.file, c.problem);
  }
}

TEST(TensorStore, ShardContentsMustMatchTheIndex) {
  TempDir tmp;
  const std::string two_tensors =
      "{" + entry_json("t1", R"("dtype":"F32","shape":[1],"data_offsets":[0,4])") + "," +
      entry_json("t2", R"("dtype":"F32","shape":[1],"data_offsets":[4,8])") + "}";
  // s2 also holds t1: which copy is meant?
  write_shards(tmp.path(), 2,
               R"({"weight_map": {"t1": "s1.safetensors", "t2": "s2.safetensors"}})");
  write_file(tmp.path() / "s2.safetensors", raw_file(two_tensors, "abcdefgh"));
  expect_store_error(tmp.path(), "s2.safetensors", "is in both");

  // s1 holds t2, which the index does not list at all: the index is stale.
  write_shards(tmp.path(), 1, R"({"weight_map": {"t1": "s1.safetensors"}})");
  write_file(tmp.path() / "s1.safetensors", raw_file(two_tensors, "abcdefgh"));
  expect_store_error(tmp.path(), "s1.safetensors", "holds tensor 't2', which");

  // And the valid layout loads.
  write_shards(tmp.path(), 2, R"({"metadata": {"total_size": 8},
                                 "weight_map": {"t1": "s1.safetensors",
                                                "t2": "s2.safetensors"}})");
  auto store = TensorStore::open_dir(tmp.path());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ(store->names(), (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(store->file_of("t2"), tmp.path() / "s2.safetensors");
}

}  // namespace
}  // namespace megalith
