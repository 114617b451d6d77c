// The compiler and the task-graph verifier: every architecture compiles for any worker count,
// tiles cover every weight once, dependencies are exactly the producer tiles a task reads,
// every single dependency edge is necessary (removing one is caught), and the binary format
// round-trips and rejects damaged files.
#include "megalith/compiler/compiler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "megalith/compiler/claimed_rows.h"
#include "megalith/compiler/task_graph_stats.h"
#include "megalith/compiler/verify_task_graph.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"
#include "task_graph_mutations.h"

namespace megalith {
namespace {

using abi::TaskKind;

// Sizes that divide nothing evenly.
ModelConfig odd_config(Architecture arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 301;
  c.hidden_size = 72;
  c.intermediate_size = 200;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 18;
  c.max_position_embeddings = 256;
  c.attention_bias = arch == Architecture::kQwen2;
  c.qk_norm = arch == Architecture::kQwen3;
  c.tie_word_embeddings = arch != Architecture::kLlama;
  return c;
}

TaskGraph compile_or_die(const ModelConfig& cfg, int32_t workers, int64_t max_seq = 40) {
  StatusOr<Graph> g = build_decode_graph(cfg, 1, max_seq);
  EXPECT_TRUE(g.ok()) << g.status().message();
  StatusOr<TaskGraph> tg = compile(*g, cfg, {.num_workers = workers});
  EXPECT_TRUE(tg.ok()) << tg.status().message();
  return std::move(tg).value();
}

std::vector<std::vector<uint32_t>> producers_of_events(const TaskGraph& tg) {
  std::vector<std::vector<uint32_t>> p(tg.events.size());
  for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
    for (const uint32_t e : {tg.tasks[t].signal, tg.tasks[t].second_signal}) {
      if (e != abi::kNoEvent) p[e].push_back(t);
    }
  }
  return p;
}

// Same-step producer tasks of task t, through its events.
std::set<uint32_t> producers_of(const TaskGraph& tg, uint32_t t) {
  const auto producers = producers_of_events(tg);
  std::set<uint32_t> out;
  const abi::TaskDesc& d = tg.tasks[t];
  for (uint32_t w = d.wait_begin; w < d.wait_begin + d.wait_count; ++w) {
    if (tg.waits[w].step_offset == 0) {
      for (uint32_t p : producers[tg.waits[w].event]) out.insert(p);
    }
  }
  return out;
}

// Whether two refs touch a common byte, row by row.
bool refs_overlap(const abi::TensorRef& a, const abi::TensorRef& b) {
  if (a.buffer != b.buffer || a.buffer == abi::kNoBuffer) return false;
  const uint64_t esize = a.type == abi::RefType::kBF16 || a.type == abi::RefType::kF16 ? 2 : 4;
  for (int64_t i = 0; i < a.rows; ++i) {
    const uint64_t a0 = a.offset + uint64_t(i * a.row_stride) * esize, a1 = a0 + uint64_t(a.cols) * esize;
    for (int64_t j = 0; j < b.rows; ++j) {
      const uint64_t b0 = b.offset + uint64_t(j * b.row_stride) * esize, b1 = b0 + uint64_t(b.cols) * esize;
      if (a0 < b1 && b0 < a1) return true;
    }
  }
  return false;
}

class CompilerArchTest : public ::testing::TestWithParam<Architecture> {};

TEST_P(CompilerArchTest, CompilesAndVerifiesForAnyWorkerCount) {
  // A short cache gives one attention task per KV head writing the output itself, a long one
  // (on enough workers) splits with a merge.
  for (const ModelConfig& cfg : {*preset_config(GetParam(), "tiny"), odd_config(GetParam())}) {
    for (const auto& [workers, max_seq] : std::vector<std::pair<int32_t, int64_t>>{
             {1, 600}, {2, 600}, {3, 40}, {7, 600}, {16, 600}, {132, 600}, {7, 20}, {132, 20}}) {
      const TaskGraph tg = compile_or_die(cfg, workers, max_seq);
      ASSERT_FALSE(tg.tasks.empty());
      EXPECT_EQ(tg.tasks[tg.source_task].kind, TaskKind::kEmbedding);
      EXPECT_EQ(tg.tasks[tg.sink_task].kind, TaskKind::kSample);
      EXPECT_EQ(tg.queue_begin.back(), tg.tasks.size());
      std::set<TaskKind> kinds;
      bool split = false;
      for (const abi::TaskDesc& t : tg.tasks) {
        kinds.insert(t.kind);
        if (t.kind == TaskKind::kAttentionPartial) split = t.params.attention.num_splits > 1;
      }
      EXPECT_EQ(split, max_seq / CompileOptions{}.attention_keys_per_split > 1 &&
                           workers / cfg.num_kv_heads > 1)
          << workers << " " << max_seq;
      EXPECT_EQ(kinds.count(TaskKind::kAttentionMerge), split ? 1u : 0u);
      EXPECT_EQ(kinds.size(), size_t(abi::kNumTaskKinds) - (split ? 0 : 1))
          << "every fused kind is used";
      for (const FusedOpInfo& op : tg.ops) {
        EXPECT_GE(op.task_count, 1u) << op.name;
        if (op.kind != TaskKind::kEmbedding && op.kind != TaskKind::kSample &&
            op.kind != TaskKind::kAttentionMerge &&
            op.kind != TaskKind::kAttentionPartial) {
          EXPECT_LE(op.task_count, uint32_t(workers) * 2 + 2) << op.name << " on " << workers;
        }
      }
    }
  }
}

// Each weight's rows are split among the linear tasks of one op, each row exactly once.
TEST_P(CompilerArchTest, LinearTilesCoverEveryWeightRowOnce) {
  const ModelConfig cfg = odd_config(GetParam());
  const TaskGraph tg = compile_or_die(cfg, 5);
  std::map<uint32_t, std::vector<int>> row_uses;  // weight buffer -> uses per row
  for (const abi::TaskDesc& t : tg.tasks) {
    std::vector<int> weight_refs;
    switch (t.kind) {
      case TaskKind::kRmsNormLinear: weight_refs = {2}; break;
      case TaskKind::kLinearResidual: weight_refs = {1}; break;
      case TaskKind::kRmsNormGateUpSilu: weight_refs = {2, 3}; break;
      case TaskKind::kLmHead: weight_refs = {2}; break;
      default: continue;
    }
    for (int r : weight_refs) {
      const abi::TensorRef& ref = t.refs[r];
      const BufferDesc& b = tg.buffers[ref.buffer];
      ASSERT_EQ(b.kind, BufferKind::kWeight);
      const int64_t row_bytes = ref.row_stride * int64_t(elem_size(b.type));
      std::vector<int>& uses = row_uses[ref.buffer];
      uses.resize(size_t(int64_t(b.bytes) / row_bytes));
      EXPECT_EQ(ref.cols, ref.row_stride) << "a tile spans whole rows";
      for (int64_t row = int64_t(ref.offset) / row_bytes; row < int64_t(ref.offset) / row_bytes + ref.rows; ++row) {
        ++uses[size_t(row)];
      }
    }
  }
  EXPECT_EQ(row_uses.size(), size_t(cfg.num_layers * 7 + 1));  // q k v o gate up down, lm_head
  for (const auto& [buffer, uses] : row_uses) {
    for (size_t row = 0; row < uses.size(); ++row) {
      ASSERT_EQ(uses[row], 1) << tg.buffers[buffer].name << " row " << row;
    }
  }
}

// Every attention split of `tg` waits for exactly the q/k/v tiles whose columns it reads
// (tile-level dependencies, no whole-op barriers); returns how many it checked.
int expect_attention_waits_on_the_tiles_read(const TaskGraph& tg) {
  int checked = 0;
  for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
    const abi::TaskDesc& d = tg.tasks[t];
    if (d.kind != TaskKind::kAttentionPartial) continue;
    std::set<uint32_t> expected;
    for (uint32_t p = 0; p < t; ++p) {
      const abi::TaskDesc& pd = tg.tasks[p];
      if (pd.kind != TaskKind::kRmsNormLinear ||
          tg.ops[pd.op].name.substr(0, 9) != tg.ops[d.op].name.substr(0, 9)) {
        continue;
      }
      for (int r = 0; r < d.num_refs; ++r) {
        for (int w = 0; w < pd.num_refs; ++w) {
          if (pd.refs[w].access != abi::RefAccess::kRead && refs_overlap(d.refs[r], pd.refs[w])) {
            expected.insert(p);
          }
        }
      }
    }
    EXPECT_EQ(producers_of(tg, t), expected) << "task " << t << " of " << tg.ops[d.op].name;
    ++checked;
  }
  return checked;
}

