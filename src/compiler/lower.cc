#include "lower.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "megalith/model/model_graph.h"
#include "megalith/model/reference_model.h"

namespace megalith::compiler {

using abi::RefAccess;
using abi::TaskKind;

int64_t choose_tile_rows(int64_t rows, int64_t row_bytes, int64_t workers, int64_t max_bytes,
                         int64_t multiple) {
  const int64_t total = rows * row_bytes;
  const int64_t rounds = std::max<int64_t>(1, (total + workers * max_bytes - 1) / (workers * max_bytes));
  const int64_t tasks = workers * rounds;
  int64_t tile = std::max<int64_t>(1, (rows + tasks - 1) / tasks);
  if (tile >= multiple) tile = (tile + multiple - 1) / multiple * multiple;
  return tile;
}

namespace {

constexpr int64_t kLmPartialWords = sizeof(abi::LmPartial) / 4;

// Splits of one KV head's attention over a cache of max_seq rows, before the workers' cap. A
// split costs a rotation of the token, a share of the merge and the wait for the slowest of
// the head's splits, so a cache is split only past attention_keys_per_split rows, one split a
// keys_per_split rows. From four times that on, at least kLongCacheSplits: on an H100 at 1,024
// tokens of context 8 splits were 0.3-2.3% faster a step than 4, and at 2,048 tokens 16 were
// 0.6-1.8% slower than 8 (docs/performance.md, forty-fifth session).
constexpr int64_t kLongCacheSplits = 8;
int64_t attention_splits(int64_t max_seq, const CompileOptions& opts) {
  const int64_t by_keys = max_seq / opts.attention_keys_per_split;
  if (by_keys >= 4) return std::max(by_keys, kLongCacheSplits);
  return std::max<int64_t>(1, by_keys);
}

// One linear of a fused op: its weight, optional bias and where its output goes.
struct LinearPart {
  int op;  // the graph op
  ValueId weight, bias, out;
};

class Lowering {
 public:
  Lowering(const Graph& g, const ModelConfig& cfg, const CompileOptions& options)
      : g_(g), cfg_(cfg), opts_(options), value_of_(g.tensors.size(), kNoValue),
        consumers_(g.tensors.size()), producer_(g.tensors.size(), -1),
        covered_(g.ops.size(), false) {
    for (size_t i = 0; i < g.ops.size(); ++i) {
      for (TensorId t : g.ops[i].inputs) consumers_[size_t(t)].push_back(int(i));
      for (TensorId t : g.ops[i].outputs) producer_[size_t(t)] = int(i);
    }
  }

  StatusOr<Program> run() && {
    const TensorId ids = g_.find(kTokenIdsInput);
    if (ids == kNoTensor || g_.tensor(ids).shape[0] != 1) {
      return unimplemented("compiler: only one token per step is compiled (the graph has {})",
                           ids == kNoTensor ? 0 : g_.tensor(ids).shape[0]);
    }
    p_.batch = opts_.batch;
    p_.vocab = int32_t(cfg_.vocab_size);
    for (size_t i = 0; i < g_.ops.size(); ++i) {
      if (covered_[i]) continue;
      MEGALITH_RETURN_IF_ERROR(lower_op(int(i)));
    }
    for (size_t i = 0; i < g_.ops.size(); ++i) {
      if (!covered_[i]) {
        return unimplemented("compiler: op '{}' ({}) matches no fused task pattern",
                             g_.ops[i].name, op_kind_name(g_.ops[i].kind));
      }
    }
    p_.source = 0;
    p_.sink = uint32_t(p_.tasks.size() - 1);
    if (p_.tasks.front().kind != TaskKind::kEmbedding || p_.tasks.back().kind != TaskKind::kSample) {
      return invalid_argument("compiler: a step must begin with the embedding and end with sampling");
    }
    return std::move(p_);
  }

 private:
  const Op& op(int i) const { return g_.ops[size_t(i)]; }
  const Tensor& tensor(TensorId t) const { return g_.tensor(t); }
  // The single op reading `t`, or -1.
  int sole_consumer(TensorId t) const {
    return consumers_[size_t(t)].size() == 1 ? consumers_[size_t(t)][0] : -1;
  }
  int producer(TensorId t) const { return producer_[size_t(t)]; }

