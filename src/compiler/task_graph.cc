#include "megalith/compiler/task_graph.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace megalith {

namespace {

struct KindInfo {
  std::string_view name;
  std::string_view refs;
};
constexpr KindInfo kKinds[] = {
#define MEGALITH_TASK(Name, snake, refs) {#snake, refs},
#include "megalith/abi/tasks.def"
#undef MEGALITH_TASK
};

constexpr char kMagic[12] = {'M', 'E', 'G', 'A', 'L', 'I', 'T', 'H', '-', 'T', 'G', '\0'};

class Writer {
 public:
  template <class T>
  void pod(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void bytes(const void* data, size_t n) {
    pod(uint64_t(n));
    const auto* p = static_cast<const uint8_t*>(data);
    out.insert(out.end(), p, p + n);
  }
  void string(const std::string& s) { bytes(s.data(), s.size()); }
  template <class T>
  void array(const std::vector<T>& v) {
    pod(uint64_t(v.size()));
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(T));
  }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  Reader(std::span<const uint8_t> in, const std::string& source) : in_(in), source_(source) {}

  template <class T>
  Status pod(T& v) {
    if (in_.size() - pos_ < sizeof(T)) return truncated();
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return {};
  }
  Status string(std::string& s) {
    uint64_t n = 0;
    MEGALITH_RETURN_IF_ERROR(pod(n));
    if (in_.size() - pos_ < n) return truncated();
    s.assign(reinterpret_cast<const char*>(in_.data() + pos_), size_t(n));
    pos_ += size_t(n);
    return {};
  }
  template <class T>
  Status array(std::vector<T>& v) {
    uint64_t n = 0;
    MEGALITH_RETURN_IF_ERROR(pod(n));
    if (n > (in_.size() - pos_) / sizeof(T)) return truncated();
    v.resize(size_t(n));
    std::memcpy(v.data(), in_.data() + pos_, size_t(n) * sizeof(T));
    pos_ += size_t(n) * sizeof(T);
    return {};
  }
  bool at_end() const { return pos_ == in_.size(); }
  Status truncated() const {
    return data_loss("{}: task graph is truncated at byte {} of {}", source_, pos_, in_.size());
  }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  const std::string& source_;
};

}  // namespace

std::string_view buffer_kind_name(BufferKind k) {
  switch (k) {
    case BufferKind::kWeight: return "weight";
    case BufferKind::kConstant: return "constant";
    case BufferKind::kState: return "state";
    case BufferKind::kActivation: return "activation";
    case BufferKind::kIo: return "io";
  }
  return "?";
}

std::string_view task_kind_name(abi::TaskKind k) {
  return uint16_t(k) < abi::kNumTaskKinds ? kKinds[uint16_t(k)].name : "unknown";
}

std::vector<std::string_view> task_ref_names(abi::TaskKind k) {
  std::vector<std::string_view> names;
  if (uint16_t(k) >= abi::kNumTaskKinds) return names;
  std::string_view refs = kKinds[uint16_t(k)].refs;
  while (!refs.empty()) {
    const size_t comma = refs.find(',');
    std::string_view name = refs.substr(0, comma);
    while (name.starts_with(' ')) name.remove_prefix(1);
    names.push_back(name);
    refs = comma == std::string_view::npos ? "" : refs.substr(comma + 1);
  }
  return names;
}

uint32_t TaskGraph::find_buffer(std::string_view name) const {
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (buffers[i].name == name) return uint32_t(i);
  }
  return abi::kNoBuffer;
}

uint64_t task_bytes(const TaskGraph&, const abi::TaskDesc& t) {
  uint64_t bytes = 0;
  for (uint16_t r = 0; r < t.num_refs; ++r) {
    const abi::TensorRef& ref = t.refs[r];
    if (ref.buffer == abi::kNoBuffer) continue;
    bytes += uint64_t(ref.rows) * uint64_t(ref.cols) * elem_size(ElemType(uint8_t(ref.type)));
  }
  return bytes;
}

