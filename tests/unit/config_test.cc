#include "megalith/model/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "megalith/model/random_checkpoint.h"

namespace megalith {
namespace {

using json = nlohmann::json;

json llama_hub_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "attention_bias": false,
    "mlp_bias": false})");
}

TEST(Config, ParsesHubStyleLlama) {
  auto c = parse_model_config(llama_hub_config(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->arch, Architecture::kLlama);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c->rope.factor, 32.0);
  EXPECT_EQ(c->rope.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->dtype, DType::kBF16);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_EQ(c->num_parameters(), 1235814400);  // Llama-3.2-1B
}

TEST(Config, ParsesTransformers5StyleQwen3WithDefaults) {
  json j = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", 1000}, {"hidden_size", 64},
            {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
            {"dtype", "float32"}};
  auto c = parse_model_config(j, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->head_dim, 128);  // Qwen3's default, not hidden/heads
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_DOUBLE_EQ(c->rope.theta, 1e6);
  EXPECT_EQ(c->rope.type, RopeType::kDefault);
  EXPECT_EQ(c->dtype, DType::kF32);
  EXPECT_EQ(c->max_position_embeddings, 32768);
}

TEST(Config, Qwen2AlwaysHasQkvBias) {
  json j = {{"architectures", {"Qwen2ForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 64},
            {"intermediate_size", 128}, {"num_hidden_layers", 1}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"use_sliding_window", false}, {"rope_scaling", nullptr}};
  auto c = parse_model_config(j, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->attention_bias);
  EXPECT_FALSE(c->attention_out_bias);
  EXPECT_EQ(c->head_dim, 16);
}

TEST(Config, RoundTripsThroughBothStyles) {
  for (Architecture arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
    for (const std::string& preset : preset_names(arch)) {
      const ModelConfig want = *preset_config(arch, preset);
      for (ConfigStyle style : {ConfigStyle::kHub, ConfigStyle::kTransformers5}) {
        auto got = parse_model_config(model_config_to_json(want, style), "x");
        ASSERT_TRUE(got.ok()) << got.status().message();
        EXPECT_EQ(got->num_parameters(), want.num_parameters()) << preset;
        EXPECT_EQ(got->head_dim, want.head_dim);
        EXPECT_EQ(got->rope.type, want.rope.type);
        EXPECT_DOUBLE_EQ(got->rope.theta, want.rope.theta);
        EXPECT_DOUBLE_EQ(got->rope.factor, want.rope.factor);
        EXPECT_EQ(got->tie_word_embeddings, want.tie_word_embeddings);
        EXPECT_EQ(got->eos_token_ids, want.eos_token_ids);
        EXPECT_EQ(got->dtype, want.dtype);
      }
    }
  }
}

TEST(Config, RealPresetParameterCounts) {
  EXPECT_EQ(preset_config(Architecture::kQwen3, "qwen3-0.6b")->num_parameters(), 596049920);
  EXPECT_EQ(preset_config(Architecture::kQwen3, "qwen3-8b")->num_parameters(), 8190735360);
  EXPECT_EQ(preset_config(Architecture::kLlama, "llama-3.1-8b")->num_parameters(), 8030261248);
  EXPECT_EQ(preset_config(Architecture::kQwen2, "qwen2.5-0.5b")->num_parameters(), 494032768);
  EXPECT_FALSE(preset_config(Architecture::kLlama, "qwen3-8b").ok());
  EXPECT_FALSE(preset_config(Architecture::kLlama, "nope").ok());
}

// Each mutation of a valid config must be rejected with a message naming the file and the key.
TEST(Config, RejectsBadValuesWithClearErrors) {
  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* expect_in_message;
  };
  const Case cases[] = {
      {"missing hidden_size", [](json& j) { j.erase("hidden_size"); }, "hidden_size"},
      {"negative layers", [](json& j) { j["num_hidden_layers"] = -1; }, "num_hidden_layers"},
      {"string vocab", [](json& j) { j["vocab_size"] = "big"; }, "vocab_size"},
      {"float heads", [](json& j) { j["num_attention_heads"] = 2.5; }, "num_attention_heads"},
      {"kv heads not dividing", [](json& j) { j["num_key_value_heads"] = 7; }, "num_key_value_heads"},
      {"odd head_dim", [](json& j) { j["head_dim"] = 63; }, "head_dim"},
      {"unknown arch", [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; }, "GPT2LMHeadModel"},
      {"two archs", [](json& j) { j["architectures"] = {"A", "B"}; }, "architectures"},
      {"no arch", [](json& j) { j.erase("architectures"); j.erase("model_type"); }, "architectures"},
      {"yarn rope", [](json& j) { j["rope_scaling"]["rope_type"] = "yarn"; }, "yarn"},
      {"llama3 without factor", [](json& j) { j["rope_scaling"].erase("factor"); }, "factor"},
      {"gelu", [](json& j) { j["hidden_act"] = "gelu"; }, "hidden_act"},
      {"int8 dtype", [](json& j) { j["torch_dtype"] = "int8"; }, "torch_dtype"},
      {"eos outside vocab", [](json& j) { j["eos_token_id"] = 999999; }, "eos_token_id"},
      {"bad eps", [](json& j) { j["rms_norm_eps"] = 0; }, "rms_norm_eps"},
      {"quantized", [](json& j) { j["quantization_config"] = {{"bits", 4}}; }, "quantized"},
      {"sliding layers", [](json& j) { j["layer_types"] = {"sliding_attention"}; }, "sliding"},
      {"rope not object", [](json& j) { j["rope_scaling"] = 3; }, "rope_scaling"},
      {"tie not bool", [](json& j) { j["tie_word_embeddings"] = "yes"; }, "tie_word_embeddings"},
      {"partial rotary", [](json& j) { j["partial_rotary_factor"] = 0.5; }, "partial_rotary_factor"},
  };
  for (const Case& c : cases) {
    json j = llama_hub_config();
    c.mutate(j);
    auto got = parse_model_config(j, "some/dir/config.json");
    ASSERT_FALSE(got.ok()) << c.what;
    EXPECT_NE(got.status().message().find("some/dir/config.json"), std::string::npos) << c.what;
    EXPECT_NE(got.status().message().find(c.expect_in_message), std::string::npos)
        << c.what << ": " << got.status().message();
  }
  EXPECT_FALSE(parse_model_config(json::array(), "x").ok());
}

TEST(Config, LoadReportsMissingAndMalformedFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "megalith_config_test";
  std::filesystem::create_directories(dir);
  auto missing = load_model_config(dir / "nope.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.json"), std::string::npos);
  for (const char* text : {"", "{", "[1,2", "not json", "{\"vocab_size\": }"}) {
    std::ofstream(dir / "config.json") << text;
    auto bad = load_model_config(dir / "config.json");
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_NE(bad.status().message().find("config.json"), std::string::npos);
  }
  auto not_file = load_model_config(dir);
  EXPECT_FALSE(not_file.ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace megalith
