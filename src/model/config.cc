#include "megalith/model/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace megalith {

using json = nlohmann::json;

std::string_view architecture_hf_name(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "LlamaForCausalLM";
    case Architecture::kQwen2: return "Qwen2ForCausalLM";
    case Architecture::kQwen3: return "Qwen3ForCausalLM";
  }
  return "?";
}

std::string_view architecture_short_name(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "llama";
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
  }
  return "?";
}

int64_t ModelConfig::num_parameters() const {
  const int64_t attn = hidden_size * (q_size() + 2 * kv_size()) + q_size() * hidden_size +
                       (attention_bias ? q_size() + 2 * kv_size() : 0) +
                       (attention_out_bias ? hidden_size : 0) + (qk_norm ? 2 * head_dim : 0);
  const int64_t mlp =
      3 * hidden_size * intermediate_size + (mlp_bias ? 2 * intermediate_size + hidden_size : 0);
  const int64_t layer = attn + mlp + 2 * hidden_size;
  const int64_t embeddings = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
  return embeddings + num_layers * layer + hidden_size;
}

namespace {

// Reads config keys with the error messages a user can act on.
class ConfigReader {
 public:
  ConfigReader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  Status error(const std::string& what) const {
    return invalid_argument("{}: {}", source_, what);
  }

  const std::string& source() const { return source_; }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  StatusOr<int64_t> positive_int(const char* key) const {
    if (!has(key)) return error(fmt::format("missing required key \"{}\"", key));
    return positive_int_value(key, j_[key]);
  }
  StatusOr<int64_t> positive_int_or(const char* key, int64_t fallback) const {
    return has(key) ? positive_int_value(key, j_[key]) : StatusOr<int64_t>(fallback);
  }
  StatusOr<double> number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_number()) return error(fmt::format("\"{}\" must be a number", key));
    return j_[key].get<double>();
  }
  StatusOr<bool> bool_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_boolean()) return error(fmt::format("\"{}\" must be true or false", key));
    return j_[key].get<bool>();
  }

 private:
  StatusOr<int64_t> positive_int_value(const char* key, const json& v) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t(1) << 31)) {
      return error(fmt::format("\"{}\" must be a positive integer, got {}", key, v.dump()));
    }
    return v.get<int64_t>();
  }
  const json& j_;
  std::string source_;
};

StatusOr<Architecture> parse_architecture(const ConfigReader& r, const json& j) {
  std::string name;
  if (r.has("architectures")) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.size() != 1 || !a[0].is_string()) {
      return r.error("\"architectures\" must be a list holding one architecture name");
    }
    name = a[0].get<std::string>();
  } else if (r.has("model_type") && j["model_type"].is_string()) {
    const std::string type = j["model_type"].get<std::string>();
    for (Architecture arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
      if (type == architecture_short_name(arch)) return arch;
    }
    return r.error(fmt::format("unsupported model_type \"{}\" (supported: llama, qwen2, qwen3)",
                               type));
  } else {
    return r.error("missing \"architectures\" (and no \"model_type\")");
  }
  for (Architecture arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
    if (name == architecture_hf_name(arch)) return arch;
  }
  return r.error(fmt::format(
      "unsupported architecture \"{}\" (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
      "Qwen3ForCausalLM)",
      name));
}

// Rotary parameters come either as transformers 5's `rope_parameters` (holding rope_theta)
// or as the Hub's top-level `rope_theta` plus an optional `rope_scaling`.
StatusOr<RopeConfig> parse_rope(const ConfigReader& r, const json& j, int64_t max_positions) {
  json params = json::object();
  const char* params_key = "rope_parameters";
  if (r.has("rope_parameters")) {
    params = j["rope_parameters"];
  } else if (r.has("rope_scaling")) {
    params = j["rope_scaling"];
    params_key = "rope_scaling";
  }
  if (!params.is_object()) return r.error(fmt::format("\"{}\" must be an object", params_key));
  const ConfigReader p(params, fmt::format("{}: {}", r.source(), params_key));

  RopeConfig rope;
  MEGALITH_ASSIGN_OR_RETURN(rope.theta, r.number_or("rope_theta", 10000.0));
  MEGALITH_ASSIGN_OR_RETURN(rope.theta, p.number_or("rope_theta", rope.theta));
  if (!(rope.theta > 1.0)) return r.error("rope_theta must be greater than 1");
  MEGALITH_ASSIGN_OR_RETURN(double partial, p.number_or("partial_rotary_factor", 1.0));
  MEGALITH_ASSIGN_OR_RETURN(partial, r.number_or("partial_rotary_factor", partial));
  if (partial != 1.0) return r.error("partial_rotary_factor other than 1 is not supported");

  std::string type = "default";
  for (const char* key : {"type", "rope_type"}) {
    if (params.contains(key)) {
      if (!params[key].is_string()) return r.error(fmt::format("rope \"{}\" must be a string", key));
      type = params[key].get<std::string>();
    }
  }
  if (type == "default") return rope;
  if (type != "linear" && type != "llama3") {
    return r.error(fmt::format(
        "unsupported rope type \"{}\" (supported: default, linear, llama3)", type));
  }
  if (!params.contains("factor")) return r.error(fmt::format("rope type {} needs \"factor\"", type));
  MEGALITH_ASSIGN_OR_RETURN(rope.factor, p.number_or("factor", 1.0));
  if (!(rope.factor >= 1.0)) return r.error("rope \"factor\" must be at least 1");
  if (type == "linear") {
    rope.type = RopeType::kLinear;
    return rope;
  }
  rope.type = RopeType::kLlama3;
  for (const char* key : {"low_freq_factor", "high_freq_factor"}) {
    if (!params.contains(key)) return r.error(fmt::format("rope type llama3 needs \"{}\"", key));
  }
  MEGALITH_ASSIGN_OR_RETURN(rope.low_freq_factor, p.number_or("low_freq_factor", 1.0));
  MEGALITH_ASSIGN_OR_RETURN(rope.high_freq_factor, p.number_or("high_freq_factor", 4.0));
  MEGALITH_ASSIGN_OR_RETURN(rope.original_max_position_embeddings,
                            p.positive_int_or("original_max_position_embeddings", max_positions));
  if (!(rope.low_freq_factor > 0) || !(rope.high_freq_factor > rope.low_freq_factor)) {
    return r.error("llama3 rope needs 0 < low_freq_factor < high_freq_factor");
  }
  return rope;
}

