#include "megalith/model/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "megalith/model/checkpoint.h"
#include "megalith/model/safetensors.h"

namespace megalith {

namespace {

struct Preset {
  const char* name;
  Architecture arch;
  ModelConfig (*make)();
};

ModelConfig base(Architecture arch, int64_t vocab, int64_t hidden, int64_t inter, int64_t layers,
                 int64_t heads, int64_t kv_heads, int64_t head_dim) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.dtype = DType::kBF16;
  c.attention_bias = arch == Architecture::kQwen2;
  c.qk_norm = arch == Architecture::kQwen3;
  return c;
}

ModelConfig qwen3(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, bool tied) {
  ModelConfig c = base(Architecture::kQwen3, 151936, hidden, inter, layers, heads, 8, 128);
  c.max_position_embeddings = 40960;
  c.rope.theta = 1000000.0;
  c.tie_word_embeddings = tied;
  c.bos_token_id = 151643;
  c.eos_token_ids = {151645};
  return c;
}

ModelConfig llama3(int64_t hidden, int64_t inter, int64_t layers, int64_t head_dim, double factor,
                   bool tied) {
  ModelConfig c = base(Architecture::kLlama, 128256, hidden, inter, layers, 32, 8, head_dim);
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope = {RopeType::kLlama3, 500000.0, factor, 1.0, 4.0, 8192};
  c.tie_word_embeddings = tied;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001};
  return c;
}

// Tiny shapes exercise every feature of their architecture: GQA, llama3 rope scaling and tied
// embeddings (llama), q/k/v bias (qwen2), q/k norm with head_dim != hidden/heads (qwen3).
constexpr Preset kPresets[] = {
    {"tiny", Architecture::kLlama,
     [] {
       ModelConfig c = base(Architecture::kLlama, 512, 128, 320, 2, 4, 2, 32);
       c.max_position_embeddings = 1024;
       c.rope = {RopeType::kLlama3, 500000.0, 8.0, 1.0, 4.0, 64};
       c.tie_word_embeddings = true;
       c.rms_norm_eps = 1e-5;
       return c;
     }},
    {"tiny", Architecture::kQwen2,
     [] {
       ModelConfig c = base(Architecture::kQwen2, 512, 128, 320, 2, 4, 2, 32);
       c.max_position_embeddings = 1024;
       c.rope.theta = 1000000.0;
       return c;
     }},
    {"tiny", Architecture::kQwen3,
     [] {
       ModelConfig c = base(Architecture::kQwen3, 512, 128, 320, 2, 4, 2, 48);
       c.max_position_embeddings = 1024;
       c.rope.theta = 1000000.0;
       return c;
     }},
    {"qwen2.5-0.5b", Architecture::kQwen2,
     [] {
       ModelConfig c = base(Architecture::kQwen2, 151936, 896, 4864, 24, 14, 2, 64);
       c.max_position_embeddings = 32768;
       c.rope.theta = 1000000.0;
       c.tie_word_embeddings = true;
       c.bos_token_id = 151643;
       c.eos_token_ids = {151645};
       return c;
     }},
    {"qwen3-0.6b", Architecture::kQwen3, [] { return qwen3(1024, 3072, 28, 16, true); }},
    {"qwen3-1.7b", Architecture::kQwen3, [] { return qwen3(2048, 6144, 28, 16, true); }},
    {"qwen3-8b", Architecture::kQwen3, [] { return qwen3(4096, 12288, 36, 32, false); }},
    {"llama-3.2-1b", Architecture::kLlama, [] { return llama3(2048, 8192, 16, 64, 32.0, true); }},
    {"llama-3.1-8b", Architecture::kLlama, [] { return llama3(4096, 14336, 32, 128, 8.0, false); }},
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

}  // namespace

std::vector<std::string> preset_names(Architecture arch) {
  std::vector<std::string> names;
  for (const Preset& p : kPresets)
    if (p.arch == arch) names.push_back(p.name);
  return names;
}