TEST_P(CompilerArchTest, DependenciesAreExactlyTheTilesRead) {
  EXPECT_GT(expect_attention_waits_on_the_tiles_read(compile_or_die(odd_config(GetParam()), 7)), 0);
}

// Shapes whose rows split into the megakernel's matvec items (multiples of 256 columns), with
// q, k and v of different sizes.
bool is_ordering_error(const Status& s);

ModelConfig wide_config(Architecture arch) {
  ModelConfig c = odd_config(arch);
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  return c;
}

TaskGraph compile_wide(Architecture arch, int32_t workers, bool claims) {
  const ModelConfig cfg = wide_config(arch);
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 40);
  EXPECT_TRUE(g.ok()) << g.status().message();
  StatusOr<TaskGraph> tg = compile(*g, cfg, {.num_workers = workers, .claim_rows = claims});
  EXPECT_TRUE(tg.ok()) << tg.status().message();
  return std::move(tg).value();
}

// Every gate/up and residual linear claims its rows (q/k/v keeps its tiles, so attention
// waits for its own heads only): its part is its weight whole, in groups every task of the op
// can reach, and whoever reads its output waits for all of its tasks, since any of them may
// have computed the rows.
TEST_P(CompilerArchTest, GateUpAndResidualLinearsClaimTheirRows) {
  const TaskGraph tg = compile_wide(GetParam(), 7, true);
  StatusOr<std::vector<ClaimedOp>> claimed = claimed_ops(tg);
  ASSERT_TRUE(claimed.ok()) << claimed.status().message();
  std::vector<std::string> linears;
  for (const FusedOpInfo& op : tg.ops) {
    if (op.kind == TaskKind::kLinearResidual || op.kind == TaskKind::kRmsNormGateUpSilu) {
      linears.push_back(op.name);
    }
  }
  ASSERT_EQ(linears.size(), 6u);  // two layers of o, gate/up, down
  ASSERT_EQ(claimed->size(), linears.size());
  for (size_t i = 0; i < claimed->size(); ++i) {
    const ClaimedOp& c = (*claimed)[i];
    EXPECT_EQ(tg.ops[c.op].name, linears[i]) << "claim order follows the program";
    ASSERT_EQ(c.parts.size(), 1u) << tg.ops[c.op].name;
    int32_t groups = 0;
    for (const ClaimedPart& part : c.parts) {
      const BufferDesc& w = tg.buffers[part.weight.buffer];
      EXPECT_EQ(uint64_t(part.weight.rows) * uint64_t(part.weight.cols) * elem_size(w.type), w.bytes)
          << "a part is its whole weight";
      EXPECT_EQ(part.out.cols, part.weight.rows);
      EXPECT_EQ(part.first_group, groups);
      groups += (part.weight.rows + c.group_rows - 1) / c.group_rows;
    }
    EXPECT_EQ(c.total_groups, groups);
    EXPECT_GE(int64_t(c.capacity) * c.task_count, groups);
    // Any task of the graph that waits on one task of the op waits on all of them.
    for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
      const std::set<uint32_t> waited = producers_of(tg, t);
      const bool some = waited.count(c.task_begin) > 0;
      for (uint32_t k = c.task_begin; k < c.task_begin + c.task_count; ++k) {
        ASSERT_EQ(waited.count(k) > 0, some) << "task " << t << " and " << tg.ops[c.op].name;
      }
    }
  }
  EXPECT_TRUE(verify_task_graph(tg).ok());
}

