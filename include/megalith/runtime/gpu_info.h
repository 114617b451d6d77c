// What a benchmark needs to know about the GPU it runs on: its name and size, and the
// bandwidth of a streaming read, measured now (the floor of every decode figure is the weight
// bytes a step reads divided by it). Available when megalith is built with nvcc.
//
//   MEGALITH_ASSIGN_OR_RETURN(GpuInfo gpu, gpu_info(0));
//   MEGALITH_ASSIGN_OR_RETURN(double bytes_per_s, measure_read_bandwidth(0));
#pragma once

#include <cstdint>
#include <string>

#include "megalith/core/status.h"

namespace megalith {

struct GpuInfo {
  std::string name;
  int32_t sms = 0;
  uint64_t memory_bytes = 0;
  int32_t memory_clock_khz = 0, bus_width_bits = 0;
};
StatusOr<GpuInfo> gpu_info(int32_t device);

// Bytes per second of a read-only kernel streaming `bytes` of device memory with many loads in
// flight per thread: the median of 10 timed passes after 3 warm-up passes.
StatusOr<double> measure_read_bandwidth(int32_t device, uint64_t bytes = uint64_t(4) << 30);

}  // namespace megalith