  ValueId add_value(std::string name, BufferKind kind, ElemType type, int64_t rows, int64_t cols) {
    p_.values.push_back({std::move(name), kind, type, rows, cols, {}});
    return ValueId(p_.values.size() - 1);
  }
  // The value of a graph tensor, created on first use (weights, state: 1-D as one row).
  ValueId value(TensorId t) {
    if (t == kNoTensor) return kNoValue;
    ValueId& v = value_of_[size_t(t)];
    if (v != kNoValue) return v;
    const Tensor& x = tensor(t);
    const BufferKind kind = x.kind == TensorKind::kWeight  ? BufferKind::kWeight
                            : x.kind == TensorKind::kState ? BufferKind::kState
                                                           : BufferKind::kActivation;
    // The graph decodes one sequence; activations take a row per slot and the KV cache
    // (state) a slice of its rows per slot.
    const int64_t rows =
        (x.shape.size() == 2 ? x.shape[0] : 1) * (kind == BufferKind::kWeight ? 1 : p_.batch);
    const int64_t cols = x.shape.back();
    const ElemType type = kind == BufferKind::kActivation ? ElemType::kF32 : x.type;
    v = add_value(x.name, kind, type, rows, cols);
    return v;
  }
  ValueId io(const char* name, ElemType type, int64_t rows, int64_t cols) {
    auto it = io_.find(name);
    if (it != io_.end()) return it->second;
    return io_[name] = add_value(name, BufferKind::kIo, type, rows, cols);
  }

  Access full(ValueId v, RefAccess a = RefAccess::kRead) const {
    if (v == kNoValue) return {};
    const Value& x = p_.values[size_t(v)];
    return {v, a, 0, x.rows, 0, x.cols};
  }
  Access rows(ValueId v, int64_t r0, int64_t n, RefAccess a = RefAccess::kRead) const {
    return {v, a, r0, n, 0, p_.values[size_t(v)].cols};
  }
  Access cols(ValueId v, int64_t c0, int64_t n, RefAccess a = RefAccess::kRead) const {
    if (v == kNoValue) return {};
    return {v, a, 0, p_.values[size_t(v)].rows, c0, n};
  }
  Access window(ValueId v, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                RefAccess a = RefAccess::kRead) const {
    return {v, a, r0, nr, c0, nc};
  }

  uint32_t begin_op(std::string name, TaskKind kind, std::vector<int> graph_ops) {
    FusedOpInfo info{std::move(name), kind, {}, uint32_t(p_.tasks.size()), 0};
    for (int i : graph_ops) {
      covered_[size_t(i)] = true;
      info.graph_ops.push_back(op(i).name);
    }
    p_.ops.push_back(std::move(info));
    return uint32_t(p_.ops.size() - 1);
  }
  void add_task(uint32_t op_index, TaskKind kind, std::vector<Access> refs,
                abi::TaskParams params = {}) {
    p_.tasks.push_back({kind, op_index, params, std::move(refs), {}, 0});
    ++p_.ops[op_index].task_count;
  }

  Status lower_op(int i) {
    switch (op(i).kind) {
      case OpKind::kEmbedding: return lower_embedding(i);
      case OpKind::kRmsNorm: return lower_norm_consumers(i);
      case OpKind::kLinear: return lower_linear_residual(i);
      case OpKind::kAttention: return lower_attention(i);
      // Absorbed by the attention pattern, which comes after them.
      case OpKind::kHeadRmsNorm:
      case OpKind::kRope:
      case OpKind::kKvAppend: return {};
      default:
        return unimplemented("compiler: op '{}' ({}) matches no fused task pattern", op(i).name,
                             op_kind_name(op(i).kind));
    }
  }

