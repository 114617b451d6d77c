// GPU tests of the megakernel, run on a GPU machine by
// scripts/gpu/check_megakernel.sh:
//  - every task kind on the GPU against its CPU reference, on fresh random inputs of odd
//    sizes, outputs poisoned (NaN) before the run: |gpu - cpu| <= atol + rtol * |cpu| for
//    every element, and every byte no task writes still poisoned;
//  - several linear tasks on one worker over several steps, so the weight ring wraps and the
//    producer streams across task and step boundaries;
//  - tiny random models of every architecture: the CUDA executor's greedy tokens (64 new
//    ones, over two launches) and sampled tokens equal the CPU executor's, log-probs and
//    logits close, in static mode and (two of them each) in dynamic and kernel-per-op mode;
//  - a task waiting on an event nobody signals ends the launch with the watchdog's report.
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "device_program.h"
#include "megalith/compiler/claimed_rows.h"
#include "megalith/compiler/compiler.h"
#include "megalith/core/dtype.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"
#include "megalith/runtime/cpu_executor.h"
#include "megalith/runtime/cuda_executor.h"
#include "task_context.h"

namespace megalith {
namespace {

namespace fs = std::filesystem;
using abi::RefAccess;
using abi::RefType;
using abi::TaskKind;

// A fresh random seed for each case, or MEGALITH_TEST_SEED's for all of them: a failing case
// prints its seed, and running it again with that seed replays it.
uint64_t fresh_seed() {
  if (const char* fixed = std::getenv("MEGALITH_TEST_SEED")) {
    // from_chars takes digits only: no sign, no space, nothing past the number, no overflow.
    const char* last = fixed + std::strlen(fixed);
    uint64_t seed = 0;
    const auto [end, error] = std::from_chars(fixed, last, seed);
    if (error != std::errc() || end != last) {
      throw std::invalid_argument(fmt::format("MEGALITH_TEST_SEED is not a seed: '{}'", fixed));
    }
    return seed;
  }
  std::random_device rd;
  return uint64_t(rd()) << 32 | rd();
}

int sm_count() {
  int devices = 0, sms = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) return 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) return 0;
  return sms;
}

size_t type_bytes(RefType t) { return t == RefType::kBF16 || t == RefType::kF16 ? 2 : 4; }

// How the elements of a buffer are compared.
enum class Compare { kFloats, kInts, kLmPartials };

struct Tolerance {
  double atol = 2e-4, rtol = 2e-4;  // f32 results; bf16 and f16 ones get their rounding
};

struct CaseBuffer {
  std::string name;
  BufferKind kind;
  RefType type;
  int64_t rows, cols;
  Compare compare;
  std::vector<uint8_t> bytes;  // contents before the run
};

// A hand-built task graph for one worker: buffers with random or given contents, tasks run
// in the order added, no events. The GPU and the CPU references start from the same bytes.
class TaskCase {
 public:
  explicit TaskCase(uint64_t seed) : seed_(seed), rng_(seed) {}

  std::mt19937_64& rng() { return rng_; }
  uint64_t seed() const { return seed_; }

  // rows x cols elements uniform in [lo, hi].
  uint32_t random(const std::string& name, BufferKind kind, RefType type, int64_t rows,
                  int64_t cols, float lo = -1, float hi = 1) {
    const uint32_t b = add(name, kind, type, rows, cols, Compare::kFloats);
    std::uniform_real_distribution<float> dist(lo, hi);
    for (int64_t i = 0; i < rows * cols; ++i) set(b, i, dist(rng_));
    return b;
  }
  // NaN (all ones) everywhere.
  uint32_t poisoned(const std::string& name, BufferKind kind, RefType type, int64_t rows,
                    int64_t cols, Compare compare = Compare::kFloats) {
    const uint32_t b = add(name, kind, type, rows, cols, compare);
    std::fill(buffers_[b].bytes.begin(), buffers_[b].bytes.end(), 0xff);
    return b;
  }
  uint32_t ints(const std::string& name, BufferKind kind, int64_t cols,
                const std::vector<int32_t>& values) {
    const uint32_t b = add(name, kind, RefType::kI32, 1, cols, Compare::kInts);
    std::memcpy(buffers_[b].bytes.data(), values.data(), std::min<size_t>(values.size(), cols) * 4);
    return b;
  }
  uint32_t control(const abi::StepControl& c) {
    const uint32_t b = add("control", BufferKind::kIo, RefType::kI32, 1, sizeof(c) / 4,
                           Compare::kInts);
    std::memcpy(buffers_[b].bytes.data(), &c, sizeof(c));
    return b;
  }
  void set(uint32_t b, int64_t i, float v) {
    uint8_t* p = buffers_[b].bytes.data() + i * type_bytes(buffers_[b].type);
    switch (buffers_[b].type) {
      case RefType::kBF16: {
        const uint16_t h = float_to_bf16(v);
        std::memcpy(p, &h, 2);
        return;
      }
      case RefType::kF16: {
        const uint16_t h = float_to_f16(v);
        std::memcpy(p, &h, 2);
        return;
      }
      case RefType::kI32: {
        const int32_t n = int32_t(v);
        std::memcpy(p, &n, 4);
        return;
      }
      case RefType::kF32: std::memcpy(p, &v, 4); return;
    }
  }

  abi::TensorRef ref(uint32_t b, int64_t row0, int64_t rows, int64_t col0, int64_t cols,
                     RefAccess access = RefAccess::kRead) const {
    const CaseBuffer& buf = buffers_[b];
    EXPECT_LE(row0 + rows, buf.rows);
    EXPECT_LE(col0 + cols, buf.cols);
    abi::TensorRef r;
    r.buffer = b;
    r.type = buf.type;
    r.access = access;
    r.offset = uint64_t((row0 * buf.cols + col0) * int64_t(type_bytes(buf.type)));
    r.rows = int32_t(rows);
    r.cols = int32_t(cols);
    r.row_stride = buf.cols;
    return r;
  }
  abi::TensorRef whole(uint32_t b, RefAccess access = RefAccess::kRead) const {
    return ref(b, 0, buffers_[b].rows, 0, buffers_[b].cols, access);
  }

  void task(const abi::TaskDesc& t) { tasks_.push_back(t); }

  TaskGraph graph() const {
    TaskGraph tg;
    tg.num_workers = 1;
    tg.batch = 1;
    for (const CaseBuffer& b : buffers_) {
      tg.buffers.push_back({b.name, b.kind, ElemType(uint8_t(b.type)), b.bytes.size(), {}});
    }
    tg.ops.push_back({"case", tasks_.front().kind, {}, 0, uint32_t(tasks_.size())});
    tg.tasks = tasks_;
    tg.queue_begin = {0, uint32_t(tasks_.size())};
    for (uint32_t t = 0; t < tasks_.size(); ++t) tg.queue_tasks.push_back(t);
    tg.task_cost_us.assign(tasks_.size(), 1.0f);
    return tg;
  }

  // Runs steps [first, end) on the GPU and through the CPU references, and compares every
  // buffer.
  void run_and_compare(int64_t first, int64_t end, Tolerance tol = {}) const {
    SCOPED_TRACE(fmt::format("random seed {}", seed_));
    const TaskGraph tg = graph();
    StatusOr<std::unique_ptr<cuda::DeviceProgram>> program =
        cuda::DeviceProgram::create(tg, {.device = 0, .watchdog_timeout_s = 10});
    ASSERT_TRUE(program.ok()) << program.status().message();
    for (uint32_t b = 0; b < buffers_.size(); ++b) {
      const std::vector<uint8_t>& bytes = buffers_[b].bytes;
      ASSERT_TRUE((*program)->write(b, bytes.data(), bytes.size()).ok());
    }
    const Status run = (*program)->run(first, end);
    ASSERT_TRUE(run.ok()) << run.message();

    std::vector<std::vector<uint8_t>> gpu(buffers_.size()), cpu(buffers_.size());
    std::vector<uint8_t*> bases(buffers_.size());
    for (uint32_t b = 0; b < buffers_.size(); ++b) {
      gpu[b].resize(buffers_[b].bytes.size());
      ASSERT_TRUE((*program)->read(b, gpu[b].data(), gpu[b].size()).ok());
      cpu[b] = buffers_[b].bytes;
      bases[b] = cpu[b].data();
    }
    for (int64_t step = first; step < end; ++step) {
      for (const abi::TaskDesc& t : tasks_) cpu::run_task({step, bases.data()}, t);
    }
    for (uint32_t b = 0; b < buffers_.size(); ++b) compare(buffers_[b], gpu[b], cpu[b], tol);
  }