// The claims are only sound with op-wide dependencies. q/k/v's readers (attention) wait for
// the tiles of their heads only, so marking the q/k/v op claimed (three parts) is rejected;
// every single wait and signal of a claimed graph is needed; and the verifier checks the
// claimed ops' own consistency.
TEST(CompilerClaims, VerifierRejectsClaimsWithoutTheirDependencies) {
  const TaskGraph claimed = compile_wide(Architecture::kQwen3, 7, true);
  const std::vector<ClaimedOp> ops = *claimed_ops(claimed);
  TaskGraph m = claimed;
  const auto qkv = std::find_if(m.ops.begin() + 1, m.ops.end(), [](const FusedOpInfo& op) {
    return op.kind == TaskKind::kRmsNormLinear;
  });
  ASSERT_NE(qkv, m.ops.end());
  for (uint32_t k = 0; k < qkv->task_count; ++k) {
    abi::LinearParams& lp = m.tasks[qkv->task_begin + k].params.linear;
    lp.claim_rows = 8;
    lp.claim_capacity = 1000;
    lp.claim_op = int32_t(ops.size());
  }
  const Status s = verify_task_graph(m);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(is_ordering_error(s)) << s.message();

  int mutations = 0;
  for (uint32_t t = 0; t < claimed.tasks.size(); ++t) {
    const abi::TaskDesc& d = claimed.tasks[t];
    for (uint32_t w = d.wait_begin; w < d.wait_begin + d.wait_count; ++w) {
      EXPECT_TRUE(is_ordering_error(verify_task_graph(without_wait(claimed, t, w))))
          << "wait " << w << " of task " << t;
      ++mutations;
    }
    for (const bool second : {false, true}) {
      if ((second ? d.second_signal : d.signal) == abi::kNoEvent) continue;
      EXPECT_TRUE(is_ordering_error(verify_task_graph(without_signal(claimed, t, second))))
          << (second ? "second signal" : "signal") << " of task " << t;
      ++mutations;
    }
  }
  EXPECT_GT(mutations, 50);

  auto find_op = [&](TaskKind kind) {
    return *std::find_if(ops.begin(), ops.end(), [&](const ClaimedOp& c) { return c.kind == kind; });
  };
  const ClaimedOp first = ops.front(), gate_up = find_op(TaskKind::kRmsNormGateUpSilu);
  ASSERT_GT(gate_up.total_groups, int32_t(gate_up.task_count));
  auto expect_error = [](TaskGraph g, const std::string& fragment) {
    const Status e = verify_task_graph(g);
    EXPECT_FALSE(e.ok());
    EXPECT_NE(e.message().find(fragment), std::string::npos) << e.message();
  };
  m = claimed;
  m.tasks[first.task_begin + 1].params.linear.claim_capacity += 1;
  expect_error(m, "claim parameters");
  m = claimed;
  for (uint32_t k = 0; k < gate_up.task_count; ++k) {
    m.tasks[gate_up.task_begin + k].params.linear.claim_capacity = 1;
  }
  expect_error(m, "cannot hold");
  m = claimed;
  for (uint32_t k = 0; k < first.task_count; ++k) m.tasks[first.task_begin + k].params.linear.claim_op = 1;
  expect_error(m, "claim index");
  m = claimed;
  std::swap(m.tasks[gate_up.task_begin].refs[3], m.tasks[gate_up.task_begin + 1].refs[3]);
  expect_error(m, "does not continue");
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, CompilerArchTest,
                         ::testing::Values(Architecture::kLlama, Architecture::kQwen2,
                                           Architecture::kQwen3),
                         [](const auto& info) {
                           return std::string(architecture_short_name(info.param));
                         });

