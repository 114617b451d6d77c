// The CPU reference model: the numerical oracle every other executor is checked against.
// Float32 activations, double accumulation, weights read in their stored dtype, and a KV
// cache so decoding one token at a time equals running the whole sequence at once.
// Written for clarity, not speed.
//
//   ReferenceModel model(*ckpt);
//   auto logits = model.forward(prompt);        // [prompt.size(), vocab], appends to the cache
//   auto next = model.forward({{token}});       // one decode step at the next position
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/model/checkpoint.h"

namespace megalith {

// The rotary angle step per pair of head dimensions (transformers' inv_freq), after the
// config's scaling (linear, llama3), computed in float32 as transformers does.
std::vector<float> rope_inverse_frequencies(const ModelConfig& cfg);

class ReferenceModel {
 public:
  explicit ReferenceModel(const Checkpoint& checkpoint);

  // Runs `tokens` at positions position() .. position()+n-1, appends their keys and values to
  // the cache, and returns logits row-major [n, vocab]. Token ids outside the vocabulary are
  // an error.
  StatusOr<std::vector<float>> forward(std::span<const int32_t> tokens);

  int64_t position() const { return position_; }
  void reset() { position_ = 0; }

 private:
  struct LayerCache {
    std::vector<float> keys, values;  // [positions, kv_heads * head_dim]
  };

  void attention_block(int64_t layer, int64_t n, std::vector<float>& x);
  void mlp_block(int64_t layer, int64_t n, std::vector<float>& x);
  void apply_rope(float* rows, int64_t n, int64_t heads) const;

  const Checkpoint& ckpt_;
  const ModelConfig& cfg_;
  std::vector<float> inv_freq_;
  std::vector<LayerCache> cache_;
  int64_t position_ = 0;
};

}  // namespace megalith