 private:
  uint32_t add(const std::string& name, BufferKind kind, RefType type, int64_t rows, int64_t cols,
               Compare compare) {
    buffers_.push_back({name, kind, type, rows, cols, compare,
                        std::vector<uint8_t>(size_t(rows * cols) * type_bytes(type), 0)});
    return uint32_t(buffers_.size() - 1);
  }

  static float element(const CaseBuffer& b, const std::vector<uint8_t>& bytes, int64_t i) {
    const uint8_t* p = bytes.data() + i * type_bytes(b.type);
    uint16_t h;
    float f;
    switch (b.type) {
      case RefType::kBF16: std::memcpy(&h, p, 2); return bf16_to_float(h);
      case RefType::kF16: std::memcpy(&h, p, 2); return f16_to_float(h);
      default: std::memcpy(&f, p, 4); return f;
    }
  }
  static int32_t word(const std::vector<uint8_t>& bytes, int64_t i) {
    int32_t v;
    std::memcpy(&v, bytes.data() + i * 4, 4);
    return v;
  }
  static float word_float(const std::vector<uint8_t>& bytes, int64_t i) {
    float v;
    std::memcpy(&v, bytes.data() + i * 4, 4);
    return v;
  }
  static bool close(float g, float c, double atol, double rtol) {
    if (std::memcmp(&g, &c, 4) == 0) return true;  // also NaN where neither wrote
    if (std::isnan(g) || std::isnan(c)) return false;
    return std::abs(double(g) - double(c)) <= atol + rtol * std::abs(double(c));
  }

  static void compare(const CaseBuffer& b, const std::vector<uint8_t>& gpu,
                      const std::vector<uint8_t>& cpu, Tolerance tol) {
    const double rtol = b.type == RefType::kBF16  ? std::max(tol.rtol, 8e-3)
                        : b.type == RefType::kF16 ? std::max(tol.rtol, 2e-3)
                                                  : tol.rtol;
    int64_t mismatches = 0;
    auto report = [&](int64_t i, const std::string& what) {
      if (++mismatches <= 8) {
        ADD_FAILURE() << fmt::format("buffer '{}' element {} (row {}, col {}): {}", b.name, i,
                                     i / b.cols, i % b.cols, what);
      }
    };
    const int64_t n = b.rows * b.cols;
    if (b.compare == Compare::kInts) {
      for (int64_t i = 0; i < n; ++i) {
        if (word(gpu, i) != word(cpu, i)) {
          report(i, fmt::format("gpu {} cpu {}", word(gpu, i), word(cpu, i)));
        }
      }
    } else if (b.compare == Compare::kLmPartials) {
      constexpr int64_t kWords = sizeof(abi::LmPartial) / 4;
      for (int64_t i = 0; i < n; i += kWords) {
        if (std::memcmp(gpu.data() + i * 4, cpu.data() + i * 4, sizeof(abi::LmPartial)) == 0) continue;
        for (int64_t f : {0, 2, 3}) {  // max_logit, sum_exp, sample_key
          if (!close(word_float(gpu, i + f), word_float(cpu, i + f), tol.atol, tol.rtol)) {
            report(i + f, fmt::format("gpu {} cpu {}", word_float(gpu, i + f), word_float(cpu, i + f)));
          }
        }
        for (int64_t f : {1, 4, 5}) {  // argmax, sample_id, reserved
          if (word(gpu, i + f) != word(cpu, i + f)) {
            report(i + f, fmt::format("gpu {} cpu {}", word(gpu, i + f), word(cpu, i + f)));
          }
        }
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const float g = element(b, gpu, i), c = element(b, cpu, i);
        if (!close(g, c, tol.atol, rtol)) report(i, fmt::format("gpu {} cpu {}", g, c));
      }
    }
    EXPECT_EQ(mismatches, 0) << "buffer '" << b.name << "'";
  }

  uint64_t seed_;
  std::mt19937_64 rng_;
  std::vector<CaseBuffer> buffers_;
  std::vector<abi::TaskDesc> tasks_;
};

abi::TaskDesc make_task(TaskKind kind, std::initializer_list<abi::TensorRef> refs) {
  abi::TaskDesc t;
  t.kind = kind;
  t.num_refs = uint16_t(refs.size());
  int i = 0;
  for (const abi::TensorRef& r : refs) t.refs[i++] = r;
  return t;
}

const char* type_name(RefType t) {
  return t == RefType::kBF16 ? "bf16" : t == RefType::kF16 ? "f16" : t == RefType::kI32 ? "i32" : "f32";
}

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GT(sm_count(), 0) << "these tests need a CUDA device"; }
};

// ---- embedding

TEST_F(GpuTest, EmbeddingForcedAndSampledTokens) {
  for (RefType type : {RefType::kBF16, RefType::kF16, RefType::kF32}) {
    // Step 5 of a sequence that began at step 3: position 2, a prompt token; step 9: position
    // 6, the token sampled at position 5.
    for (int64_t step : {5, 9}) {
      SCOPED_TRACE(fmt::format("{} step {}", type_name(type), step));
      TaskCase c(fresh_seed());
      const int64_t vocab = 37, hidden = 75, max_seq = 16;
      std::uniform_int_distribution<int32_t> id(0, vocab - 1);
      std::vector<int32_t> prompt(max_seq), tokens(max_seq);
      for (auto& v : prompt) v = id(c.rng());
      for (auto& v : tokens) v = id(c.rng());
      const uint32_t control = c.control({3, 4, 0.0f, 0, 0, 1, {}});
      const uint32_t p = c.ints("prompt", BufferKind::kIo, max_seq, prompt);
      const uint32_t tk = c.ints("tokens", BufferKind::kIo, max_seq, tokens);
      const uint32_t table = c.random("table", BufferKind::kWeight, type, vocab, hidden);
      const uint32_t x = c.poisoned("x", BufferKind::kActivation, RefType::kF32, 2, hidden);
      const uint32_t pos = c.poisoned("positions", BufferKind::kActivation, RefType::kI32, 1, 3,
                                      Compare::kInts);
      c.task(make_task(TaskKind::kEmbedding,
                       {c.whole(control), c.whole(p), c.whole(tk), c.whole(table),
                        c.ref(x, 1, 1, 0, hidden, RefAccess::kWrite),
                        c.ref(pos, 0, 1, 1, 1, RefAccess::kWrite)}));
      c.run_and_compare(step, step + 1);
    }
  }
}

// ---- the linear kinds

struct LinearShape {
  int64_t in, rows, tile_row0, tile_rows;
  RefType type;
  bool bias, gamma;
};
// Odd sizes that reach every path of the weight stream.
const LinearShape kLinearShapes[] = {
    {75, 40, 7, 13, RefType::kBF16, true, true},    // 150-byte rows: unaligned chunks
    {136, 9, 2, 3, RefType::kF16, false, true},     // 3 rows: warps share each row
    {4104, 37, 0, 37, RefType::kBF16, true, false}, // 7 rows x 2 segments a chunk: ring wraps
    {9000, 5, 1, 3, RefType::kF32, true, true},     // 36000-byte rows: 3 rows x 4 segments
    {20000, 4, 2, 2, RefType::kBF16, false, true},  // 2 bf16 rows x 3 segments
    {12288, 11, 3, 8, RefType::kBF16, false, false}, // a down projection's rows: 4 x 4096 items
    {3072, 23, 5, 11, RefType::kBF16, true, true},  // 5 rows a chunk (5, 5, 1): a row pair short
    {1024, 40, 4, 33, RefType::kBF16, false, true}, // 16 rows a chunk (16, 16, 1)
    {5120, 13, 0, 13, RefType::kF16, true, true},   // 6 rows x 2560 a chunk, then 1 row
    {16411, 3, 1, 2, RefType::kBF16, true, true},   // unaligned rows over a stage: skewed segments
    {333, 64, 3, 61, RefType::kF32, false, false},  // many odd f32 rows per chunk
    {1, 3, 0, 3, RefType::kF16, true, true},        // one input feature
};

std::string shape_name(const LinearShape& s) {
  return fmt::format("in {} tile {}+{} of {} {}{}{}", s.in, s.tile_row0, s.tile_rows, s.rows,
                     type_name(s.type), s.bias ? " bias" : "", s.gamma ? " gamma" : "");
}

float weight_bound(int64_t in) { return float(std::sqrt(3.0 / double(in))); }