bool is_ordering_error(const Status& s) {
  const std::string& m = s.message();
  return m.find("nothing orders them") != std::string::npos ||
         m.find("does not wait") != std::string::npos ||
         m.find("source must wait") != std::string::npos;
}

TEST(Compiler, ReportsEachPassInOrder) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "tiny");
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 40);
  ASSERT_TRUE(g.ok());
  for (bool verify : {true, false}) {
    std::vector<std::string> passes;
    CompileOptions options{.num_workers = 8, .verify = verify};
    options.on_pass = [&](std::string_view pass, int done, int total) {
      EXPECT_EQ(done, int(passes.size()) + 1);
      EXPECT_EQ(total, verify ? 6 : 5);
      passes.emplace_back(pass);
    };
    ASSERT_TRUE(compile(*g, cfg, options).ok());
    std::vector<std::string> want = {"lowering", "dependencies", "placement", "buffer plan",
                                     "assembly"};
    if (verify) want.push_back("verification");
    EXPECT_EQ(passes, want);
  }
}

// The mutation test: every wait and every signal of a compiled graph carries an ordering the
// program needs, and the verifier catches the loss of any single one.
TEST(CompilerMutation, RemovingAnyDependencyEdgeIsCaught) {
  for (Architecture arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
    const TaskGraph tg = compile_or_die(odd_config(arch), 3);
    ASSERT_TRUE(verify_task_graph(tg).ok());
    int mutations = 0;
    for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
      const abi::TaskDesc& d = tg.tasks[t];
      for (uint32_t w = d.wait_begin; w < d.wait_begin + d.wait_count; ++w) {
        const Status s = verify_task_graph(without_wait(tg, t, w));
        EXPECT_FALSE(s.ok()) << "wait " << w << " of task " << t << " is not needed";
        EXPECT_TRUE(is_ordering_error(s)) << s.message();
        ++mutations;
      }
      for (const bool second : {false, true}) {
        if ((second ? d.second_signal : d.signal) == abi::kNoEvent) continue;
        const Status s = verify_task_graph(without_signal(tg, t, second));
        EXPECT_FALSE(s.ok()) << (second ? "second signal" : "signal") << " of task " << t
                             << " is not needed";
        EXPECT_TRUE(is_ordering_error(s)) << s.message();
        ++mutations;
      }
    }
    EXPECT_GT(mutations, 50);
  }
}

