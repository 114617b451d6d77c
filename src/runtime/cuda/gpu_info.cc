#include "megalith/runtime/gpu_info.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "cuda_status.h"
#include "probe/stream_read.h"

namespace megalith {

StatusOr<GpuInfo> gpu_info(int32_t device) {
  int count = 0;
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count) {
    return invalid_argument("GPU {} does not exist ({} found)", device, count);
  }
  cudaDeviceProp prop{};
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device));
  GpuInfo info;
  info.name = prop.name;
  info.sms = prop.multiProcessorCount;
  info.memory_bytes = prop.totalGlobalMem;
  MEGALITH_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&info.memory_clock_khz, cudaDevAttrMemoryClockRate, device));
  MEGALITH_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&info.bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, device));
  return info;
}

StatusOr<double> measure_read_bandwidth(int32_t device, uint64_t bytes) {
  MEGALITH_ASSIGN_OR_RETURN(GpuInfo info, gpu_info(device));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  bytes = bytes / 16 * 16;
  const int blocks = 4 * info.sms;
  void* raw_data = nullptr;
  void* raw_sink = nullptr;
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMalloc(&raw_data, bytes));
  std::unique_ptr<void, decltype(&cudaFree)> data(raw_data, &cudaFree);
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMalloc(&raw_sink, size_t(blocks) * 4));
  std::unique_ptr<void, decltype(&cudaFree)> sink(raw_sink, &cudaFree);
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemset(data.get(), 0x3c, bytes));
  cudaEvent_t begin = nullptr, end = nullptr;
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventCreate(&begin));
  std::unique_ptr<CUevent_st, decltype(&cudaEventDestroy)> begin_guard(begin, &cudaEventDestroy);
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventCreate(&end));
  std::unique_ptr<CUevent_st, decltype(&cudaEventDestroy)> end_guard(end, &cudaEventDestroy);
  std::vector<double> seconds;
  for (int pass = 0; pass < 13; ++pass) {
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventRecord(begin));
    MEGALITH_CUDA_RETURN_IF_ERROR(kernels::launch_stream_read(
        data.get(), bytes, static_cast<uint32_t*>(sink.get()), blocks, nullptr));
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventRecord(end));
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(end));
    float ms = 0;
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, begin, end));
    if (pass >= 3) seconds.push_back(double(ms) * 1e-3);
  }
  std::sort(seconds.begin(), seconds.end());
  return double(bytes) / seconds[seconds.size() / 2];
}

}  // namespace megalith
