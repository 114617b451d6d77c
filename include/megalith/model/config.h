// A model's architecture, parsed from a Hugging Face config.json in either style:
// the Hub's (`rope_theta`, `rope_scaling`, `torch_dtype`) or transformers 5's
// (`rope_parameters`, `dtype`).
//
//   MEGALITH_ASSIGN_OR_RETURN(ModelConfig cfg, load_model_config("ckpt/config.json"));
//   int64_t q_rows = cfg.num_heads * cfg.head_dim;
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "megalith/core/dtype.h"
#include "megalith/core/status.h"

namespace megalith {

enum class Architecture { kLlama, kQwen2, kQwen3 };

std::string_view architecture_hf_name(Architecture a);  // "LlamaForCausalLM", ...
std::string_view architecture_short_name(Architecture a);  // "llama", "qwen2", "qwen3"

enum class RopeType { kDefault, kLinear, kLlama3 };

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;  // linear and llama3
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q, k, v (and o for Llama); always on q/k/v for Qwen2
  bool attention_out_bias = false;
  bool mlp_bias = false;        // Llama's mlp_bias: bias on gate, up and down
  bool qk_norm = false;         // Qwen3: RMS norm over each head of q and k before rotary
  DType dtype = DType::kBF16;   // the checkpoint's declared weight dtype
  std::vector<int64_t> eos_token_ids;
  int64_t bos_token_id = -1;    // -1: none

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  // Parameters in the checkpoint (tied embeddings counted once).
  int64_t num_parameters() const;
};

// Parses and validates; every error names `source` (a file path or "<string>").
StatusOr<ModelConfig> parse_model_config(const nlohmann::json& j, const std::string& source);
StatusOr<ModelConfig> load_model_config(const std::filesystem::path& config_json);

// The config.json a checkpoint of `cfg` carries, in Hub style or transformers-5 style.
enum class ConfigStyle { kHub, kTransformers5 };
nlohmann::json model_config_to_json(const ModelConfig& cfg, ConfigStyle style);

}  // namespace megalith