TEST(CompilerVerifier, RejectsMalformedGraphsWithClearErrors) {
  const TaskGraph tg = compile_or_die(odd_config(Architecture::kQwen3), 4);
  auto expect_error = [](TaskGraph m, const std::string& fragment) {
    const Status s = verify_task_graph(m);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
  };
  TaskGraph m = tg;
  m.tasks[5].refs[0].buffer = 9999;
  expect_error(m, "names buffer");
  m = tg;
  m.tasks[5].refs[0].rows += 100000;
  expect_error(m, "does not fit");
  m = tg;
  ++m.events[0].triggers;
  expect_error(m, "triggers");
  m = tg;
  m.tasks[3].worker = 999;
  expect_error(m, "worker");
  m = tg;
  std::swap(m.queue_tasks[0], m.queue_tasks[1]);
  expect_error(m, "queue");
  m = tg;
  m.tasks[4].kind = abi::TaskKind(200);
  expect_error(m, "unknown kind");
  m = tg;
  m.waits[m.tasks[tg.sink_task].wait_begin].step_offset = 1;
  expect_error(m, "previous step");
}

TEST(CompilerErrors, BadOptionsAndGraphsAreErrors) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "tiny");
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 16);
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(compile(*g, cfg, {.num_workers = 0}).ok());
  EXPECT_FALSE(compile(*g, cfg, {.num_workers = 100000}).ok());
  const auto no_keys = compile(*g, cfg, {.num_workers = 8, .attention_keys_per_split = 0});
  ASSERT_FALSE(no_keys.ok());
  EXPECT_NE(no_keys.status().message().find("attention_keys_per_split"), std::string::npos);
  const auto all_attention = compile(*g, cfg, {.num_workers = 8, .attention_workers = 8});
  ASSERT_FALSE(all_attention.ok());
  EXPECT_NE(all_attention.status().message().find("attention_workers"), std::string::npos);
  const auto no_multiple = compile(*g, cfg, {.num_workers = 8, .tile_row_multiple = 0});
  ASSERT_FALSE(no_multiple.ok());
  EXPECT_NE(no_multiple.status().message().find("tile_row_multiple"), std::string::npos);
  StatusOr<Graph> prefill = build_decode_graph(cfg, 4, 16);
  ASSERT_TRUE(prefill.ok());
  const auto r = compile(*prefill, cfg, {.num_workers = 4});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("one token per step"), std::string::npos);
}

