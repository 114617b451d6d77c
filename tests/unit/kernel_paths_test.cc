// Which compiled graphs the megakernel compiled for bf16 decode covers
// (kernels::bf16_decode_covers in kernels/megakernel/layout.h): plain C++, checked here on
// the compiler's real graphs; the GPU tests run both kernels.
#ifdef MEGALITH_HAS_CUDA

#include <gtest/gtest.h>

#include <algorithm>

#include "megakernel/layout.h"
#include "megalith/compiler/compiler.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"

namespace megalith {
namespace {

using abi::TaskKind;

// The tiny preset widened to rows of whole items (256 and 768 columns, head_dim 64), whose
// tiles on 8 workers have 32 rows or more: the shapes of a real model's tiles.
TaskGraph compile_decode_shapes(Architecture arch, DType dtype, int32_t batch = 1,
                                int32_t head_dim = 64, int32_t workers = 8,
                                int32_t hidden = 256) {
  auto cfg = preset_config(arch, "tiny");
  EXPECT_TRUE(cfg.ok()) << cfg.status().message();
  cfg->dtype = dtype;
  cfg->hidden_size = hidden;
  cfg->intermediate_size = 768;
  cfg->head_dim = head_dim;
  StatusOr<Graph> g = build_decode_graph(*cfg, 1, 64);
  EXPECT_TRUE(g.ok()) << g.status().message();
  StatusOr<TaskGraph> tg = compile(*g, *cfg, {.num_workers = workers, .batch = batch});
  EXPECT_TRUE(tg.ok()) << tg.status().message();
  return std::move(tg).value();
}

bool all_covered(const TaskGraph& tg) {
  return std::all_of(tg.tasks.begin(), tg.tasks.end(), kernels::bf16_decode_covers);
}

// The kinds of the tasks not covered, one each.
std::vector<TaskKind> uncovered_kinds(const TaskGraph& tg) {
  std::vector<TaskKind> kinds;
  for (const abi::TaskDesc& t : tg.tasks) {
    if (!kernels::bf16_decode_covers(t) &&
        std::find(kinds.begin(), kinds.end(), t.kind) == kinds.end()) {
      kinds.push_back(t.kind);
    }
  }
  std::sort(kinds.begin(), kinds.end());
  return kinds;
}

TEST(KernelPaths, Bf16DecodeCoversEveryBf16ArchitectureAtBatchOne) {
  for (Architecture arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
    SCOPED_TRACE(architecture_short_name(arch));
    EXPECT_TRUE(all_covered(compile_decode_shapes(arch, DType::kBF16)));
  }
}

TEST(KernelPaths, OtherWeightTypesBatchesAndWideHeadsTakeTheGeneralKernel) {
  // f16 and f32: every linear kind and attention (its caches keep the model's dtype).
  const std::vector<TaskKind> typed = {TaskKind::kRmsNormLinear, TaskKind::kLinearResidual,
                                       TaskKind::kRmsNormGateUpSilu, TaskKind::kAttentionPartial,
                                       TaskKind::kLmHead};
  EXPECT_EQ(uncovered_kinds(compile_decode_shapes(Architecture::kQwen3, DType::kF16)), typed);
  EXPECT_EQ(uncovered_kinds(compile_decode_shapes(Architecture::kLlama, DType::kF32)), typed);
  // Batch 2: every linear has two input rows; attention is per slot and still covered.
  EXPECT_EQ(uncovered_kinds(compile_decode_shapes(Architecture::kQwen3, DType::kBF16, 2)),
            (std::vector<TaskKind>{TaskKind::kRmsNormLinear, TaskKind::kLinearResidual,
                                   TaskKind::kRmsNormGateUpSilu, TaskKind::kLmHead}));
  // head_dim 256: bf16 cache rows of 512 bytes, past the vector pass's 256.
  EXPECT_EQ(uncovered_kinds(compile_decode_shapes(Architecture::kQwen3, DType::kBF16, 1, 256)),
            (std::vector<TaskKind>{TaskKind::kAttentionPartial}));
}

// The bf16 decode kernel multiplies items of 4 rows of 256 columns only: rows of 128 columns
// (the tiny preset's) or tiles of fewer than 4 rows (the same shapes on 132 workers) are not.
TEST(KernelPaths, TilesOfOddWidthsOrFewRowsTakeTheGeneralKernel) {
  const std::vector<TaskKind> linears = {TaskKind::kRmsNormLinear, TaskKind::kLinearResidual,
                                         TaskKind::kRmsNormGateUpSilu, TaskKind::kLmHead};
  EXPECT_EQ(uncovered_kinds(compile_decode_shapes(Architecture::kLlama, DType::kBF16, 1, 32, 8,
                                                  128)),
            linears);
  const TaskGraph many = compile_decode_shapes(Architecture::kQwen3, DType::kBF16, 1, 64, 132);
  EXPECT_FALSE(all_covered(many));
  for (const abi::TaskDesc& t : many.tasks) {
    const abi::LinearForm form = abi::linear_form(t.kind);
    if (form.weights == 0) continue;
    EXPECT_EQ(kernels::bf16_decode_covers(t), t.refs[form.weight[0]].rows >= 4)
        << "task of " << many.ops[t.op].name;
  }
}

TEST(KernelPaths, MisalignedCacheRowsTakeTheGeneralKernel) {
  TaskGraph tg = compile_decode_shapes(Architecture::kLlama, DType::kBF16);
  auto attention = std::find_if(tg.tasks.begin(), tg.tasks.end(), [](const abi::TaskDesc& t) {
    return t.kind == TaskKind::kAttentionPartial;
  });
  ASSERT_NE(attention, tg.tasks.end());
  EXPECT_TRUE(kernels::bf16_decode_covers(*attention));
  attention->refs[8].offset += 2;  // the value cache one element off its 16-byte boundary
  EXPECT_FALSE(kernels::bf16_decode_covers(*attention));
}

}  // namespace
}  // namespace megalith

#endif  // MEGALITH_HAS_CUDA