TEST_F(GpuTest, RmsNormLinear) {
  for (const LinearShape& s : kLinearShapes) {
    SCOPED_TRACE(shape_name(s));
    TaskCase c(fresh_seed());
    const float a = weight_bound(s.in);
    const uint32_t x = c.random("x", BufferKind::kActivation, RefType::kF32, 3, s.in, -2, 2);
    const uint32_t gamma = c.random("norm", BufferKind::kWeight, s.type, 1, s.in, 0.75f, 1.25f);
    const uint32_t w = c.random("w", BufferKind::kWeight, s.type, s.rows, s.in, -a, a);
    const uint32_t bias = c.random("bias", BufferKind::kWeight, s.type, 1, s.rows, -0.1f, 0.1f);
    const uint32_t out = c.poisoned("out", BufferKind::kActivation, RefType::kF32, 1, s.rows + 4);
    abi::TaskDesc t = make_task(
        TaskKind::kRmsNormLinear,
        {c.ref(x, 1, 1, 0, s.in), s.gamma ? c.whole(gamma) : abi::TensorRef{},
         c.ref(w, s.tile_row0, s.tile_rows, 0, s.in),
         s.bias ? c.ref(bias, 0, 1, s.tile_row0, s.tile_rows) : abi::TensorRef{},
         c.ref(out, 0, 1, s.tile_row0 + 2, s.tile_rows, RefAccess::kWrite)});
    t.params.linear = {1e-5f, 0, 0};
    c.task(t);
    c.run_and_compare(0, 1);
  }
}

TEST_F(GpuTest, LinearResidual) {
  for (const LinearShape& s : kLinearShapes) {
    SCOPED_TRACE(shape_name(s));
    TaskCase c(fresh_seed());
    const float a = weight_bound(s.in);
    const uint32_t x = c.random("x", BufferKind::kActivation, RefType::kF32, 2, s.in, -2, 2);
    const uint32_t w = c.random("w", BufferKind::kWeight, s.type, s.rows, s.in, -a, a);
    const uint32_t bias = c.random("bias", BufferKind::kWeight, s.type, 1, s.rows, -0.1f, 0.1f);
    const uint32_t res = c.random("residual", BufferKind::kActivation, RefType::kF32, 1, s.rows + 3);
    c.task(make_task(TaskKind::kLinearResidual,
                     {c.ref(x, 1, 1, 0, s.in), c.ref(w, s.tile_row0, s.tile_rows, 0, s.in),
                      s.bias ? c.ref(bias, 0, 1, s.tile_row0, s.tile_rows) : abi::TensorRef{},
                      c.ref(res, 0, 1, s.tile_row0 + 1, s.tile_rows, RefAccess::kReadWrite)}));
    c.run_and_compare(0, 1);
  }
}

TEST_F(GpuTest, RmsNormGateUpSilu) {
  for (const LinearShape& s : kLinearShapes) {
    SCOPED_TRACE(shape_name(s));
    TaskCase c(fresh_seed());
    const float a = weight_bound(s.in);
    const uint32_t x = c.random("x", BufferKind::kActivation, RefType::kF32, 1, s.in, -2, 2);
    const uint32_t gamma = c.random("norm", BufferKind::kWeight, s.type, 1, s.in, 0.75f, 1.25f);
    const uint32_t wg = c.random("gate", BufferKind::kWeight, s.type, s.rows, s.in, -a, a);
    const uint32_t wu = c.random("up", BufferKind::kWeight, s.type, s.rows, s.in, -a, a);
    const uint32_t bg = c.random("gate_bias", BufferKind::kWeight, s.type, 1, s.rows, -0.1f, 0.1f);
    const uint32_t bu = c.random("up_bias", BufferKind::kWeight, s.type, 1, s.rows, -0.1f, 0.1f);
    const uint32_t out = c.poisoned("out", BufferKind::kActivation, RefType::kF32, 1, s.rows + 2);
    abi::TaskDesc t = make_task(
        TaskKind::kRmsNormGateUpSilu,
        {c.whole(x), c.whole(gamma), c.ref(wg, s.tile_row0, s.tile_rows, 0, s.in),
         c.ref(wu, s.tile_row0, s.tile_rows, 0, s.in),
         s.bias ? c.ref(bg, 0, 1, s.tile_row0, s.tile_rows) : abi::TensorRef{},
         s.bias ? c.ref(bu, 0, 1, s.tile_row0, s.tile_rows) : abi::TensorRef{},
         c.ref(out, 0, 1, s.tile_row0, s.tile_rows, RefAccess::kWrite)});
    t.params.linear = {1e-6f, 0, 0};
    c.task(t);
    c.run_and_compare(0, 1);
  }
}