StatusOr<ModelConfig> preset_config(Architecture arch, const std::string& preset) {
  for (const Preset& p : kPresets) {
    if (p.name == preset && p.arch == arch) return p.make();
  }
  for (const Preset& p : kPresets) {
    if (p.name == preset) {
      return invalid_argument("preset {} is a {} model, not {}", preset,
                              architecture_short_name(p.arch), architecture_short_name(arch));
    }
  }
  return invalid_argument("unknown preset '{}' for {} (available: {})", preset,
                          architecture_short_name(arch), fmt::join(preset_names(arch), ", "));
}

abi::RandomWeightParams random_weight_params(uint64_t seed, const std::string& name,
                                             const std::vector<int64_t>& shape) {
  abi::RandomWeightParams p;
  p.stream = abi::splitmix64(seed ^ fnv1a(name));
  if (shape.size() == 1) {
    p.kind = name.ends_with("norm.weight") ? abi::RandomWeightKind::kNorm
                                           : abi::RandomWeightKind::kBias;
    return p;
  }
  // Embeddings small enough that the layers, not the token's own embedding, pick the next
  // token (tied models otherwise just repeat their input).
  const bool embedding = name == "model.embed_tokens.weight";
  p.std_dev = embedding ? 0.3f : 1.0f / std::sqrt(float(shape[1]));
  return p;
}

float random_weight(uint64_t seed, const std::string& name, const std::vector<int64_t>& shape,
                    int64_t index) {
  return abi::random_weight_value(random_weight_params(seed, name, shape), index);
}

StatusOr<std::unique_ptr<Checkpoint>> random_checkpoint(const ModelConfig& cfg, uint64_t seed) {
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->config_ = cfg;
  for (const WeightSpec& spec : model_weight_specs(cfg)) {
    int64_t count = 1;
    for (int64_t d : spec.shape) count *= d;
    std::vector<uint8_t>& bytes = ckpt->owned_.emplace_back(size_t(count) * dtype_size(cfg.dtype));
    const abi::RandomWeightParams params = random_weight_params(seed, spec.name, spec.shape);
    constexpr int64_t kBlock = 4096;
#pragma omp parallel for schedule(static)
    for (int64_t first = 0; first < count; first += kBlock) {
      float values[kBlock];
      const int64_t n = std::min(kBlock, count - first);
      for (int64_t i = 0; i < n; ++i) values[i] = abi::random_weight_value(params, first + i);
      convert_from_float(cfg.dtype, values, bytes.data() + size_t(first) * dtype_size(cfg.dtype),
                         size_t(n));
    }
    ckpt->weights_[spec.name] = TensorView{cfg.dtype, spec.shape, bytes.data()};
  }
  return ckpt;
}

Status write_random_checkpoint(const ModelConfig& cfg, const RandomCheckpointOptions& options,
                               const std::filesystem::path& dir) {
  std::vector<TensorToWrite> tensors;
  for (const WeightSpec& spec : model_weight_specs(cfg)) {
    tensors.push_back({spec.name, cfg.dtype, spec.shape,
                       [&cfg, seed = options.seed, name = spec.name, shape = spec.shape](
                           int64_t first, int64_t count, void* out) {
                         std::vector<float> values(static_cast<size_t>(count));
#pragma omp parallel for schedule(static) if (count >= 65536)
                         for (int64_t i = 0; i < count; ++i) {
                           values[size_t(i)] = random_weight(seed, name, shape, first + i);
                         }
                         convert_from_float(cfg.dtype, values.data(), out, size_t(count));
                       }});
  }
  MEGALITH_RETURN_IF_ERROR(write_checkpoint_tensors(dir, tensors, options.max_shard_bytes));
  const std::filesystem::path config_path = dir / "config.json";
  std::ofstream config(config_path);
  config << model_config_to_json(cfg, options.style).dump(2) << "\n";
  if (!config.good()) return io_error("{}: write failed", config_path.string());
  return {};
}

}  // namespace megalith