  Status lower_embedding(int i) {
    const Op& e = op(i);
    const TensorId pos = g_.find(kPositionsInput);
    if (e.inputs[0] != g_.find(kTokenIdsInput) || pos == kNoTensor) {
      return invalid_argument("compiler: embedding '{}' must read the graph's token_ids", e.name);
    }
    value_of_[size_t(pos)] =
        add_value("positions", BufferKind::kActivation, ElemType::kI32, p_.batch, 1);
    const int64_t max_seq = p_.max_seq_len = int32_t(state_rows());
    const ValueId control = io("control", ElemType::kI32, p_.batch, sizeof(abi::StepControl) / 4);
    const ValueId prompt = io("prompt", ElemType::kI32, p_.batch, max_seq);
    const ValueId tokens = io("tokens", ElemType::kI32, p_.batch, max_seq);
    const uint32_t o = begin_op("embed_tokens", TaskKind::kEmbedding, {i});
    add_task(o, TaskKind::kEmbedding,
             {full(control), full(prompt), full(tokens), full(value(e.inputs[1])),
              full(value(e.outputs[0]), RefAccess::kWrite),
              full(value(pos), RefAccess::kWrite)});
    return {};
  }

  int64_t state_rows() const {
    for (const Tensor& t : g_.tensors) {
      if (t.kind == TensorKind::kState) return t.shape[0];
    }
    return 1;
  }

  // A norm and the linears reading it: lm_head (+ argmax), gate/up pairs (+ silu_mul), and the
  // rest as one rms_norm_linear op (q, k and v).
  Status lower_norm_consumers(int i) {
    const Op& norm = op(i);
    const TensorId h = norm.outputs[0];
    const double eps = std::get<NormAttrs>(norm.attrs).eps;
    std::vector<int> plain;
    std::map<int, std::vector<int>> gate_up;  // silu_mul op -> its two linears
    int lm_head = -1;
    for (int c : consumers_[size_t(h)]) {
      if (op(c).kind != OpKind::kLinear || op(c).inputs[0] != h) {
        return unimplemented("compiler: rms_norm '{}' feeds '{}' ({}), which no task fuses",
                             norm.name, op(c).name, op_kind_name(op(c).kind));
      }
      const int user = sole_consumer(op(c).outputs[0]);
      if (user >= 0 && op(user).kind == OpKind::kArgmax) {
        lm_head = c;
      } else if (user >= 0 && op(user).kind == OpKind::kSiluMul) {
        gate_up[user].push_back(c);
      } else {
        plain.push_back(c);
      }
    }
    if (!plain.empty()) MEGALITH_RETURN_IF_ERROR(lower_norm_linears(i, plain, eps));
    for (auto& [silu, linears] : gate_up) {
      MEGALITH_RETURN_IF_ERROR(lower_gate_up(i, silu, eps));
    }
    if (lm_head >= 0) MEGALITH_RETURN_IF_ERROR(lower_lm_head(i, lm_head, eps));
    covered_[size_t(i)] = true;
    return {};
  }

  LinearPart linear_part(int i) {
    const Op& l = op(i);
    return {i, value(l.inputs[1]), l.inputs.size() > 2 ? value(l.inputs[2]) : kNoValue,
            value(l.outputs[0])};
  }
  int64_t row_bytes(ValueId weight) const {
    const Value& w = p_.values[size_t(weight)];
    return w.cols * int64_t(elem_size(w.type));
  }
  int64_t tile_rows(int64_t rows, int64_t bytes_per_row) const {
    return choose_tile_rows(rows, bytes_per_row, opts_.num_workers - opts_.attention_workers,
                            opts_.max_task_weight_bytes,
                            opts_.tile_row_multiple);
  }

  // "layers.0.attn.q_proj" + "layers.0.attn.k_proj" -> "layers.0.attn.{q_proj,k_proj}"
  std::string group_name(const std::vector<int>& ops, const std::string& suffix) const {
    const std::string& first = op(ops[0]).name;
    const size_t dot = first.rfind('.');
    const std::string prefix = dot == std::string::npos ? "" : first.substr(0, dot + 1);
    std::vector<std::string> leaves;
    for (int i : ops) {
      const std::string& n = op(i).name;
      leaves.push_back(n.starts_with(prefix) ? n.substr(prefix.size()) : n);
    }
    const std::string body = leaves.size() == 1 ? leaves[0] : fmt::format("{{{}}}", fmt::join(leaves, ","));
    return prefix + body + suffix;
  }