// The linear body keeps the gate and up tiles' products side by side, a row each per output:
// tiles of different rows are refused when the program is made, not run out of bounds.
TEST_F(GpuTest, GateUpTilesOfDifferentRowsAreRefused) {
  TaskCase c(fresh_seed());
  const uint32_t x = c.random("x", BufferKind::kActivation, RefType::kF32, 1, 256, -2, 2);
  const uint32_t gamma = c.random("norm", BufferKind::kWeight, RefType::kBF16, 1, 256, 0.75f, 1.25f);
  const uint32_t wg = c.random("gate", BufferKind::kWeight, RefType::kBF16, 16, 256, -0.1f, 0.1f);
  const uint32_t wu = c.random("up", BufferKind::kWeight, RefType::kBF16, 16, 256, -0.1f, 0.1f);
  const uint32_t out = c.poisoned("out", BufferKind::kActivation, RefType::kF32, 1, 16);
  abi::TaskDesc t = make_task(TaskKind::kRmsNormGateUpSilu,
                              {c.whole(x), c.whole(gamma), c.ref(wg, 0, 16, 0, 256),
                               c.ref(wu, 0, 8, 0, 256), abi::TensorRef{}, abi::TensorRef{},
                               c.ref(out, 0, 1, 0, 16, RefAccess::kWrite)});
  t.params.linear = {1e-6f, 0, 0};
  c.task(t);
  const StatusOr<std::unique_ptr<cuda::DeviceProgram>> program =
      cuda::DeviceProgram::create(c.graph(), {.device = 0});
  ASSERT_FALSE(program.ok());
  EXPECT_EQ(program.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(program.status().message().find("two weight tiles have 16 and 8 rows"),
            std::string::npos)
      << program.status().message();
}

TEST_F(GpuTest, LmHeadGreedyAndSampled) {
  int variant = 0;
  for (const LinearShape& s : kLinearShapes) {
    for (float temperature : {0.0f, 0.7f}) {
      SCOPED_TRACE(fmt::format("{} temperature {}", shape_name(s), temperature));
      TaskCase c(fresh_seed());
      const float a = 4 * weight_bound(s.in);  // logits of a few units, as in a model
      const uint32_t x = c.random("x", BufferKind::kActivation, RefType::kF32, 1, s.in, -2, 2);
      const uint32_t gamma = c.random("norm", BufferKind::kWeight, s.type, 1, s.in, 0.75f, 1.25f);
      const uint32_t w = c.random("w", BufferKind::kWeight, s.type, s.rows, s.in, -a, a);
      const uint64_t seed = c.rng()();
      const uint32_t control =
          c.control({2, 3, temperature, uint32_t(seed), uint32_t(seed >> 32), 1, {}});
      const uint32_t logits = c.poisoned("logits", BufferKind::kIo, RefType::kF32, 1, s.rows);
      const uint32_t partials = c.poisoned("lm_partials", BufferKind::kActivation, RefType::kI32,
                                           3, sizeof(abi::LmPartial) / 4, Compare::kLmPartials);
      const int32_t tile = 1 + variant++ % 2;
      abi::TaskDesc t = make_task(
          TaskKind::kLmHead,
          {c.whole(x), c.whole(gamma), c.ref(w, s.tile_row0, s.tile_rows, 0, s.in),
           c.whole(control), c.ref(logits, 0, 1, s.tile_row0, s.tile_rows, RefAccess::kWrite),
           c.ref(partials, tile, 1, 0, sizeof(abi::LmPartial) / 4, RefAccess::kWrite)});
      t.params.linear = {1e-6f, tile, int32_t(s.tile_row0)};
      c.task(t);
      c.run_and_compare(7, 8);
    }
  }
}

// ---- attention

struct HeadShape {
  int32_t head_dim, group, kv_heads;
  RefType cache;
};
// head_dim 18, the f32 cache and head_dim 256 take the scalar attention pass, the others the
// vector pass (bf16/f16 rows of whole 16-byte vectors up to 256 bytes): head_dim 96 leaves
// threads without a value column, a group of 8 takes two passes of query heads. In the bf16
// decode kernel the bf16 ones of those take the tensor-core pass: head_dim 64 is
// Llama-3.2-1B's, 48 leaves a k-step partly past the head's dims, 40 and 120 an output tile
// too, a group of 6 takes two passes, groups of 3 and 1 leave heads of a pass empty.
const HeadShape kHeadShapes[] = {
    {18, 3, 2, RefType::kBF16},
    {64, 2, 3, RefType::kF16},
    {128, 4, 2, RefType::kF32},
    {256, 1, 1, RefType::kBF16},
    {128, 4, 2, RefType::kBF16},
    {96, 6, 1, RefType::kBF16},
    {64, 4, 2, RefType::kBF16},
    {48, 2, 2, RefType::kBF16},
    {40, 3, 2, RefType::kBF16},
    {120, 1, 2, RefType::kBF16},
    {64, 8, 1, RefType::kF16},
};

// One step's token for a layer's attention: q, k and v rows of every KV head, the per-head
// norm weights, rotary frequencies as a model's, random caches and the position.
struct TokenInputs {
  uint32_t q, k, v, q_norm, k_norm, positions, inv_freq, k_cache, v_cache;
  int64_t max_seq;
};
TokenInputs token_inputs(TaskCase& c, const HeadShape& h, int64_t max_seq, int32_t position) {
  const int64_t hd = h.head_dim;
  TokenInputs in{};
  in.max_seq = max_seq;
  in.q = c.random("q", BufferKind::kActivation, RefType::kF32, 1, h.kv_heads * h.group * hd, -2, 2);
  in.k = c.random("k", BufferKind::kActivation, RefType::kF32, 1, h.kv_heads * hd, -2, 2);
  in.v = c.random("v", BufferKind::kActivation, RefType::kF32, 1, h.kv_heads * hd, -2, 2);
  in.q_norm = c.random("q_norm", BufferKind::kWeight, h.cache, 1, hd, 0.75f, 1.25f);
  in.k_norm = c.random("k_norm", BufferKind::kWeight, h.cache, 1, hd, 0.75f, 1.25f);
  in.positions = c.ints("positions", BufferKind::kActivation, 1, {position});
  in.inv_freq = c.random("inv_freq", BufferKind::kWeight, RefType::kF32, 1, hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i) c.set(in.inv_freq, i, float(std::pow(10000.0, -2.0 * i / hd)));
  in.k_cache = c.random("k_cache", BufferKind::kState, h.cache, max_seq, h.kv_heads * hd);
  in.v_cache = c.random("v_cache", BufferKind::kState, h.cache, max_seq, h.kv_heads * hd);
  return in;
}

// Split `split` of `splits` of KV head `head`'s attention, writing `out` (and `lse`, `new_kv`
// when split).
abi::TaskDesc attention_task(const TaskCase& c, const TokenInputs& in, const HeadShape& h,
                             int64_t head, bool norm, int32_t split, int32_t splits,
                             abi::TensorRef out, abi::TensorRef lse, abi::TensorRef new_kv) {
  const int64_t hd = h.head_dim;
  const RefAccess cache = splits > 1 ? RefAccess::kRead : RefAccess::kReadWrite;
  abi::TaskDesc t = make_task(
      TaskKind::kAttentionPartial,
      {c.ref(in.q, 0, 1, head * h.group * hd, h.group * hd), c.ref(in.k, 0, 1, head * hd, hd),
       c.ref(in.v, 0, 1, head * hd, hd), norm ? c.whole(in.q_norm) : abi::TensorRef{},
       norm ? c.whole(in.k_norm) : abi::TensorRef{}, c.whole(in.positions), c.whole(in.inv_freq),
       c.ref(in.k_cache, 0, in.max_seq, head * hd, hd, cache),
       c.ref(in.v_cache, 0, in.max_seq, head * hd, hd, cache), out, lse, new_kv});
  t.params.attention = {float(1.0 / std::sqrt(double(hd))), h.head_dim, h.group, split, splits,
                        1e-6f};
  return t;
}

// KV head `head`'s merge of `splits` partials of its group's rows, appending the token's key
// and value (new_kv) to the caches at the position.
abi::TaskDesc merge_task(const TaskCase& c, const HeadShape& h, int64_t head, int32_t splits,
                         uint32_t partial, uint32_t lse, uint32_t out, uint32_t new_kv,
                         uint32_t positions, uint32_t k_cache, uint32_t v_cache, int64_t max_seq) {
  const int64_t hd = h.head_dim, rows = h.group, row = head * splits * rows;
  abi::TaskDesc t = make_task(
      TaskKind::kAttentionMerge,
      {c.ref(partial, row, splits * rows, 0, hd), c.ref(lse, row, splits * rows, 0, 1),
       c.ref(out, 0, 1, head * h.group * hd, h.group * hd, RefAccess::kWrite),
       c.ref(new_kv, head, 1, 0, 2 * hd), c.whole(positions),
       c.ref(k_cache, 0, max_seq, head * hd, hd, RefAccess::kWrite),
       c.ref(v_cache, 0, max_seq, head * hd, hd, RefAccess::kWrite)});
  t.params.attention = {0.0f, h.head_dim, h.group, 0, splits, 0.0f};  // scale unused
  return t;
}

// Every split of every head, then the merges, which append the token to the caches: the
// partials, log-sum-exps, handed-over key and value, outputs and caches are all compared.
TEST_F(GpuTest, AttentionSplitsAndMerge) {
  for (const HeadShape& h : kHeadShapes) {
    // Position 1 with 4 splits leaves splits 2 and 3 empty; 2000 gives splits of more than
    // one block of keys.
    for (int32_t position : {1, 37, 200, 2000}) {
      const bool norm = position % 2 == 1;
      SCOPED_TRACE(fmt::format("head_dim {} group {} cache {} position {} norm {}", h.head_dim,
                               h.group, type_name(h.cache), position, norm));
      TaskCase c(fresh_seed());
      const int64_t hd = h.head_dim, splits = 4, rows = h.group;
      const TokenInputs in = token_inputs(c, h, 2011, position);
      const uint32_t partial = c.poisoned("partial", BufferKind::kActivation, RefType::kF32,
                                          h.kv_heads * splits * rows, hd);
      const uint32_t lse = c.poisoned("lse", BufferKind::kActivation, RefType::kF32,
                                      h.kv_heads * splits * rows, 1);
      const uint32_t new_kv = c.poisoned("new_kv", BufferKind::kActivation, RefType::kF32,
                                         h.kv_heads, 2 * hd);
      const uint32_t out = c.poisoned("out", BufferKind::kActivation, RefType::kF32, 1,
                                      h.kv_heads * h.group * hd);
      for (int64_t head = 0; head < h.kv_heads; ++head) {
        for (int32_t s = 0; s < splits; ++s) {
          const int64_t row = (head * splits + s) * rows;
          c.task(attention_task(
              c, in, h, head, norm, s, int32_t(splits),
              c.ref(partial, row, rows, 0, hd, RefAccess::kWrite),
              c.ref(lse, row, rows, 0, 1, RefAccess::kWrite),
              s == 0 ? c.ref(new_kv, head, 1, 0, 2 * hd, RefAccess::kWrite) : abi::TensorRef{}));
        }
      }
      for (int64_t head = 0; head < h.kv_heads; ++head) {
        c.task(merge_task(c, h, head, int32_t(splits), partial, lse, out, new_kv, in.positions,
                          in.k_cache, in.v_cache, in.max_seq));
      }
      c.run_and_compare(0, 1);
    }
  }
}

TEST_F(GpuTest, AttentionSingleSplitAppendsAndWritesTheOutput) {
  for (const HeadShape& h : kHeadShapes) {
    for (int32_t position : {0, 37, 210, 700}) {
      for (bool norm : {false, true}) {
        SCOPED_TRACE(fmt::format("head_dim {} group {} cache {} position {} norm {}", h.head_dim,
                                 h.group, type_name(h.cache), position, norm));
        TaskCase c(fresh_seed());
        const int64_t hd = h.head_dim;
        const TokenInputs in = token_inputs(c, h, 701, position);
        const uint32_t out = c.poisoned("out", BufferKind::kActivation, RefType::kF32, 1,
                                        h.kv_heads * h.group * hd);
        for (int64_t head = 0; head < h.kv_heads; ++head) {
          c.task(attention_task(c, in, h, head, norm, 0, 1,
                                c.ref(out, 0, 1, head * h.group * hd, h.group * hd, RefAccess::kWrite),
                                abi::TensorRef{}, abi::TensorRef{}));
        }
        c.run_and_compare(0, 1);
      }
    }
  }
}

// Many splits: the merge's batches of partials, and an empty split's weight.
TEST_F(GpuTest, AttentionMerge) {
  for (const HeadShape& h : kHeadShapes) {
    for (int32_t splits : {1, 5, 66}) {
      SCOPED_TRACE(fmt::format("head_dim {} group {} splits {}", h.head_dim, h.group, splits));
      TaskCase c(fresh_seed());
      const int64_t hd = h.head_dim, rows = h.group, max_seq = 9;
      const uint32_t partial = c.random("partial", BufferKind::kActivation, RefType::kF32,
                                        h.kv_heads * splits * rows, hd, -2, 2);
      const uint32_t lse = c.random("lse", BufferKind::kActivation, RefType::kF32,
                                    h.kv_heads * splits * rows, 1, -3, 3);
      if (splits > 1) c.set(lse, rows, -INFINITY);  // an empty split of the first head
      const uint32_t out = c.poisoned("out", BufferKind::kActivation, RefType::kF32, 1,
                                      h.kv_heads * h.group * hd);
      const uint32_t new_kv = c.random("new_kv", BufferKind::kActivation, RefType::kF32,
                                       h.kv_heads, 2 * hd, -2, 2);
      const uint32_t pos = c.ints("positions", BufferKind::kActivation, 1, {int32_t(max_seq - 1)});
      const uint32_t kc = c.random("k_cache", BufferKind::kState, h.cache, max_seq, h.kv_heads * hd);
      const uint32_t vc = c.random("v_cache", BufferKind::kState, h.cache, max_seq, h.kv_heads * hd);
      for (int64_t head = 0; head < h.kv_heads; ++head) {
        c.task(merge_task(c, h, head, splits, partial, lse, out, new_kv, pos, kc, vc, max_seq));
      }
      c.run_and_compare(0, 1);
    }
  }
}

// ---- sampling

TEST_F(GpuTest, SampleGreedySampledAndForced) {
  // Position 3 of a 5-token prompt takes the prompt's token; position 6 samples.
  for (int64_t step : {13, 16}) {
    for (float temperature : {0.0f, 0.8f}) {
      for (int32_t tiles : {1, 7, 133}) {
        SCOPED_TRACE(fmt::format("step {} temperature {} tiles {}", step, temperature, tiles));
        TaskCase c(fresh_seed());
        const int32_t tile_rows = 29, vocab = tiles * tile_rows - 3, max_seq = 12;
        std::uniform_real_distribution<float> logit(-5, 5);
        std::vector<float> logits(static_cast<size_t>(vocab));
        for (float& l : logits) l = logit(c.rng());
        const uint32_t lg = c.random("logits", BufferKind::kIo, RefType::kF32, 1, vocab);
        for (int32_t i = 0; i < vocab; ++i) c.set(lg, i, logits[size_t(i)]);
        constexpr int64_t kWords = sizeof(abi::LmPartial) / 4;
        std::vector<int32_t> words(size_t(tiles * kWords));
        for (int32_t t = 0; t < tiles; ++t) {
          const int32_t begin = t * tile_rows, end = std::min(vocab, begin + tile_rows);
          abi::LmPartial p{-INFINITY, 0, 0, -INFINITY, 0, 0};
          for (int32_t id = begin; id < end; ++id) {
            if (logits[size_t(id)] > p.max_logit) p = {logits[size_t(id)], id, 0, 0, 0, 0};
          }
          for (int32_t id = begin; id < end; ++id) p.sum_exp += std::exp(logits[size_t(id)] - p.max_logit);
          p.sample_key = logit(c.rng()) * 3;
          p.sample_id = begin + int32_t(c.rng()() % uint64_t(end - begin));
          std::memcpy(&words[size_t(t * kWords)], &p, sizeof(p));
        }
        const uint32_t partials = c.ints("lm_partials", BufferKind::kActivation, tiles * kWords, words);
        std::vector<int32_t> prompt(max_seq);
        for (auto& p : prompt) p = int32_t(c.rng()() % uint64_t(vocab));
        const uint32_t control = c.control({10, 5, temperature, 1, 2, 1, {}});
        const uint32_t pr = c.ints("prompt", BufferKind::kIo, max_seq, prompt);
        const uint32_t tokens = c.poisoned("tokens", BufferKind::kIo, RefType::kI32, 1, max_seq, Compare::kInts);
        const uint32_t logprobs = c.poisoned("logprobs", BufferKind::kIo, RefType::kF32, 1, max_seq);
        abi::TaskDesc t = make_task(
            TaskKind::kSample,
            {c.whole(partials), c.whole(lg), c.whole(control), c.whole(pr),
             c.whole(tokens, RefAccess::kWrite), c.whole(logprobs, RefAccess::kWrite)});
        // The records as a [tiles, words] window, as the compiler lays them out.
        t.refs[0].rows = tiles;
        t.refs[0].cols = int32_t(kWords);
        t.refs[0].row_stride = kWords;
        t.params.sample = {tiles, vocab};
        c.task(t);
        c.run_and_compare(step, step + 1);
      }
    }
  }
}

// ---- the weight ring across tasks and steps

TEST_F(GpuTest, LinearQueueOverSeveralSteps) {
  TaskCase c(fresh_seed());
  const int64_t hidden = 1000, inter = 392, vocab = 301;
  const float a = weight_bound(hidden), b = weight_bound(inter);
  const uint32_t x = c.random("x", BufferKind::kActivation, RefType::kF32, 1, hidden, -1, 1);
  const uint32_t n1 = c.random("norm1", BufferKind::kWeight, RefType::kBF16, 1, hidden, 0.75f, 1.25f);
  const uint32_t n2 = c.random("norm2", BufferKind::kWeight, RefType::kBF16, 1, hidden, 0.75f, 1.25f);
  const uint32_t wq = c.random("wq", BufferKind::kWeight, RefType::kBF16, 264, hidden, -a, a);
  const uint32_t wo = c.random("wo", BufferKind::kWeight, RefType::kBF16, hidden, 264, -a, a);
  const uint32_t wg = c.random("wg", BufferKind::kWeight, RefType::kBF16, inter, hidden, -a, a);
  const uint32_t wu = c.random("wu", BufferKind::kWeight, RefType::kBF16, inter, hidden, -a, a);
  const uint32_t wd = c.random("wd", BufferKind::kWeight, RefType::kBF16, hidden, inter, -b, b);
  const uint32_t wl = c.random("wl", BufferKind::kWeight, RefType::kBF16, vocab, hidden, -4 * a, 4 * a);
  const uint32_t h = c.poisoned("h", BufferKind::kActivation, RefType::kF32, 1, 264);
  const uint32_t m = c.poisoned("m", BufferKind::kActivation, RefType::kF32, 1, inter);
  const uint32_t control = c.control({0, 1, 0.0f, 0, 0, 1, {}});
  const uint32_t logits = c.poisoned("logits", BufferKind::kIo, RefType::kF32, 1, vocab);
  const uint32_t partials = c.poisoned("lm_partials", BufferKind::kActivation, RefType::kI32, 1,
                                       sizeof(abi::LmPartial) / 4, Compare::kLmPartials);
  abi::TaskDesc t = make_task(TaskKind::kRmsNormLinear,
                              {c.whole(x), c.whole(n1), c.whole(wq), {}, c.whole(h, RefAccess::kWrite)});
  t.params.linear = {1e-6f, 0, 0};
  c.task(t);
  c.task(make_task(TaskKind::kLinearResidual,
                   {c.whole(h), c.whole(wo), {}, c.whole(x, RefAccess::kReadWrite)}));
  t = make_task(TaskKind::kRmsNormGateUpSilu, {c.whole(x), c.whole(n2), c.whole(wg), c.whole(wu),
                                               {}, {}, c.whole(m, RefAccess::kWrite)});
  t.params.linear = {1e-6f, 0, 0};
  c.task(t);
  c.task(make_task(TaskKind::kLinearResidual,
                   {c.whole(m), c.whole(wd), {}, c.whole(x, RefAccess::kReadWrite)}));
  t = make_task(TaskKind::kLmHead, {c.whole(x), c.whole(n1), c.whole(wl), c.whole(control),
                                    c.whole(logits, RefAccess::kWrite),
                                    c.whole(partials, RefAccess::kWrite)});
  t.params.linear = {1e-6f, 0, 0};
  c.task(t);
  c.run_and_compare(0, 3, {1e-3, 1e-3});
}

// ---- the watchdog

TEST_F(GpuTest, WatchdogReportsAnEventNobodySignals) {
  TaskCase c(fresh_seed());
  const uint32_t control = c.control({0, 1, 0.0f, 0, 0, 1, {}});
  const uint32_t p = c.ints("prompt", BufferKind::kIo, 4, {1, 2, 3, 0});
  const uint32_t tk = c.ints("tokens", BufferKind::kIo, 4, {});
  const uint32_t table = c.random("table", BufferKind::kWeight, RefType::kF32, 5, 8);
  const uint32_t x = c.poisoned("x", BufferKind::kActivation, RefType::kF32, 1, 8);
  const uint32_t pos = c.poisoned("positions", BufferKind::kActivation, RefType::kI32, 1, 1, Compare::kInts);
  abi::TaskDesc t = make_task(TaskKind::kEmbedding,
                              {c.whole(control), c.whole(p), c.whole(tk), c.whole(table),
                               c.whole(x, RefAccess::kWrite), c.whole(pos, RefAccess::kWrite)});
  t.wait_begin = 0;
  t.wait_count = 1;
  c.task(t);
  TaskGraph tg = c.graph();
  tg.events.push_back({1, 0, 0});
  tg.waits.push_back({0, 0});
  auto program = cuda::DeviceProgram::create(tg, {.device = 0, .watchdog_timeout_s = 0.5});
  ASSERT_TRUE(program.ok()) << program.status().message();
  const auto start = std::chrono::steady_clock::now();
  const Status s = (*program)->run(0, 1);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("deadlock"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("event 0: counter 0 of 1"), std::string::npos) << s.message();
  EXPECT_LT(seconds, 5.0);
  EXPECT_FALSE((*program)->run(0, 1).ok()) << "a program that faulted must not run again";
  fmt::print("watchdog report after {:.2f} s: {}\n", seconds, s.message());
}

// ---- whole models

struct ModelCase {
  Architecture arch;
  DType dtype;
  SchedulingMode mode = SchedulingMode::kStatic;
  bool kernel_per_op = false;  // the megakernel's ablation (static mode's queues per op)
  // Hidden 256, intermediate 768, head_dim 64, compiled with claimed rows (on every SM): rows
  // that split into the matvec items, so the gate/up and residual linears claim them
  // (compiler/claimed_rows.h).
  bool wide = false;
  int32_t batch = 3;  // GpuBatchTest's slots
  // Workers that run only attention, which then stages the cache in their idle weight rings
  // (CompileOptions::attention_workers); 0: shared.
  int32_t attention_workers = 0;
  // A bf16 model on the general kernel instead of the one compiled for bf16 decode.
  bool general_paths = false;
  // 0: every SM. Otherwise the wide shapes on this many workers and without claimed rows: tiles
  // of at least 4 rows of whole items, which the bf16 decode kernel multiplies (the tiny
  // shapes' rows of 128 columns and the wide ones' tiles on every SM, 2 to 6 rows, take the
  // general kernel).
  int32_t workers = 0;
};

// Which kernel a case's launches run: the bf16 decode one wherever it covers the graph.
bool runs_bf16_decode_kernel(const ModelCase& mc) {
  return mc.dtype == DType::kBF16 && mc.mode == SchedulingMode::kStatic && mc.workers > 0 &&
         !mc.general_paths;
}
bool claims_every_row(const ModelCase& mc) { return mc.wide && mc.workers == 0; }

// A case's test name: llama_bf16_dynamic_wide, ...
std::string case_name(const ModelCase& mc) {
  return fmt::format("{}_{}{}{}{}{}{}{}", architecture_short_name(mc.arch),
                     dtype_short_name(mc.dtype),
                     mc.mode == SchedulingMode::kDynamic ? "_dynamic" : "",
                     mc.kernel_per_op ? "_kernel_per_op" : "", mc.wide ? "_wide" : "",
                     mc.workers > 0 ? fmt::format("_{}_workers", mc.workers) : "",
                     mc.attention_workers > 0 ? "_attention_workers" : "",
                     mc.general_paths ? "_general_paths" : "");
}

// All SMs work in static mode; dynamic mode's schedulers take one.
int32_t workers_for(SchedulingMode mode) {
  return sm_count() - (mode == SchedulingMode::kDynamic ? 1 : 0);
}

// The model a case runs: the architecture's tiny preset in the case's dtype, or its wide shapes.
ModelConfig model_config(const ModelCase& mc) {
  auto preset = preset_config(mc.arch, "tiny");
  MEGALITH_CHECK(preset.ok(), "{}", preset.status().message());
  ModelConfig cfg = *preset;
  cfg.dtype = mc.dtype;
  if (mc.wide) {
    cfg.hidden_size = 256;
    cfg.intermediate_size = 768;
    cfg.head_dim = 64;
  }
  return cfg;
}

CudaExecutorOptions executor_options(const ModelCase& mc) {
  CudaExecutorOptions options;
  options.mode = mc.mode;
  options.kernel_per_op = mc.kernel_per_op;
  options.general_paths = mc.general_paths;
  return options;
}

// How far a whole model's log-probs and logits may sit from the CPU executor's. Float32's
// last-bit differences flip the rounding of a bf16 cache element now and then (a step of 2^-8
// of it), and on some random models that moves a log-prob by 1e-2: the CPU executor itself,
// with 1e-6 relative noise on the keys and values before they are rounded (the Llama wide
// shapes at batch 4, 150 seeds), moved them by 3.4e-5 at the median, 1.3e-3 at the 90th
// percentile and 1.75e-2 at most, above 2e-3 on 6 seeds (docs/performance.md, twenty-ninth
// session). An f16 cache's step is 8x finer (the same on the Qwen2 shapes, 100 seeds: 5.7e-4
// at most), an f32 cache rounds nothing.
double cpu_tolerance(DType cache_dtype) { return cache_dtype == DType::kBF16 ? 3e-2 : 2e-3; }
// How close two tokens' log-probs must be for the executors' argmaxes to fall either way: about
// 1e-6 apart in f32 and f16, but bf16's executors disagree by up to a few 1e-3 (qwen3_bf16_dynamic
// with seed 17897497055576240467 picks 207 at -4.01406 on the GPU, 237 at -4.01232 on the CPU,
// every run and every build: numerics, not a race).
double tie_logprob(DType cache_dtype) { return cache_dtype == DType::kBF16 ? 1e-2 : 1e-4; }

class ModelCaseTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override { ASSERT_GT(sm_count(), 0) << "these tests need a CUDA device"; }
};