std::vector<uint8_t> serialize_task_graph(const TaskGraph& tg) {
  Writer w;
  for (char c : kMagic) w.pod(c);
  w.pod(TaskGraph::kFormatVersion);
  w.pod(uint32_t(sizeof(abi::TaskDesc)));
  w.pod(tg.num_workers);
  w.pod(tg.batch);
  w.pod(tg.max_seq_len);
  w.pod(tg.vocab_size);
  w.pod(tg.source_task);
  w.pod(tg.sink_task);
  w.pod(uint64_t(tg.buffers.size()));
  for (const BufferDesc& b : tg.buffers) {
    w.string(b.name);
    w.pod(uint8_t(b.kind));
    w.pod(uint8_t(b.type));
    w.pod(b.bytes);
    w.array(b.data);
  }
  w.pod(uint64_t(tg.ops.size()));
  for (const FusedOpInfo& op : tg.ops) {
    w.string(op.name);
    w.pod(uint16_t(op.kind));
    w.pod(uint64_t(op.graph_ops.size()));
    for (const std::string& g : op.graph_ops) w.string(g);
    w.pod(op.task_begin);
    w.pod(op.task_count);
  }
  w.array(tg.tasks);
  w.array(tg.events);
  w.array(tg.waits);
  w.array(tg.consumers);
  w.array(tg.queue_begin);
  w.array(tg.queue_tasks);
  w.array(tg.task_cost_us);
  return std::move(w.out);
}

StatusOr<TaskGraph> deserialize_task_graph(std::span<const uint8_t> bytes, const std::string& source) {
  Reader r(bytes, source);
  char magic[12];
  for (char& c : magic) MEGALITH_RETURN_IF_ERROR(r.pod(c));
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    return invalid_argument("{}: not a megalith task graph (bad magic)", source);
  }
  uint32_t version = 0, task_size = 0;
  MEGALITH_RETURN_IF_ERROR(r.pod(version));
  MEGALITH_RETURN_IF_ERROR(r.pod(task_size));
  if (version != TaskGraph::kFormatVersion || task_size != sizeof(abi::TaskDesc)) {
    return invalid_argument("{}: task graph format {} (task size {}); this build reads format {} "
                            "(task size {}): recompile it", source, version, task_size,
                            TaskGraph::kFormatVersion, sizeof(abi::TaskDesc));
  }
  TaskGraph tg;
  MEGALITH_RETURN_IF_ERROR(r.pod(tg.num_workers));
  MEGALITH_RETURN_IF_ERROR(r.pod(tg.batch));
  MEGALITH_RETURN_IF_ERROR(r.pod(tg.max_seq_len));
  MEGALITH_RETURN_IF_ERROR(r.pod(tg.vocab_size));
  MEGALITH_RETURN_IF_ERROR(r.pod(tg.source_task));
  MEGALITH_RETURN_IF_ERROR(r.pod(tg.sink_task));
  uint64_t n = 0;
  MEGALITH_RETURN_IF_ERROR(r.pod(n));
  if (n > bytes.size()) return r.truncated();
  tg.buffers.resize(size_t(n));
  for (BufferDesc& b : tg.buffers) {
    uint8_t kind = 0, type = 0;
    MEGALITH_RETURN_IF_ERROR(r.string(b.name));
    MEGALITH_RETURN_IF_ERROR(r.pod(kind));
    MEGALITH_RETURN_IF_ERROR(r.pod(type));
    MEGALITH_RETURN_IF_ERROR(r.pod(b.bytes));
    MEGALITH_RETURN_IF_ERROR(r.array(b.data));
    if (kind > uint8_t(BufferKind::kIo) || type > uint8_t(ElemType::kI32)) {
      return invalid_argument("{}: buffer '{}' has unknown kind or type", source, b.name);
    }
    b.kind = BufferKind(kind);
    b.type = ElemType(type);
  }
  MEGALITH_RETURN_IF_ERROR(r.pod(n));
  if (n > bytes.size()) return r.truncated();
  tg.ops.resize(size_t(n));
  for (FusedOpInfo& op : tg.ops) {
    uint16_t kind = 0;
    uint64_t count = 0;
    MEGALITH_RETURN_IF_ERROR(r.string(op.name));
    MEGALITH_RETURN_IF_ERROR(r.pod(kind));
    MEGALITH_RETURN_IF_ERROR(r.pod(count));
    if (count > bytes.size()) return r.truncated();
    op.kind = abi::TaskKind(kind);
    op.graph_ops.resize(size_t(count));
    for (std::string& g : op.graph_ops) MEGALITH_RETURN_IF_ERROR(r.string(g));
    MEGALITH_RETURN_IF_ERROR(r.pod(op.task_begin));
    MEGALITH_RETURN_IF_ERROR(r.pod(op.task_count));
  }
  MEGALITH_RETURN_IF_ERROR(r.array(tg.tasks));
  MEGALITH_RETURN_IF_ERROR(r.array(tg.events));
  MEGALITH_RETURN_IF_ERROR(r.array(tg.waits));
  MEGALITH_RETURN_IF_ERROR(r.array(tg.consumers));
  MEGALITH_RETURN_IF_ERROR(r.array(tg.queue_begin));
  MEGALITH_RETURN_IF_ERROR(r.array(tg.queue_tasks));
  MEGALITH_RETURN_IF_ERROR(r.array(tg.task_cost_us));
  if (!r.at_end()) return invalid_argument("{}: trailing bytes after the task graph", source);
  return tg;
}

