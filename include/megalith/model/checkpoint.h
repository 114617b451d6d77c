// A loaded Hugging Face checkpoint: the parsed config and a validated, memory-mapped view of
// every weight the architecture needs.
//
//   MEGALITH_ASSIGN_OR_RETURN(auto ckpt, load_checkpoint("models/qwen3-0.6b"));
//   TensorView wq = ckpt->weight("model.layers.0.self_attn.q_proj.weight");
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/core/tensor.h"
#include "megalith/model/config.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/safetensors.h"

namespace megalith {

class Checkpoint {
 public:
  const ModelConfig& config() const { return config_; }
  const std::filesystem::path& dir() const { return dir_; }
  // Aborts on a name that is not in model_weight_specs(): loading already proved they exist.
  TensorView weight(const std::string& name) const;
  // The weight called `name`, or null where the architecture has none (a task graph compiled
  // for another model names it).
  const TensorView* find_weight(const std::string& name) const;
  TensorView lm_head() const;  // lm_head.weight, or the embeddings when tied
  // Reads every weight's pages of the mapped files once, so the first decode steps do not
  // wait on the disk; `on_progress(done, total)` in bytes.
  void read_weights(const std::function<void(uint64_t done, uint64_t total)>& on_progress) const;

 private:
  friend StatusOr<std::unique_ptr<Checkpoint>> load_checkpoint(const std::filesystem::path&);
  friend StatusOr<std::unique_ptr<Checkpoint>> random_checkpoint(const ModelConfig&, uint64_t);
  ModelConfig config_;
  std::filesystem::path dir_;
  TensorStore store_;                           // the mapped files
  std::vector<std::vector<uint8_t>> owned_;     // or weights held in memory
  std::map<std::string, TensorView> weights_;
};

// Reads DIR/config.json and DIR's safetensors; every missing, unexpected, misshapen or
// unsupported-dtype tensor is an error naming the file and the tensor.
StatusOr<std::unique_ptr<Checkpoint>> load_checkpoint(const std::filesystem::path& dir);

// The checkpoint `megalith make-checkpoint --seed` would write for `cfg`, held in memory
// instead (random_checkpoint.h has the formula).
StatusOr<std::unique_ptr<Checkpoint>> random_checkpoint(const ModelConfig& cfg, uint64_t seed);

}  // namespace megalith