  Status lower_norm_linears(int norm_op, const std::vector<int>& linears, double eps) {
    const ValueId x = value(op(norm_op).inputs[0]);
    const ValueId gamma = value(op(norm_op).inputs[1]);
    std::vector<LinearPart> parts;
    int64_t rows = 0;
    for (int l : linears) {
      parts.push_back(linear_part(l));
      rows += p_.values[size_t(parts.back().weight)].rows;
    }
    const int64_t tile = tile_rows(rows, row_bytes(parts[0].weight));
    std::vector<int> covered = linears;
    covered.insert(covered.begin(), norm_op);
    const uint32_t o = begin_op(group_name(linears, ""), TaskKind::kRmsNormLinear, covered);
    abi::TaskParams params{};
    params.linear = {float(eps), 0, 0};
    for (const LinearPart& part : parts) {
      const int64_t out = p_.values[size_t(part.weight)].rows;
      for (int64_t r = 0; r < out; r += tile) {
        const int64_t n = std::min(tile, out - r);
        add_task(o, TaskKind::kRmsNormLinear,
                 {full(x), full(gamma), rows_of(part.weight, r, n), cols(part.bias, r, n),
                  cols(part.out, r, n, RefAccess::kWrite)},
                 params);
      }
    }
    return {};
  }
  Access rows_of(ValueId weight, int64_t r0, int64_t n) const { return rows(weight, r0, n); }

  Status lower_gate_up(int norm_op, int silu, double eps) {
    const Op& s = op(silu);
    const int gate_op = producer(s.inputs[0]), up_op = producer(s.inputs[1]);
    if (gate_op < 0 || up_op < 0 || op(gate_op).inputs[0] != op(up_op).inputs[0]) {
      return unimplemented("compiler: silu_mul '{}' must multiply two linears of one input", s.name);
    }
    const LinearPart gate = linear_part(gate_op), up = linear_part(up_op);
    const ValueId out = value(s.outputs[0]);
    const ValueId x = value(op(norm_op).inputs[0]), gamma = value(op(norm_op).inputs[1]);
    const int64_t rows = p_.values[size_t(gate.weight)].rows;
    const int64_t tile = tile_rows(rows, 2 * row_bytes(gate.weight));
    const uint32_t o = begin_op(group_name({gate_op, up_op}, "+silu_mul"),
                                TaskKind::kRmsNormGateUpSilu, {norm_op, gate_op, up_op, silu});
    abi::TaskParams params{};
    params.linear = {float(eps), 0, 0};
    for (int64_t r = 0; r < rows; r += tile) {
      const int64_t n = std::min(tile, rows - r);
      add_task(o, TaskKind::kRmsNormGateUpSilu,
               {full(x), full(gamma), rows_of(gate.weight, r, n), rows_of(up.weight, r, n),
                cols(gate.bias, r, n), cols(up.bias, r, n), cols(out, r, n, RefAccess::kWrite)},
               params);
    }
    return {};
  }

  Status lower_lm_head(int norm_op, int linear, double eps) {
    const Op& l = op(linear);
    const int argmax = sole_consumer(l.outputs[0]);
    if (l.inputs.size() > 2) return unimplemented("compiler: lm_head '{}' has a bias", l.name);
    const ValueId x = value(op(norm_op).inputs[0]), gamma = value(op(norm_op).inputs[1]);
    const ValueId weight = value(l.inputs[1]);
    const int64_t vocab = p_.values[size_t(weight)].rows;
    const int64_t tile = tile_rows(vocab, row_bytes(weight));
    const int64_t tiles = (vocab + tile - 1) / tile;
    const ValueId logits = value_of_[size_t(l.outputs[0])] =
        io("logits", ElemType::kF32, p_.batch, vocab);
    const ValueId partials =
        add_value("lm_partials", BufferKind::kActivation, ElemType::kI32, tiles,
                  kLmPartialWords * p_.batch);
    const ValueId control = io("control", ElemType::kI32, p_.batch, sizeof(abi::StepControl) / 4);
    const uint32_t o = begin_op(l.name, TaskKind::kLmHead, {norm_op, linear});
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t r = t * tile, n = std::min(tile, vocab - r);
      abi::TaskParams params{};
      params.linear = {float(eps), int32_t(t), int32_t(r)};
      add_task(o, TaskKind::kLmHead,
               {full(x), full(gamma), rows_of(weight, r, n), full(control),
                cols(logits, r, n, RefAccess::kWrite), rows(partials, t, 1, RefAccess::kWrite)},
               params);
    }
    const ValueId prompt = io("prompt", ElemType::kI32, p_.batch, p_.max_seq_len);
    const ValueId tokens = value_of_[size_t(op(argmax).outputs[0])] =
        io("tokens", ElemType::kI32, p_.batch, p_.max_seq_len);
    const ValueId logprobs = io("logprobs", ElemType::kF32, p_.batch, p_.max_seq_len);
    const uint32_t s = begin_op("sample", TaskKind::kSample, {argmax});
    abi::TaskParams params{};
    params.sample = {int32_t(tiles), int32_t(vocab)};
    add_task(s, TaskKind::kSample,
             {full(partials), full(logits), full(control), full(prompt),
              full(tokens, RefAccess::kWrite), full(logprobs, RefAccess::kWrite)},
             params);
    return {};
  }

