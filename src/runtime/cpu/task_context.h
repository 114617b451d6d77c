// What a CPU task reference sees: the step, the buffers, and typed views of its refs.
// Internal to src/runtime/cpu.
#pragma once

#include <cstdint>
#include <cstring>

#include "megalith/abi/task_abi.h"
#include "megalith/core/dtype.h"

namespace megalith::cpu {

struct TaskContext {
  int64_t step = 0;
  uint8_t* const* buffers = nullptr;  // base pointer of every buffer
};

// A ref as a matrix of floats (converting bf16/f16 exactly) or of int32.
class RefView {
 public:
  RefView(const TaskContext& ctx, const abi::TensorRef& ref)
      : ref_(ref), data_(ref.buffer == abi::kNoBuffer ? nullptr : ctx.buffers[ref.buffer] + ref.offset) {}

  bool present() const { return data_ != nullptr; }
  int32_t rows() const { return ref_.rows; }
  int32_t cols() const { return ref_.cols; }
  abi::RefType type() const { return ref_.type; }

  float get(int64_t r, int64_t c) const {
    const uint8_t* p = data_ + index(r, c) * elem_bytes();
    switch (ref_.type) {
      case abi::RefType::kBF16: return bf16_to_float(load<uint16_t>(p));
      case abi::RefType::kF16: return f16_to_float(load<uint16_t>(p));
      case abi::RefType::kI32: return float(load<int32_t>(p));
      case abi::RefType::kF32: break;
    }
    return load<float>(p);
  }
  void set(int64_t r, int64_t c, float v) const {
    uint8_t* p = data_ + index(r, c) * elem_bytes();
    switch (ref_.type) {
      case abi::RefType::kBF16: return store(p, float_to_bf16(v));
      case abi::RefType::kF16: return store(p, float_to_f16(v));
      case abi::RefType::kI32: return store(p, int32_t(v));
      case abi::RefType::kF32: return store(p, v);
    }
  }
  int32_t get_int(int64_t r, int64_t c) const { return load<int32_t>(data_ + index(r, c) * 4); }
  void set_int(int64_t r, int64_t c, int32_t v) const { store(data_ + index(r, c) * 4, v); }
  // The ref's first element reinterpreted (partial records).
  template <class T>
  T* as() const { return reinterpret_cast<T*>(data_); }
  // Row r reinterpreted (a slot's control block).
  template <class T>
  T& row_as(int64_t r) const { return *reinterpret_cast<T*>(data_ + index(r, 0) * elem_bytes()); }

 private:
  int64_t index(int64_t r, int64_t c) const { return r * ref_.row_stride + c; }
  int64_t elem_bytes() const { return ref_.type == abi::RefType::kBF16 || ref_.type == abi::RefType::kF16 ? 2 : 4; }
  template <class T>
  static T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
  template <class T>
  static void store(uint8_t* p, T v) { std::memcpy(p, &v, sizeof(T)); }

  const abi::TensorRef& ref_;
  uint8_t* data_;
};

// Row r of `x` normalized by its root mean square (double accumulation) and scaled by
// `gamma` when present, as transformers computes it: gamma * (x * inv_rms).
void rms_normalize_row(const RefView& x, int64_t r, const RefView& gamma, double eps, float* out);

// Every element of `r` (when present) NaN: the outputs of a task that cannot compute.
void fill_nan(const RefView& r);

// sum_i in[i] * w[row, i], accumulated in double.
double dot_row(const float* in, const RefView& w, int64_t row);

// Every task kind's reference, declared from tasks.def.
#define MEGALITH_TASK(Name, snake, refs) void run_##snake(const TaskContext& ctx, const abi::TaskDesc& t);
#include "megalith/abi/tasks.def"
#undef MEGALITH_TASK

void run_task(const TaskContext& ctx, const abi::TaskDesc& t);

}  // namespace megalith::cpu