class GpuModelTest : public ModelCaseTest {};

TEST_P(GpuModelTest, SameTokensAsTheCpuExecutor) {
  const ModelCase mc = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(fmt::format("{} {} checkpoint seed {}", architecture_short_name(mc.arch),
                           dtype_short_name(mc.dtype), seed));
  constexpr int64_t kMaxSeq = 96, kNewTokens = 64;
  const fs::path dir = fs::temp_directory_path() /
                       fmt::format("megalith_gpu_{}_{}", architecture_short_name(mc.arch), getpid());
  fs::remove_all(dir);
  const ModelConfig cfg = model_config(mc);
  ASSERT_TRUE(write_random_checkpoint(cfg, {.seed = seed}, dir).ok());
  auto ckpt = load_checkpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  auto graph = build_decode_graph((*ckpt)->config(), 1, kMaxSeq);
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  // The Qwen2 and Qwen3 cases split the cache into slices of 16 positions (partials and a
  // merge); the Llama case, like a real short cache, takes one attention task per KV head.
  const int64_t keys_per_split = mc.arch == Architecture::kLlama ? 256 : 16;
  auto tg = compile(*graph, (*ckpt)->config(),
                    {.num_workers = mc.workers > 0 ? mc.workers : workers_for(mc.mode),
                     .attention_keys_per_split = keys_per_split,
                     .attention_workers = mc.attention_workers,
                     .claim_rows = claims_every_row(mc)});
  ASSERT_TRUE(tg.ok()) << tg.status().message();
  auto claimed = claimed_ops(*tg);
  ASSERT_TRUE(claimed.ok()) << claimed.status().message();
  EXPECT_EQ(claimed->empty(), !claims_every_row(mc))
      << "the wide shapes on every SM claim rows; the tiny ones cannot";
  auto cpu = CpuExecutor::create(*tg, **ckpt, {});
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  auto gpu = CudaExecutor::create(*tg, **ckpt, executor_options(mc));
  ASSERT_TRUE(gpu.ok()) << gpu.status().message();
  EXPECT_EQ((*gpu)->bf16_decode_kernel(), runs_bf16_decode_kernel(mc));
  fs::remove_all(dir);

  std::mt19937_64 rng(seed);
  auto random_prompt = [&](size_t n) {
    std::vector<int32_t> p(n);
    for (auto& id : p) id = int32_t(rng() % uint64_t(cfg.vocab_size));
    return p;
  };
  // Compares positions [first, end) of both executors. The two agree closely in log-prob, not
  // bit for bit, so where two tokens are that close the argmax may fall either way: a near-tie
  // (both picks' log-probs within tie_logprob()) ends the comparison there, and the
  // continuations, which then differ, are not compared.
  const double tie = tie_logprob(mc.dtype);
  auto compare = [&](int64_t first, int64_t end, const char* what) {
    int64_t diverged = -1, tied = -1;
    double worst_logprob = 0;
    for (int64_t p = first; p < end; ++p) {
      if ((*gpu)->token(p) != (*cpu)->token(p)) {
        const double gap = std::abs(double((*gpu)->logprob(p)) - double((*cpu)->logprob(p)));
        if (gap <= tie) {
          tied = p;
        } else {
          diverged = p;
        }
        break;
      }
      worst_logprob = std::max(worst_logprob, double(std::abs((*gpu)->logprob(p) - (*cpu)->logprob(p))));
    }
    EXPECT_EQ(diverged, -1) << what << ": first different token at position " << diverged
                            << ": gpu " << (*gpu)->token(diverged) << " (logprob "
                            << (*gpu)->logprob(diverged) << "), cpu " << (*cpu)->token(diverged)
                            << " (logprob " << (*cpu)->logprob(diverged) << ")";
    EXPECT_LE(worst_logprob, cpu_tolerance(mc.dtype)) << what;
    double worst_logit = 0;
    size_t worst_index = 0;
    for (size_t i = 0; tied == -1 && i < (*cpu)->logits().size(); ++i) {
      const double c = (*cpu)->logits()[i], g = (*gpu)->logits()[i];
      const double d = std::abs(g - c) / (1 + std::abs(c));
      if (d > worst_logit) worst_logit = d, worst_index = i;
    }
    EXPECT_LE(worst_logit, cpu_tolerance(mc.dtype))
        << what << ": logit " << worst_index << ", gpu " << (*gpu)->logits()[worst_index]
        << ", cpu " << (*cpu)->logits()[worst_index];
    const int64_t last = diverged != -1 ? diverged : tied != -1 ? tied : end;
    fmt::print("{} {} {}: {} tokens equal{}, max |logprob diff| {:.2e}, max logit diff {:.2e}\n",
               architecture_short_name(mc.arch), dtype_short_name(mc.dtype), what, last - first,
               tied == -1 ? "" : fmt::format(" then a near-tie ({} against {})", (*gpu)->token(tied),
                                             (*cpu)->token(tied)),
               worst_logprob, worst_logit);
  };

  // Greedy: the prompt and 64 new tokens; the GPU in two launches.
  const std::vector<int32_t> prompt = random_prompt(7);
  const int64_t n = int64_t(prompt.size());
  ASSERT_TRUE((*cpu)->start_sequence(prompt).ok());
  ASSERT_TRUE((*gpu)->start_sequence(prompt).ok());
  ASSERT_TRUE((*cpu)->run(n + kNewTokens - 1).ok());
  const auto t0 = std::chrono::steady_clock::now();
  Status s = (*gpu)->run(n + 31);
  ASSERT_TRUE(s.ok()) << s.message();
  const auto t1 = std::chrono::steady_clock::now();
  s = (*gpu)->run(kNewTokens - 32);
  ASSERT_TRUE(s.ok()) << s.message();
  const auto t2 = std::chrono::steady_clock::now();
  compare(n - 1, n + kNewTokens - 1, "greedy");
  fmt::print("  {} tasks on {} workers; launches of {} and {} steps took {:.0f} and {:.0f} us\n",
             tg->tasks.size(), tg->num_workers, n + 31, kNewTokens - 32,
             std::chrono::duration<double, std::micro>(t1 - t0).count(),
             std::chrono::duration<double, std::micro>(t2 - t1).count());

  // A second sequence on the same executors, sampled.
  const std::vector<int32_t> prompt2 = random_prompt(5);
  const int64_t n2 = int64_t(prompt2.size());
  ASSERT_TRUE((*cpu)->start_sequence(prompt2, 0.8, seed).ok());
  ASSERT_TRUE((*gpu)->start_sequence(prompt2, 0.8, seed).ok());
  ASSERT_TRUE((*cpu)->run(n2 + 31).ok());
  s = (*gpu)->run(n2 + 31);
  ASSERT_TRUE(s.ok()) << s.message();
  compare(n2 - 1, n2 + 31, "sampled");
}