  // linear + add(residual, linear): the add's result lives in the residual's buffer.
  Status lower_linear_residual(int i) {
    const Op& l = op(i);
    const int add = sole_consumer(l.outputs[0]);
    if (add < 0 || op(add).kind != OpKind::kAdd) {
      return unimplemented("compiler: linear '{}' is neither after an rms_norm nor before a "
                           "residual add", l.name);
    }
    const Op& a = op(add);
    const TensorId residual = a.inputs[0] == l.outputs[0] ? a.inputs[1] : a.inputs[0];
    for (int c : consumers_[size_t(residual)]) {
      if (c > add) {
        return unimplemented("compiler: residual '{}' is read after '{}' updates it in place",
                             tensor(residual).name, a.name);
      }
    }
    const LinearPart part = linear_part(i);
    const ValueId x = value(l.inputs[0]), res = value(residual);
    value_of_[size_t(a.outputs[0])] = res;
    const int64_t out = p_.values[size_t(part.weight)].rows;
    const int64_t tile = tile_rows(out, row_bytes(part.weight));
    const uint32_t o = begin_op(l.name + "+residual", TaskKind::kLinearResidual, {i, add});
    for (int64_t r = 0; r < out; r += tile) {
      const int64_t n = std::min(tile, out - r);
      add_task(o, TaskKind::kLinearResidual,
               {full(x), rows_of(part.weight, r, n), cols(part.bias, r, n),
                cols(res, r, n, RefAccess::kReadWrite)});
    }
    return {};
  }

  // Follows `t` back through an optional head_rms_norm and a rope to the linear output it
  // starts from; marks those ops covered.
  struct QkPath {
    TensorId linear_out = kNoTensor;
    TensorId norm_weight = kNoTensor;
    int rope_op = -1;
  };
  StatusOr<QkPath> trace_qk(TensorId t, std::vector<int>& covered) const {
    QkPath path;
    const int rope = producer(t);
    if (rope < 0 || op(rope).kind != OpKind::kRope) {
      return unimplemented("compiler: attention input '{}' does not come from a rope",
                           tensor(t).name);
    }
    path.rope_op = rope;
    covered.push_back(rope);
    TensorId x = op(rope).inputs[0];
    const int norm = producer(x);
    if (norm >= 0 && op(norm).kind == OpKind::kHeadRmsNorm) {
      path.norm_weight = op(norm).inputs[1];
      covered.push_back(norm);
      x = op(norm).inputs[0];
    }
    const int lin = producer(x);
    if (lin < 0 || op(lin).kind != OpKind::kLinear) {
      return unimplemented("compiler: rope '{}' does not start from a linear", op(rope).name);
    }
    path.linear_out = x;
    return path;
  }