// abi::linear_form is the one statement of which refs a kind streams through the weight ring
// and whether it normalizes its input (the producer, the shared-memory plan, the megakernel's
// linear body and the host's checks all read it): it must agree with tasks.def's ref names.
TEST(TaskAbi, LinearFormAgreesWithTheRefNamesOfTasksDef) {
  int linear_kinds = 0;
  for (uint16_t k = 0; k < abi::kNumTaskKinds; ++k) {
    const auto kind = TaskKind(k);
    const abi::LinearForm form = abi::linear_form(kind);
    const std::vector<std::string_view> names = task_ref_names(kind);
    ASSERT_LE(form.weights, 2) << task_kind_name(kind);
    std::set<std::string_view> streamed;
    for (int i = 0; i < form.weights; ++i) {
      ASSERT_GE(form.weight[i], 0) << task_kind_name(kind);
      ASSERT_LT(size_t(form.weight[i]), names.size()) << task_kind_name(kind);
      streamed.insert(names[size_t(form.weight[i])]);
    }
    for (std::string_view n : names) {
      const bool tile = n == "weight" || n == "gate_weight" || n == "up_weight";
      EXPECT_EQ(tile, streamed.count(n) == 1) << task_kind_name(kind) << ", ref " << n;
    }
    if (form.weights == 2) {  // gate/up: the gate tile streams first
      EXPECT_EQ(names[size_t(form.weight[0])], "gate_weight");
    }
    const bool norm_ref = names.size() > 1 && names[1].starts_with("norm_weight");
    EXPECT_EQ(form.norm, form.weights > 0 && norm_ref) << task_kind_name(kind);
    linear_kinds += form.weights > 0 ? 1 : 0;
  }
  EXPECT_EQ(linear_kinds, 4);
}

TEST(TaskGraphFormat, RoundTripsAndRejectsDamage) {
  const TaskGraph tg = compile_or_die(odd_config(Architecture::kLlama), 4);
  const std::vector<uint8_t> bytes = serialize_task_graph(tg);
  StatusOr<TaskGraph> back = deserialize_task_graph(bytes, "mem");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(serialize_task_graph(*back), bytes);
  EXPECT_TRUE(verify_task_graph(*back).ok());
  EXPECT_EQ(back->tasks.size(), tg.tasks.size());
  EXPECT_EQ(back->ops[3].name, tg.ops[3].name);

  for (size_t cut : {size_t(0), size_t(5), size_t(40), bytes.size() / 2, bytes.size() - 1}) {
    const auto r = deserialize_task_graph(std::span(bytes.data(), cut), "cut");
    ASSERT_FALSE(r.ok()) << cut;
    EXPECT_NE(r.status().message().find("cut"), std::string::npos);
  }
  std::vector<uint8_t> bad = bytes;
  bad[0] = 'X';
  EXPECT_NE(deserialize_task_graph(bad, "m").status().message().find("magic"), std::string::npos);
  bad = bytes;
  bad[12] = 99;  // format version
  EXPECT_NE(deserialize_task_graph(bad, "m").status().message().find("format"), std::string::npos);
  bad = bytes;
  bad.push_back(0);
  EXPECT_NE(deserialize_task_graph(bad, "m").status().message().find("trailing"), std::string::npos);
  // Flipping bytes anywhere never crashes: it is an error, or a graph the verifier judges.
  for (size_t i = 0; i < bytes.size(); i += 97) {
    bad = bytes;
    bad[i] ^= 0x5a;
    StatusOr<TaskGraph> r = deserialize_task_graph(bad, "m");
    if (r.ok()) (void)verify_task_graph(*r);
  }
}

TEST(TaskGraphFormat, JsonAndStatsDescribeTheGraph) {
  const TaskGraph tg = compile_or_die(odd_config(Architecture::kQwen2), 4);
  const nlohmann::json j = task_graph_to_json(tg);
  EXPECT_EQ(j["tasks"].size(), tg.tasks.size());
  EXPECT_EQ(j["events"].size(), tg.events.size());
  EXPECT_EQ(j["tasks"][tg.source_task]["kind"], "embedding");
  const TaskGraphStats s = task_graph_stats(tg);
  EXPECT_EQ(s.tasks, int64_t(tg.tasks.size()));
  EXPECT_GT(s.dependency_edges, s.tasks - 1);
  EXPECT_GT(s.critical_path_us, 0);
  EXPECT_EQ(s.critical_path_ops.front(), "embed_tokens");
  EXPECT_EQ(s.critical_path_ops.back(), "sample");
  const std::string dot = task_graph_to_dot(tg);
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(dot.find("next step"), std::string::npos);
}