StatusOr<std::vector<int64_t>> parse_token_ids(const ConfigReader& r, const json& j,
                                               const char* key) {
  std::vector<int64_t> ids;
  if (!r.has(key)) return ids;
  const json& v = j[key];
  auto add = [&](const json& e) -> Status {
    if (!e.is_number_integer() || e.get<int64_t>() < 0) {
      return r.error(fmt::format("\"{}\" must hold non-negative integers", key));
    }
    ids.push_back(e.get<int64_t>());
    return {};
  };
  if (v.is_array()) {
    for (const json& e : v) MEGALITH_RETURN_IF_ERROR(add(e));
  } else {
    MEGALITH_RETURN_IF_ERROR(add(v));
  }
  return ids;
}

Status check_no_sliding_window(const ConfigReader& r, const json& j, int64_t layers) {
  if (r.has("layer_types")) {
    if (!j["layer_types"].is_array()) return r.error("\"layer_types\" must be a list");
    for (const json& t : j["layer_types"]) {
      if (t != "full_attention") {
        return r.error(fmt::format("layer type {} is not supported (only full_attention)",
                                   t.dump()));
      }
    }
    return {};
  }
  MEGALITH_ASSIGN_OR_RETURN(bool sliding, r.bool_or("use_sliding_window", false));
  if (!sliding) return {};
  MEGALITH_ASSIGN_OR_RETURN(int64_t window_layers, r.positive_int_or("max_window_layers", 28));
  if (window_layers < layers) return r.error("sliding-window attention is not supported");
  return {};
}

}  // namespace