Status save_task_graph(const TaskGraph& tg, const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = serialize_task_graph(tg);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) return io_error("{}: cannot write the task graph", path.string());
  return {};
}

StatusOr<TaskGraph> load_task_graph(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("{}: cannot open the task graph", path.string());
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return deserialize_task_graph(bytes, path.string());
}

nlohmann::json task_graph_to_json(const TaskGraph& tg) {
  using json = nlohmann::json;
  json buffers = json::array(), ops = json::array(), tasks = json::array(), events = json::array();
  for (const BufferDesc& b : tg.buffers) {
    buffers.push_back({{"name", b.name}, {"kind", buffer_kind_name(b.kind)},
                       {"type", elem_type_name(b.type)}, {"bytes", b.bytes}});
  }
  for (const FusedOpInfo& op : tg.ops) {
    ops.push_back({{"name", op.name}, {"kind", task_kind_name(op.kind)},
                   {"graph_ops", op.graph_ops}, {"task_begin", op.task_begin},
                   {"task_count", op.task_count}});
  }
  for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
    const abi::TaskDesc& d = tg.tasks[t];
    json refs = json::array(), waits = json::array();
    const auto names = task_ref_names(d.kind);
    for (uint16_t r = 0; r < d.num_refs && r < names.size(); ++r) {
      const abi::TensorRef& ref = d.refs[r];
      if (ref.buffer == abi::kNoBuffer) continue;
      static constexpr const char* kAccess[] = {"read", "write", "read_write"};
      refs.push_back({{"name", names[r]}, {"buffer", ref.buffer}, {"offset", ref.offset},
                      {"rows", ref.rows}, {"cols", ref.cols}, {"row_stride", ref.row_stride},
                      {"access", kAccess[uint8_t(ref.access) % 3]}});
    }
    for (uint32_t w = d.wait_begin; w < d.wait_begin + d.wait_count && w < tg.waits.size(); ++w) {
      waits.push_back({{"event", tg.waits[w].event}, {"step_offset", tg.waits[w].step_offset}});
    }
    tasks.push_back({{"id", t}, {"kind", task_kind_name(d.kind)}, {"op", d.op},
                     {"worker", d.worker}, {"waits", waits},
                     {"signal", d.signal == abi::kNoEvent ? json(nullptr) : json(d.signal)},
                     {"second_signal",
                      d.second_signal == abi::kNoEvent ? json(nullptr) : json(d.second_signal)},
                     {"refs", refs}, {"bytes", task_bytes(tg, d)},
                     {"cost_us", t < tg.task_cost_us.size() ? tg.task_cost_us[t] : 0.0f}});
  }
  for (uint32_t e = 0; e < tg.events.size(); ++e) {
    const abi::EventDesc& ev = tg.events[e];
    json consumers = json::array();
    for (uint32_t i = ev.consumer_begin; i < ev.consumer_begin + ev.consumer_count && i < tg.consumers.size(); ++i) {
      consumers.push_back({{"task", tg.consumers[i].task}, {"step_offset", tg.consumers[i].step_offset}});
    }
    events.push_back({{"id", e}, {"triggers", ev.triggers}, {"consumers", consumers}});
  }
  return {{"format_version", TaskGraph::kFormatVersion}, {"num_workers", tg.num_workers},
          {"batch", tg.batch}, {"max_seq_len", tg.max_seq_len},
          {"vocab_size", tg.vocab_size}, {"source_task", tg.source_task},
          {"sink_task", tg.sink_task}, {"buffers", buffers}, {"ops", ops}, {"tasks", tasks},
          {"events", events}};
}

}  // namespace megalith
