#include "megalith/model/checkpoint.h"

#include <algorithm>
#include <functional>
#include <set>

#include "megalith/core/logging.h"

namespace megalith {

TensorView Checkpoint::weight(const std::string& name) const {
  const TensorView* w = find_weight(name);
  MEGALITH_CHECK(w != nullptr, "no weight {}", name);
  return *w;
}

const TensorView* Checkpoint::find_weight(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : &it->second;
}

void Checkpoint::read_weights(const std::function<void(uint64_t, uint64_t)>& on_progress) const {
  // In address order, so the files are read front to back (readahead helps), and every page
  // a weight touches, from the page its first byte is on.
  std::vector<const TensorView*> order;
  uint64_t total = 0, done = 0;
  for (const auto& [name, w] : weights_) {
    order.push_back(&w);
    total += w.nbytes();
  }
  std::sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
    return std::less<const void*>()(a->data, b->data);
  });
  constexpr uintptr_t kPage = 4096;
  uint8_t sink = 0;
  for (const TensorView* w : order) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(w->data);
    const uintptr_t end = begin + w->nbytes();
    for (uintptr_t p = begin & ~(kPage - 1); p < end; p += kPage) {
      sink ^= *reinterpret_cast<const volatile uint8_t*>(std::max(p, begin));
    }
    done += w->nbytes();
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
