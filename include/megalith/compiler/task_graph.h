// The compiled program: tasks, events, buffers and worker queues, as plain data that both
// executors read. Produced by compile() (compiler.h), proven by verify_task_graph(), saved
// and loaded in a versioned binary format (docs/task_graph_format.md).
//
//   MEGALITH_ASSIGN_OR_RETURN(TaskGraph tg, compile(graph, cfg, {.num_workers = 132}));
//   MEGALITH_RETURN_IF_ERROR(save_task_graph(tg, "qwen3.mtg"));
//   for (uint32_t t : tg.queue(7)) run(tg.tasks[t]);      // worker 7, static mode
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "megalith/abi/task_abi.h"
#include "megalith/core/status.h"
#include "megalith/graph/graph.h"

namespace megalith {

enum class BufferKind : uint8_t {
  kWeight,      // bound to the checkpoint tensor of the same name
  kConstant,    // data computed by the compiler (rotary frequencies), in BufferDesc::data
  kState,       // persists across steps (KV cache), zeroed at start
  kActivation,  // the step's scratch arena; the buffer plan reuses its bytes
  kIo,          // shared with the host: control block, prompt, sampled tokens, logits
};
std::string_view buffer_kind_name(BufferKind k);

struct BufferDesc {
  std::string name;
  BufferKind kind = BufferKind::kActivation;
  ElemType type = ElemType::kF32;  // element type of its tensors (the arena: f32)
  uint64_t bytes = 0;
  std::vector<uint8_t> data;  // kConstant only
};

// A group of tasks computing one fused op ("layers.3.qkv"), for inspection and profiling.
struct FusedOpInfo {
  std::string name;
  abi::TaskKind kind = abi::TaskKind::kEmbedding;
  std::vector<std::string> graph_ops;  // the graph ops it covers
  uint32_t task_begin = 0, task_count = 0;
};

struct TaskGraph {
  static constexpr uint32_t kFormatVersion = 3;

  int32_t num_workers = 0;
  int32_t batch = 0;        // sequences decoded per step, one token each (slots)
  int32_t max_seq_len = 0;  // positions the KV cache holds
  int32_t vocab_size = 0;

  std::vector<BufferDesc> buffers;
  std::vector<FusedOpInfo> ops;
  std::vector<abi::TaskDesc> tasks;  // a topological order: the verifier's program order
  std::vector<abi::EventDesc> events;
  std::vector<abi::EventWait> waits;          // indexed by TaskDesc::wait_begin
  std::vector<abi::EventConsumer> consumers;  // indexed by EventDesc::consumer_begin
  // Static mode: worker w runs queue_tasks[queue_begin[w] .. queue_begin[w+1]) in order,
  // once per step.
  std::vector<uint32_t> queue_begin;
  std::vector<uint32_t> queue_tasks;
  uint32_t source_task = 0;  // the step's first task (embedding), waits on sink's last step
  uint32_t sink_task = 0;    // the step's last task (sampling)
  std::vector<float> task_cost_us;  // the compiler's estimate, for placement and inspect

  std::span<const uint32_t> queue(int32_t worker) const {
    return {queue_tasks.data() + queue_begin[size_t(worker)],
            queue_tasks.data() + queue_begin[size_t(worker) + 1]};
  }
  // kNoBuffer when absent.
  uint32_t find_buffer(std::string_view name) const;
};

std::string_view task_kind_name(abi::TaskKind k);  // "rms_norm_linear", ...
// The refs of a kind, as tasks.def lists them ("x", "norm_weight?", ...).
std::vector<std::string_view> task_ref_names(abi::TaskKind k);

// Bytes a task reads and writes (every ref once), for cost estimates and reports.
uint64_t task_bytes(const TaskGraph& tg, const abi::TaskDesc& t);

Status save_task_graph(const TaskGraph& tg, const std::filesystem::path& path);
StatusOr<TaskGraph> load_task_graph(const std::filesystem::path& path);
std::vector<uint8_t> serialize_task_graph(const TaskGraph& tg);
StatusOr<TaskGraph> deserialize_task_graph(std::span<const uint8_t> bytes,
                                           const std::string& source);

// Everything, for tools: buffers, ops, tasks (with refs, waits and signal) and events.
nlohmann::json task_graph_to_json(const TaskGraph& tg);

}  // namespace megalith