  Status lower_attention(int i) {
    const Op& att = op(i);
    const auto& attrs = std::get<AttentionAttrs>(att.attrs);
    std::vector<int> covered;
    const int append = producer(att.inputs[1]);
    if (append < 0 || op(append).kind != OpKind::kKvAppend || producer(att.inputs[2]) != append) {
      return unimplemented("compiler: attention '{}' must read the caches of one kv_append",
                           att.name);
    }
    const Op& kv = op(append);
    covered.push_back(append);
    MEGALITH_ASSIGN_OR_RETURN(QkPath q, trace_qk(att.inputs[0], covered));
    MEGALITH_ASSIGN_OR_RETURN(QkPath k, trace_qk(kv.inputs[0], covered));
    const auto& rope = std::get<RopeAttrs>(op(q.rope_op).attrs);
    const double eps = q.norm_weight == kNoTensor
                           ? 0.0
                           : std::get<HeadNormAttrs>(op(producer(op(q.rope_op).inputs[0])).attrs).eps;

    const int64_t hd = attrs.head_dim, kv_heads = attrs.num_kv_heads;
    const int64_t group = attrs.num_heads / kv_heads, slots = p_.batch;
    const ValueId qv = value(q.linear_out), kval = value(k.linear_out), vval = value(kv.inputs[1]);
    const ValueId k_cache = value(kv.inputs[3]), v_cache = value(kv.inputs[4]);
    value_of_[size_t(kv.outputs[0])] = k_cache;
    value_of_[size_t(kv.outputs[1])] = v_cache;
    const ValueId positions = value(g_.find(kPositionsInput));
    const ValueId inv_freq = rope_table(rope);
    const int64_t max_seq = p_.max_seq_len;  // the cache rows of one slot

    const std::string layer = att.name.substr(0, att.name.rfind('.') + 1);
    const int64_t attention_workers =
        opts_.attention_workers > 0 ? opts_.attention_workers : opts_.num_workers;
    const int64_t splits = std::clamp<int64_t>(attention_workers / (kv_heads * slots), 1,
                                               attention_splits(max_seq, opts_));
    const ValueId out = value(att.outputs[0]);
    const bool merged = splits > 1;
    ValueId partial = kNoValue, lse = kNoValue, new_kv = kNoValue;
    if (merged) {
      partial = add_value(layer + "attention_partial", BufferKind::kActivation, ElemType::kF32,
                          slots * kv_heads * splits * group, hd);
      lse = add_value(layer + "attention_lse", BufferKind::kActivation, ElemType::kF32,
                      slots * kv_heads * splits * group, 1);
      new_kv = add_value(layer + "attention_new_kv", BufferKind::kActivation, ElemType::kF32,
                         slots * kv_heads, 2 * hd);
    }
    // Single split: the task appends to the caches. Several: the merge does, after every
    // split has read them, so the splits of a head need not wait for each other.
    const RefAccess cache_access = merged ? RefAccess::kRead : RefAccess::kReadWrite;
    // Slot b's query, key and value are row b of the projections; its cache is rows
    // [b * max_seq, (b + 1) * max_seq).
    const auto head_cache = [&](ValueId cache, int64_t b, int64_t h, RefAccess a) {
      return window(cache, b * max_seq, max_seq, h * hd, hd, a);
    };
    covered.push_back(i);
    const uint32_t o2 = begin_op(layer + "attention", TaskKind::kAttentionPartial, covered);
    for (int64_t b = 0; b < slots; ++b) {
      for (int64_t h = 0; h < kv_heads; ++h) {
        const int64_t head = b * kv_heads + h;
        for (int64_t s = 0; s < splits; ++s) {
          abi::TaskParams ap{};
          // Dedicated attention workers run no task with weights (placement), so a single
          // split there may stage its cache rows in the worker's idle weight ring.
          const bool stage_cache = !merged && opts_.attention_workers > 0;
          ap.attention = {float(attrs.scale), int32_t(hd),     int32_t(group),
                          int32_t(s),         int32_t(splits), float(eps),
                          int32_t(stage_cache)};
          const int64_t row = (head * splits + s) * group;
          add_task(o2, TaskKind::kAttentionPartial,
                   {window(qv, b, 1, h * group * hd, group * hd), window(kval, b, 1, h * hd, hd),
                    window(vval, b, 1, h * hd, hd), full(value(q.norm_weight)),
                    full(value(k.norm_weight)), rows(positions, b, 1), full(inv_freq),
                    head_cache(k_cache, b, h, cache_access), head_cache(v_cache, b, h, cache_access),
                    merged ? rows(partial, row, group, RefAccess::kWrite)
                           : window(out, b, 1, h * group * hd, group * hd, RefAccess::kWrite),
                    merged ? rows(lse, row, group, RefAccess::kWrite) : Access{},
                    merged && s == 0 ? rows(new_kv, head, 1, RefAccess::kWrite) : Access{}},
                   ap);
        }
      }
    }
    if (!merged) return {};
    const uint32_t o3 = begin_op(layer + "attention_merge", TaskKind::kAttentionMerge, {});
    for (int64_t b = 0; b < slots; ++b) {
      for (int64_t h = 0; h < kv_heads; ++h) {
        const int64_t head = b * kv_heads + h;
        abi::TaskParams mp{};
        mp.attention = {float(attrs.scale), int32_t(hd), int32_t(group), 0, int32_t(splits), 0.0f, 0};
        const int64_t row = head * splits * group;
        add_task(o3, TaskKind::kAttentionMerge,
                 {rows(partial, row, splits * group), rows(lse, row, splits * group),
                  window(out, b, 1, h * group * hd, group * hd, RefAccess::kWrite),
                  rows(new_kv, head, 1), rows(positions, b, 1),
                  head_cache(k_cache, b, h, RefAccess::kWrite),
                  head_cache(v_cache, b, h, RefAccess::kWrite)},
                 mp);
      }
    }
    return {};
  }

