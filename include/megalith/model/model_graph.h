// The decode-step graph of a Llama, Qwen2 or Qwen3 model: T new tokens of one sequence at
// positions p..p+T-1 in, logits and the greedy next tokens out, the KV cache updated in place.
// The graph is the single source of truth for the weights a model reads: their Hugging Face
// names, dtypes and shapes.
//
//   MEGALITH_ASSIGN_OR_RETURN(Graph g, build_decode_graph(cfg, /*max_tokens=*/1, 4096));
//   for (const WeightSpec& w : weight_specs(g)) fmt::print("{}\n", w.name);
//   TensorId logits = g.find(kLogitsOutput);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/graph/graph.h"
#include "megalith/model/config.h"

namespace megalith {

// The graph's interface to the host.
inline constexpr std::string_view kTokenIdsInput = "token_ids";   // [T] i32
inline constexpr std::string_view kPositionsInput = "positions";  // [T] i32
inline constexpr std::string_view kLogitsOutput = "logits";       // [T, vocab] in cfg.dtype
// [T] i32, the argmax of each logits row; the last row's is the greedy continuation.
inline constexpr std::string_view kNextTokensOutput = "next_token_ids";
// State per layer i: "layers.{i}.k_cache" and "layers.{i}.v_cache", [max_seq_len, kv_size].

// Activations and the KV cache are in cfg.dtype, like the weights. Errors name the config
// field that cannot be built (non-positive sizes, heads that do not divide, odd head_dim).
StatusOr<Graph> build_decode_graph(const ModelConfig& cfg, int64_t max_tokens, int64_t max_seq_len);

struct WeightSpec {
  std::string name;  // the Hugging Face parameter name
  DType dtype = DType::kBF16;
  Shape shape;
};

// Every weight of `g` in graph order (the order the decode step first reads them).
std::vector<WeightSpec> weight_specs(const Graph& g);

// Every weight the architecture of a valid `cfg` reads: weight_specs of its decode graph.
// lm_head.weight is absent when the embeddings are tied.
std::vector<WeightSpec> model_weight_specs(const ModelConfig& cfg);

// Hugging Face name of a per-layer parameter: layer_weight_name(3, "self_attn.q_proj.weight").
std::string layer_weight_name(int64_t layer, std::string_view suffix);

}  // namespace megalith