// Batch 2, 3 or 4: sequences joining at different steps, one sampled, one slot going idle.
// Every slot gets the CPU executor's tokens, and on the GPU exactly (bit for bit) what it gets
// alone. The wide shapes take the item path (2 or 4 slots an item at batch 2 and 4), the tiny
// ones the general path.
class GpuBatchTest : public ModelCaseTest {};

TEST_P(GpuBatchTest, SlotsMatchTheCpuAndThemselvesAlone) {
  const ModelCase mc = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(fmt::format("{} {} weights seed {}", architecture_short_name(mc.arch),
                           dtype_short_name(mc.dtype), seed));
  constexpr int64_t kMaxSeq = 64;
  const ModelConfig cfg = model_config(mc);
  auto ckpt = random_checkpoint(cfg, seed);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  auto graph = build_decode_graph(cfg, 1, kMaxSeq);
  ASSERT_TRUE(graph.ok());
  auto tg = compile(*graph, cfg, {.num_workers = workers_for(mc.mode), .batch = mc.batch,
                                  .attention_keys_per_split = 16,
                                  .attention_workers = mc.attention_workers});
  ASSERT_TRUE(tg.ok()) << tg.status().message();
  const CudaExecutorOptions gpu_options = executor_options(mc);
  const std::vector<int32_t> a = {5, 17, 3, 250, 42}, b = {9, 9, 1}, c = {77, 1, 2, 3, 4, 5, 6};
  // a in the last slot from step 0, b (sampled) in slot 0 from step 5, c in slot 1 from step 11
  // (batch 3 and up); a's slot idles after its 30 positions.
  const int32_t slot_a = mc.batch - 1, slot_c = mc.batch >= 3 ? 1 : -1;
  auto together = [&](Executor& x) {
    ASSERT_TRUE(x.start_sequence(a, 0.0, 0, slot_a).ok());
    ASSERT_TRUE(x.run(5).ok());
    ASSERT_TRUE(x.start_sequence(b, 0.9, seed, 0).ok());
    ASSERT_TRUE(x.run(6).ok());
    if (slot_c >= 0) {
      ASSERT_TRUE(x.start_sequence(c, 0.0, 0, slot_c).ok());
    }
    ASSERT_TRUE(x.run(19).ok());
    ASSERT_TRUE(x.end_sequence(slot_a).ok());
    const Status s = x.run(11);
    ASSERT_TRUE(s.ok()) << s.message();
  };
  auto cpu = CpuExecutor::create(*tg, **ckpt, {});
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  auto gpu = CudaExecutor::create(*tg, **ckpt, gpu_options);
  ASSERT_TRUE(gpu.ok()) << gpu.status().message();
  together(**cpu);
  together(**gpu);
  // slot -> its prompt and the positions it computed: b 36, c 30. Log-probs are compared
  // where the tokens are the model's (from the prompt's last position), as GpuModelTest does.
  struct Held {
    int32_t slot;
    int64_t prompt, n;
  };
  std::vector<Held> slots = {{0, int64_t(b.size()), 36}};
  if (slot_c >= 0) slots.push_back({slot_c, int64_t(c.size()), 30});
  for (const auto& [slot, prompt, n] : slots) {
    // The worst position, and the first one off by more than float32's usual 1e-5: where a
    // failure starts, if it is not where it is largest.
    double worst = 0;
    int64_t worst_at = -1, first_off = -1;
    for (int64_t p = 0; p < n; ++p) {
      ASSERT_EQ((*gpu)->token(p, slot), (*cpu)->token(p, slot)) << "slot " << slot << " position " << p;
      if (p < prompt - 1) continue;
      const double d = std::abs(double((*gpu)->logprob(p, slot)) - double((*cpu)->logprob(p, slot)));
      if (d > 1e-5 && first_off < 0) first_off = p;
      if (d > worst) worst = d, worst_at = p;
    }
    const auto at = [&](int64_t p) {
      return p < 0 ? std::string("none")
                   : fmt::format("position {}: gpu {:.6f}, cpu {:.6f}", p, (*gpu)->logprob(p, slot),
                                 (*cpu)->logprob(p, slot));
    };
    EXPECT_LE(worst, cpu_tolerance(mc.dtype))
        << "slot " << slot << ", worst at " << at(worst_at) << "; first above 1e-5 at "
        << at(first_off);
  }
  // Alone on the GPU, in slot 0 of a fresh executor: bit for bit the batched slot's.
  struct Alone {
    std::vector<int32_t> prompt;
    double temperature;
    int32_t slot;
    int64_t n;
  };
  std::vector<Alone> alone = {{b, 0.9, 0, 36}};
  if (slot_c >= 0) alone.push_back({c, 0.0, slot_c, 30});
  for (const auto& one : alone) {
    auto x = CudaExecutor::create(*tg, **ckpt, gpu_options);
    ASSERT_TRUE(x.ok()) << x.status().message();
    ASSERT_TRUE((*x)->start_sequence(one.prompt, one.temperature, seed).ok());
    ASSERT_TRUE((*x)->run(one.n).ok());
    for (int64_t p = 0; p < one.n; ++p) {
      ASSERT_EQ((*x)->token(p), (*gpu)->token(p, one.slot)) << "position " << p;
      ASSERT_EQ((*x)->logprob(p), (*gpu)->logprob(p, one.slot)) << "position " << p;
    }
  }
  fmt::print("{} {}{}{}: batch {} on the GPU matches the CPU and each slot alone\n",
             architecture_short_name(mc.arch), dtype_short_name(mc.dtype), mc.wide ? " wide" : "",
             mc.mode == SchedulingMode::kDynamic ? " dynamic" : mc.kernel_per_op ? " kernel-per-op" : "",
             mc.batch);
}