StatusOr<ModelConfig> parse_model_config(const json& j, const std::string& source) {
  const ConfigReader r(j, source);
  if (!j.is_object()) return r.error("config must be a JSON object");
  ModelConfig c;
  MEGALITH_ASSIGN_OR_RETURN(c.arch, parse_architecture(r, j));
  const bool llama = c.arch == Architecture::kLlama;

  MEGALITH_ASSIGN_OR_RETURN(c.vocab_size, r.positive_int("vocab_size"));
  MEGALITH_ASSIGN_OR_RETURN(c.hidden_size, r.positive_int("hidden_size"));
  MEGALITH_ASSIGN_OR_RETURN(c.intermediate_size, r.positive_int("intermediate_size"));
  MEGALITH_ASSIGN_OR_RETURN(c.num_layers, r.positive_int("num_hidden_layers"));
  MEGALITH_ASSIGN_OR_RETURN(c.num_heads, r.positive_int("num_attention_heads"));
  MEGALITH_ASSIGN_OR_RETURN(c.num_kv_heads, r.positive_int_or("num_key_value_heads", c.num_heads));
  if (c.num_heads % c.num_kv_heads != 0) {
    return r.error(fmt::format("num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                               c.num_heads, c.num_kv_heads));
  }
  // Qwen3 defaults head_dim to 128; the others derive it from the hidden size. transformers
  // requires Llama's hidden size to divide evenly among the heads even with its own head_dim.
  const bool derive_head_dim = !r.has("head_dim") && c.arch != Architecture::kQwen3;
  if ((derive_head_dim || llama) && c.hidden_size % c.num_heads != 0) {
    return r.error(fmt::format("hidden_size ({}) is not a multiple of num_attention_heads ({})",
                               c.hidden_size, c.num_heads));
  }
  MEGALITH_ASSIGN_OR_RETURN(
      c.head_dim, r.positive_int_or("head_dim", derive_head_dim ? c.hidden_size / c.num_heads : 128));
  if (c.head_dim % 2 != 0) return r.error(fmt::format("head_dim ({}) must be even", c.head_dim));
  MEGALITH_ASSIGN_OR_RETURN(c.max_position_embeddings,
                            r.positive_int_or("max_position_embeddings", llama ? 2048 : 32768));
  MEGALITH_ASSIGN_OR_RETURN(c.rms_norm_eps, r.number_or("rms_norm_eps", 1e-6));
  if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1)) return r.error("rms_norm_eps must be in (0, 1)");
  MEGALITH_ASSIGN_OR_RETURN(c.rope, parse_rope(r, j, c.max_position_embeddings));
  MEGALITH_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.bool_or("tie_word_embeddings", false));

  if (c.arch == Architecture::kQwen2) {
    c.attention_bias = true;  // Qwen2 always has q/k/v bias and never an o_proj bias
  } else {
    MEGALITH_ASSIGN_OR_RETURN(c.attention_bias, r.bool_or("attention_bias", false));
    c.attention_out_bias = c.attention_bias;
  }
  if (llama) {
    MEGALITH_ASSIGN_OR_RETURN(c.mlp_bias, r.bool_or("mlp_bias", false));
  }
  c.qk_norm = c.arch == Architecture::kQwen3;

  if (r.has("hidden_act") && j["hidden_act"] != "silu") {
    return r.error(fmt::format("unsupported hidden_act {} (only silu)", j["hidden_act"].dump()));
  }
  if (r.has("quantization_config")) return r.error("quantized checkpoints are not supported");
  MEGALITH_RETURN_IF_ERROR(check_no_sliding_window(r, j, c.num_layers));

  c.dtype = DType::kF32;  // transformers' default when the config names none
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (!r.has(key)) continue;
    const auto dtype = j[key].is_string() ? dtype_from_torch_name(j[key].get<std::string>())
                                          : std::nullopt;
    if (!dtype) {
      return r.error(fmt::format("unsupported \"{}\" {} (use bfloat16, float16 or float32)", key,
                                 j[key].dump()));
    }
    c.dtype = *dtype;
  }
  MEGALITH_ASSIGN_OR_RETURN(c.eos_token_ids, parse_token_ids(r, j, "eos_token_id"));
  MEGALITH_ASSIGN_OR_RETURN(auto bos, parse_token_ids(r, j, "bos_token_id"));
  if (bos.size() > 1) return r.error("\"bos_token_id\" must be one integer");
  c.bos_token_id = bos.empty() ? -1 : bos[0];
  for (int64_t id : c.eos_token_ids) {
    if (id >= c.vocab_size) return r.error(fmt::format("eos_token_id {} is outside the vocabulary", id));
  }
  return c;
}

StatusOr<ModelConfig> load_model_config(const std::filesystem::path& config_json) {
  const std::string source = config_json.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config_json, ec)) {
    return not_found("{}: no such file (a model directory needs a Hugging Face config.json)",
                     source);
  }
  std::ifstream in(config_json);
  if (!in) return io_error("{}: cannot open for reading", source);
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return io_error("{}: read failed", source);
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument("{}: not valid JSON", source);
  return parse_model_config(j, source);
}

json model_config_to_json(const ModelConfig& c, ConfigStyle style) {
  json j;
  j["architectures"] = {std::string(architecture_hf_name(c.arch))};
  j["model_type"] = std::string(architecture_short_name(c.arch));
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.arch != Architecture::kQwen2) j["attention_bias"] = c.attention_bias;
  if (c.arch == Architecture::kLlama) j["mlp_bias"] = c.mlp_bias;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;

  json scaling = nullptr;
  if (c.rope.type == RopeType::kLinear) {
    scaling = {{"rope_type", "linear"}, {"factor", c.rope.factor}};
  } else if (c.rope.type == RopeType::kLlama3) {
    scaling = {{"rope_type", "llama3"},
               {"factor", c.rope.factor},
               {"low_freq_factor", c.rope.low_freq_factor},
               {"high_freq_factor", c.rope.high_freq_factor},
               {"original_max_position_embeddings", c.rope.original_max_position_embeddings}};
  }
  const std::string dtype(dtype_torch_name(c.dtype));
  if (style == ConfigStyle::kHub) {
    j["rope_theta"] = c.rope.theta;
    j["rope_scaling"] = scaling;
    j["torch_dtype"] = dtype;
  } else {
    json params = scaling.is_null() ? json{{"rope_type", "default"}} : scaling;
    params["rope_theta"] = c.rope.theta;
    j["rope_parameters"] = params;
    j["dtype"] = dtype;
  }
  return j;
}

}  // namespace megalith
