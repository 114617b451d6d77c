#include "megalith/model/checkpoint.h"

#include <set>

#include "megalith/core/logging.h"

namespace megalith {

std::string layer_weight_name(int64_t layer, std::string_view suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}

std::vector<WeightSpec> model_weight_specs(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), ff = c.intermediate_size;
  std::vector<WeightSpec> specs = {{"model.embed_tokens.weight", {c.vocab_size, h}}};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto add = [&](std::string_view suffix, Shape shape) {
      specs.push_back({layer_weight_name(i, suffix), std::move(shape)});
    };
    add("input_layernorm.weight", {h});
    add("self_attn.q_proj.weight", {q, h});
    add("self_attn.k_proj.weight", {kv, h});
    add("self_attn.v_proj.weight", {kv, h});
    if (c.attention_bias) {
      add("self_attn.q_proj.bias", {q});
      add("self_attn.k_proj.bias", {kv});
      add("self_attn.v_proj.bias", {kv});
    }
    if (c.qk_norm) {
      add("self_attn.q_norm.weight", {c.head_dim});
      add("self_attn.k_norm.weight", {c.head_dim});
    }
    add("self_attn.o_proj.weight", {h, q});
    if (c.attention_out_bias) add("self_attn.o_proj.bias", {h});
    add("post_attention_layernorm.weight", {h});
    add("mlp.gate_proj.weight", {ff, h});
    add("mlp.up_proj.weight", {ff, h});
    add("mlp.down_proj.weight", {h, ff});
    if (c.mlp_bias) {
      add("mlp.gate_proj.bias", {ff});
      add("mlp.up_proj.bias", {ff});
      add("mlp.down_proj.bias", {h});
    }
  }
  specs.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, h}});
  return specs;
}

TensorView Checkpoint::weight(const std::string& name) const {
  auto it = weights_.find(name);
  MEGALITH_CHECK(it != weights_.end(), "no weight {}", name);
  return it->second;
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