  ValueId rope_table(const RopeAttrs& rope) {
    ModelConfig c = cfg_;
    c.rope = rope.rope;
    c.head_dim = rope.head_dim;
    const std::vector<float> inv_freq = rope_inverse_frequencies(c);
    const std::string name = fmt::format("rope_inv_freq.{}", rope_tables_);
    for (ValueId v = 0; v < ValueId(p_.values.size()); ++v) {
      const Value& x = p_.values[size_t(v)];
      if (x.kind == BufferKind::kConstant &&
          x.data.size() == inv_freq.size() * 4 &&
          std::equal(x.data.begin(), x.data.end(), reinterpret_cast<const uint8_t*>(inv_freq.data()))) {
        return v;
      }
    }
    ++rope_tables_;
    const ValueId v = add_value(name, BufferKind::kConstant, ElemType::kF32, 1,
                                int64_t(inv_freq.size()));
    auto* bytes = reinterpret_cast<const uint8_t*>(inv_freq.data());
    p_.values[size_t(v)].data.assign(bytes, bytes + inv_freq.size() * 4);
    return v;
  }

  const Graph& g_;
  const ModelConfig& cfg_;
  const CompileOptions& opts_;
  std::vector<ValueId> value_of_;
  std::vector<std::vector<int>> consumers_;
  std::vector<int> producer_;
  std::vector<bool> covered_;
  std::map<std::string, ValueId> io_;
  int rope_tables_ = 0;
  Program p_;
};

}  // namespace

StatusOr<Program> lower(const Graph& g, const ModelConfig& cfg, const CompileOptions& options) {
  if (options.num_workers < 1 || options.num_workers > 4096) {
    return invalid_argument("compiler: num_workers must be between 1 and 4096, got {}",
                            options.num_workers);
  }
  if (options.batch < 1 || options.batch > 256) {
    return invalid_argument("compiler: batch must be between 1 and 256, got {}", options.batch);
  }
  if (options.tile_row_multiple < 1 || options.tile_row_multiple > 4096) {
    return invalid_argument("compiler: tile_row_multiple must be between 1 and 4096, got {}",
                            options.tile_row_multiple);
  }
  if (options.attention_workers < 0 || options.attention_workers >= options.num_workers) {
    return invalid_argument(
        "compiler: attention_workers must be at least 0 and below num_workers ({}), got {}",
        options.num_workers, options.attention_workers);
  }
  if (options.max_task_weight_bytes < 1024) {
    return invalid_argument("compiler: max_task_weight_bytes must be at least 1024");
  }
  if (options.attention_keys_per_split < 1) {
    return invalid_argument("compiler: attention_keys_per_split must be at least 1, got {}",
                            options.attention_keys_per_split);
  }
  return Lowering(g, cfg, options).run();
}

}  // namespace megalith::compiler
