#include "megalith/model/checkpoint.h"

#include <set>

#include "megalith/core/logging.h"

namespace megalith {

TensorView Checkpoint::weight(const std::string& name) const {
  auto it = weights_.find(name);
  MEGALITH_CHECK(it != weights_.end(), "no weight {}", name);
  return it->second;
}

void Checkpoint::read_weights(const std::function<void(uint64_t, uint64_t)>& on_progress) const {
  uint64_t total = 0, done = 0;
  for (const auto& [name, w] : weights_) total += w.nbytes();
  constexpr size_t kPage = 4096;
  uint8_t sink = 0;
  for (const auto& [name, w] : weights_) {
    const auto* bytes = static_cast<const volatile uint8_t*>(w.data);
    for (size_t i = 0; i < w.nbytes(); i += kPage) sink ^= bytes[i];
    done += w.nbytes();
    if (on_progress) on_progress(done, total);
  }
  static_cast<void>(sink);
}

TensorView Checkpoint::lm_head() const {
  return weight(config_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
}

namespace {

// Tensors transformers itself skips when loading: rotary tables older exports saved, and the
// output projection a tied checkpoint may still carry.
bool ignorable(const std::string& name, const ModelConfig& c) {
  if (name.ends_with(".rotary_emb.inv_freq")) return true;
  return c.tie_word_embeddings && name == "lm_head.weight";
}

}  // namespace

StatusOr<std::unique_ptr<Checkpoint>> load_checkpoint(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return not_found("{}: not a directory (expected a Hugging Face model directory)", dir.string());
  }
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = dir;
  MEGALITH_ASSIGN_OR_RETURN(ckpt->config_, load_model_config(dir / "config.json"));
  MEGALITH_ASSIGN_OR_RETURN(ckpt->store_, TensorStore::open_dir(dir));
  const ModelConfig& cfg = ckpt->config_;
  const TensorStore& store = ckpt->store_;

  const std::string where = store.files().size() == 1
                                ? store.files()[0]->path().string()
                                : (dir / "model.safetensors.index.json").string();
  std::set<std::string> expected;
  for (const WeightSpec& spec : model_weight_specs(cfg)) {
    expected.insert(spec.name);
    const SafetensorsEntry* e = store.find(spec.name);
    if (!e) {
      return invalid_argument("{}: missing tensor {} (shape {}), which config.json's {} needs",
                              where, spec.name, shape_to_string(spec.shape),
                              architecture_hf_name(cfg.arch));
    }
    const std::string file = store.file_of(spec.name).string();
    if (!e->dtype) {
      return invalid_argument("{}: tensor {} has dtype {}; weights must be BF16, F16 or F32", file,
                              spec.name, e->dtype_name);
    }
    if (e->shape != spec.shape) {
      return invalid_argument("{}: tensor {} has shape {}, but config.json implies {}", file,
                              spec.name, shape_to_string(e->shape), shape_to_string(spec.shape));
    }
    ckpt->weights_[spec.name] = e->view();
  }
  for (const std::string& name : store.names()) {
    if (expected.count(name) || ignorable(name, cfg)) continue;
    return invalid_argument("{}: unexpected tensor {} (not part of {} as config.json describes it)",
                            store.file_of(name).string(), name, architecture_hf_name(cfg.arch));
  }
  MEGALITH_LOG_DEBUG("loaded {} weights from {}", ckpt->weights_.size(), dir.string());
  return ckpt;
}

}  // namespace megalith