// The floor's numerator: a step reads every weight once, except that the embedding table is
// read one row at a time (and in full, once, by lm_head when the embeddings are tied).
TEST(TaskGraphStats, AStepReadsEveryWeightOnceAndOneEmbeddingRow) {
  for (const char* preset : {"qwen3-0.6b", "tiny"}) {  // tied and untied embeddings
    const ModelConfig cfg = *preset_config(Architecture::kQwen3, preset);
    const TaskGraph tg = compile_or_die(cfg, 132, 64);
    uint64_t all = 0;
    for (const WeightSpec& w : model_weight_specs(cfg)) all += uint64_t(shape_numel(w.shape)) * 2;
    const uint64_t table = uint64_t(cfg.vocab_size * cfg.hidden_size) * 2;
    const uint64_t row = uint64_t(cfg.hidden_size) * 2;
    const uint64_t expected = cfg.tie_word_embeddings ? all : all - table + row;
    EXPECT_EQ(step_weight_bytes(tg), expected) << preset;
    EXPECT_EQ(task_graph_stats(tg).step_weight_bytes, expected) << preset;
  }
}

// The long-context floor's extra term: every layer's key and value rows of one position.
TEST(TaskGraphStats, APositionOfKvCacheIsEveryLayersKeysAndValues) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "qwen3-0.6b");
  const TaskGraph tg = compile_or_die(cfg, 132, 64);
  const uint64_t expected = uint64_t(cfg.num_layers) * 2 * uint64_t(cfg.kv_size()) * 2;  // bf16
  EXPECT_EQ(kv_cache_bytes_per_position(tg), expected);
}

// Real shapes: one round of tasks per linear on 132 workers, fewer than that idle.
TEST(CompilerShapes, RealModelLinearsFillTheWorkers) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "qwen3-0.6b");
  const TaskGraph tg = compile_or_die(cfg, 132, 256);
  for (const FusedOpInfo& op : tg.ops) {
    if (op.kind == TaskKind::kRmsNormLinear || op.kind == TaskKind::kLinearResidual ||
        op.kind == TaskKind::kRmsNormGateUpSilu) {
      EXPECT_GE(op.task_count, 100u) << op.name;
      EXPECT_LE(op.task_count, 132u) << op.name;
    }
  }
}

// Qwen3-8B's 12288 gate/up rows on 132 workers: tiles rounded to 8 rows leave 4 workers idle,
// to 2 rows only one.
TEST(CompilerShapes, TileRowMultipleSetsTheTileCount) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "qwen3-8b");
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 64);
  ASSERT_TRUE(g.ok());
  for (const auto& [multiple, tasks] : {std::pair{8, 128u}, std::pair{2, 131u}}) {
    StatusOr<TaskGraph> tg = compile(*g, cfg, {.num_workers = 132, .tile_row_multiple = multiple});
    ASSERT_TRUE(tg.ok()) << tg.status().message();
    for (const FusedOpInfo& op : tg->ops) {
      if (op.kind == TaskKind::kRmsNormGateUpSilu) {
        EXPECT_EQ(op.task_count, tasks) << multiple;
      }
    }
  }
}

// Q/k/v tiles that straddle two attention groups (Llama-3.2-1B's 24-row tiles against its
// 256-row query groups, Qwen3-8B's 48 against 512) signal both groups' events, so an attention
// task waits on one event of the q/k/v op, still on exactly the tiles it reads.
TEST(CompilerShapes, AttentionWaitsOnOneQkvEvent) {
  for (const auto& [arch, preset] :
       {std::pair{Architecture::kLlama, "llama-3.2-1b"}, std::pair{Architecture::kQwen3, "qwen3-8b"}}) {
    ModelConfig cfg = *preset_config(arch, preset);
    cfg.num_layers = 2;
    const TaskGraph tg = compile_or_die(cfg, 132, 64);
    const auto producers = producers_of_events(tg);
    int straddling = 0;
    for (const abi::TaskDesc& d : tg.tasks) straddling += d.second_signal != abi::kNoEvent;
    EXPECT_GT(straddling, 0) << preset;
    int checked = 0;
    for (const abi::TaskDesc& d : tg.tasks) {
      if (d.kind != TaskKind::kAttentionPartial) continue;
      int qkv_events = 0;
      for (uint32_t w = d.wait_begin; w < d.wait_begin + d.wait_count; ++w) {
        const std::vector<uint32_t>& from = producers[tg.waits[w].event];
        qkv_events += std::any_of(from.begin(), from.end(), [&](uint32_t p) {
          return tg.tasks[p].kind == TaskKind::kRmsNormLinear;
        });
      }
      EXPECT_EQ(qkv_events, 1) << preset << ": " << tg.ops[d.op].name;
      ++checked;
    }
    EXPECT_EQ(checked, 2 * cfg.num_kv_heads) << preset;
    EXPECT_EQ(expect_attention_waits_on_the_tiles_read(tg), checked) << preset;
  }
}

