// Random-weight checkpoints in exactly the Hugging Face layout, reproducible from a seed:
// tiny test shapes and the real shapes of published models.
//
//   MEGALITH_ASSIGN_OR_RETURN(ModelConfig cfg, preset_config(Architecture::kQwen3, "qwen3-8b"));
//   MEGALITH_RETURN_IF_ERROR(write_random_checkpoint(cfg, {.seed = 7}, "out/qwen3-8b"));
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "megalith/abi/random_weight.h"
#include "megalith/core/status.h"
#include "megalith/model/config.h"

namespace megalith {

// Preset names usable with `arch` ("tiny", "qwen3-8b", ...).
std::vector<std::string> preset_names(Architecture arch);
StatusOr<ModelConfig> preset_config(Architecture arch, const std::string& preset);

struct RandomCheckpointOptions {
  uint64_t seed = 0;
  ConfigStyle style = ConfigStyle::kHub;
  uint64_t max_shard_bytes = uint64_t(5) << 30;  // transformers' default shard size
};

// Element `index` of the weight named `name`: a pure function of (seed, name, index), so any
// executor (a GPU filling weights in place, for one) reproduces the checkpoint exactly.
// Matrices get std 1/sqrt(fan_in), embeddings std 0.3, norm weights 1 +- 0.25, biases +-0.1,
// which keeps activations O(1) at every depth and greedy choices well separated.
abi::RandomWeightParams random_weight_params(uint64_t seed, const std::string& name,
                                             const std::vector<int64_t>& shape);
float random_weight(uint64_t seed, const std::string& name, const std::vector<int64_t>& shape,
                    int64_t index);

// Writes config.json and the safetensors (stored in cfg.dtype) into `dir`.
Status write_random_checkpoint(const ModelConfig& cfg, const RandomCheckpointOptions& options,
                               const std::filesystem::path& dir);

}  // namespace megalith