INSTANTIATE_TEST_SUITE_P(Batches, GpuBatchTest,
                         ::testing::Values(ModelCase{Architecture::kLlama, DType::kBF16},
                                           ModelCase{Architecture::kQwen2, DType::kF16},
                                           ModelCase{Architecture::kQwen3, DType::kF32},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kDynamic},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, true},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, false, false, 2},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true, 2},
                                           ModelCase{Architecture::kQwen3, DType::kF32,
                                                     SchedulingMode::kStatic, false, true, 2},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true, 4},
                                           ModelCase{Architecture::kQwen2, DType::kF16,
                                                     SchedulingMode::kDynamic, false, true, 4},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, false, false, 3, 6}),
                         [](const auto& info) {
                           return fmt::format("{}_batch{}", case_name(info.param), info.param.batch);
                         });

// Every position's token reaches the host through host-mapped memory during the launch, in
// order, once, equal to what run() reports at its end; a second launch continues the count.
TEST_P(GpuModelTest, TokensArePublishedWhileTheLaunchRuns) {
  const ModelCase mc = GetParam();
  const ModelConfig cfg = model_config(mc);
  auto graph = build_decode_graph(cfg, 1, 96);
  ASSERT_TRUE(graph.ok());
  auto tg = compile(*graph, cfg, {.num_workers = workers_for(mc.mode)});
  ASSERT_TRUE(tg.ok()) << tg.status().message();
  struct Published {
    int64_t position;
    int32_t token;
    float logprob;
    std::chrono::steady_clock::time_point at;
  };
  std::vector<Published> seen;
  CudaExecutorOptions options;
  options.mode = mc.mode;
  options.on_token = [&](int64_t position, int32_t token, float logprob) {
    seen.push_back({position, token, logprob, std::chrono::steady_clock::now()});
  };
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(fmt::format("weights seed {}", seed));
  auto exec = CudaExecutor::create_random(*tg, cfg, seed, options);
  ASSERT_TRUE(exec.ok()) << exec.status().message();
  ASSERT_TRUE((*exec)->start_sequence(std::vector<int32_t>{5, 4, 3}, 0.7, 11).ok());
  const auto start = std::chrono::steady_clock::now();
  Status s = (*exec)->run(60);
  ASSERT_TRUE(s.ok()) << s.message();
  const auto end = std::chrono::steady_clock::now();
  s = (*exec)->run(20);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(seen.size(), 80u);
  for (int64_t p = 0; p < 80; ++p) {
    EXPECT_EQ(seen[size_t(p)].position, p);
    EXPECT_EQ(seen[size_t(p)].token, (*exec)->token(p)) << p;
    EXPECT_EQ(seen[size_t(p)].logprob, (*exec)->logprob(p)) << p;
  }
  const auto us = [&](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::micro>(t - start).count();
  };
  fmt::print("{} {}: the first token reached the host after {:.0f} us, the 30th after {:.0f} us, "
             "of a {:.0f} us launch\n", architecture_short_name(mc.arch), dtype_short_name(mc.dtype),
             us(seen[0].at), us(seen[29].at), us(end));
}