// A KV head's attention splits: one per attention_keys_per_split cache rows past that many,
// at least 8 from four times that on, never more than the workers hold for each KV head.
TEST(CompilerShapes, AttentionSplitsFollowTheCacheLength) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "qwen3-0.6b");  // 8 KV heads
  struct Case {
    int64_t max_seq;
    int32_t workers;
    int64_t keys_per_split, splits;
  };
  for (const Case& c : std::vector<Case>{{200, 132, 256, 1},
                                         {600, 132, 256, 2},
                                         {1023, 132, 256, 3},
                                         {1151, 132, 256, 8},
                                         {1151, 32, 256, 4},
                                         {2175, 132, 256, 8},
                                         {4223, 132, 256, 16},
                                         {1151, 132, 512, 2},
                                         {1151, 132, 96, 11}}) {
    StatusOr<Graph> g = build_decode_graph(cfg, 1, c.max_seq);
    ASSERT_TRUE(g.ok());
    StatusOr<TaskGraph> tg =
        compile(*g, cfg, {.num_workers = c.workers, .attention_keys_per_split = c.keys_per_split});
    ASSERT_TRUE(tg.ok()) << tg.status().message();
    int64_t partials = 0;
    for (const abi::TaskDesc& t : tg->tasks) {
      if (t.kind != TaskKind::kAttentionPartial) continue;
      ++partials;
      EXPECT_EQ(t.params.attention.num_splits, c.splits)
          << c.max_seq << " rows, " << c.workers << " workers, " << c.keys_per_split << " keys";
    }
    EXPECT_EQ(partials, cfg.num_layers * cfg.num_kv_heads * c.splits) << c.max_seq;
  }
}

// Dedicated attention workers: the first ones run every attention task and nothing else, so
// single-split attention may stage the cache in their idle weight rings; the linears' tiles
// fill the other workers.
TEST(CompilerShapes, AttentionWorkersRunOnlyAttention) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "qwen3-0.6b");
  // 32 workers and a long cache: 4 splits a KV head, with merges.
  for (const auto& [max_seq, workers] : {std::pair{64, 8}, std::pair{4096, 32}}) {
    StatusOr<Graph> g = build_decode_graph(cfg, 1, max_seq);
    ASSERT_TRUE(g.ok());
    StatusOr<TaskGraph> tg =
        compile(*g, cfg, {.num_workers = 132, .attention_workers = workers});
    ASSERT_TRUE(tg.ok()) << tg.status().message();
    int attention = 0;
    for (int32_t w = 0; w < tg->num_workers; ++w) {
      for (uint32_t q = tg->queue_begin[size_t(w)]; q < tg->queue_begin[size_t(w) + 1]; ++q) {
        const abi::TaskDesc& t = tg->tasks[tg->queue_tasks[q]];
        const bool is_attention =
            t.kind == TaskKind::kAttentionPartial || t.kind == TaskKind::kAttentionMerge;
        EXPECT_EQ(is_attention, w < workers) << task_kind_name(t.kind) << " on worker " << w;
        if (t.kind != TaskKind::kAttentionPartial) continue;
        ++attention;
        EXPECT_EQ(t.params.attention.num_splits, max_seq == 64 ? 1 : 4);
        EXPECT_EQ(t.params.attention.stage_cache, max_seq == 64 ? 1 : 0);
      }
    }
    EXPECT_GE(attention, cfg.num_layers * cfg.num_kv_heads) << max_seq;
    for (const FusedOpInfo& op : tg->ops) {
      if (op.kind == TaskKind::kRmsNormGateUpSilu) {
        EXPECT_LE(op.task_count, 132u - workers);
      }
    }
  }
  // Without them, attention shares the workers and never stages.
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 64);
  ASSERT_TRUE(g.ok());
  StatusOr<TaskGraph> shared = compile(*g, cfg, {.num_workers = 132});
  ASSERT_TRUE(shared.ok());
  for (const abi::TaskDesc& t : shared->tasks) {
    if (t.kind == TaskKind::kAttentionPartial) {
      EXPECT_EQ(t.params.attention.stage_cache, 0);
    }
  }
}

}  // namespace
}  // namespace megalith