// Weights the GPU generates from a seed are the checkpoint's, bit for bit: the same task graph
// bound to both gives identical logits after a prompt and identical greedy tokens.
TEST_P(GpuModelTest, RandomWeightsOnTheGpuEqualTheCheckpoints) {
  const ModelCase mc = GetParam();
  const ModelConfig cfg = model_config(mc);
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(fmt::format("weights seed {}", seed));
  auto ckpt = random_checkpoint(cfg, seed);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  auto graph = build_decode_graph(cfg, 1, 64);
  ASSERT_TRUE(graph.ok());
  auto tg = compile(*graph, cfg, {.num_workers = sm_count()});
  ASSERT_TRUE(tg.ok()) << tg.status().message();
  auto from_host = CudaExecutor::create(*tg, **ckpt, {});
  ASSERT_TRUE(from_host.ok()) << from_host.status().message();
  auto on_gpu = CudaExecutor::create_random(*tg, cfg, seed, {});
  ASSERT_TRUE(on_gpu.ok()) << on_gpu.status().message();
  const std::vector<int32_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  for (auto* exec : {from_host->get(), on_gpu->get()}) {
    ASSERT_TRUE(exec->start_sequence(prompt).ok());
    const Status s = exec->run(40);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  for (int64_t p = 0; p < 40; ++p) {
    ASSERT_EQ((*from_host)->token(p), (*on_gpu)->token(p)) << "position " << p;
  }
  const auto a = (*from_host)->logits(), b = (*on_gpu)->logits();
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
      << "the logits differ: the weights are not the same bits";
}

INSTANTIATE_TEST_SUITE_P(Architectures, GpuModelTest,
                         ::testing::Values(ModelCase{Architecture::kLlama, DType::kBF16},
                                           ModelCase{Architecture::kQwen2, DType::kF16},
                                           ModelCase{Architecture::kQwen3, DType::kF32},
                                           ModelCase{Architecture::kQwen3, DType::kBF16},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kDynamic},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kDynamic},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, true},
                                           ModelCase{Architecture::kQwen2, DType::kF16,
                                                     SchedulingMode::kStatic, true},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true},
                                           ModelCase{Architecture::kQwen2, DType::kF16,
                                                     SchedulingMode::kStatic, false, true},
                                           ModelCase{Architecture::kQwen3, DType::kF32,
                                                     SchedulingMode::kStatic, false, true},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kDynamic, false, true},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kStatic, false, false, 3, 2},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kDynamic, false, false, 3, 2},
                                           ModelCase{Architecture::kQwen2, DType::kF16,
                                                     SchedulingMode::kStatic, true, false, 3, 2},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kStatic, false, false, 3, 0,
                                                     true},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, true, false, 3, 0,
                                                     true},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true, 3, 0,
                                                     false, 12},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true, 3, 2,
                                                     false, 12},
                                           ModelCase{Architecture::kLlama, DType::kBF16,
                                                     SchedulingMode::kStatic, true, true, 3, 0,
                                                     false, 12},
                                           ModelCase{Architecture::kQwen3, DType::kBF16,
                                                     SchedulingMode::kStatic, false, true, 3, 0,
                                                     true, 12}),
                         [](const auto& info) { return case_name(info.param); });

}  // namespace
}  // namespace megalith
