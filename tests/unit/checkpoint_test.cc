// Loading checkpoints: random checkpoints round-trip, and every way a checkpoint can be wrong
// is an error naming the file and the problem.
#include "megalith/model/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "megalith/engine/generation.h"
#include "megalith/model/random_checkpoint.h"
#include "megalith/model/reference_model.h"

namespace megalith {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("megalith_ckpt_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path make(Architecture arch, uint64_t seed, DType dtype = DType::kBF16,
                ConfigStyle style = ConfigStyle::kHub, uint64_t shard = uint64_t(1) << 30,
                const std::string& name = "model") {
    ModelConfig cfg = *preset_config(arch, "tiny");
    cfg.dtype = dtype;
    const fs::path dir = root_ / name;
    Status s = write_random_checkpoint(cfg, {seed, style, shard}, dir);
    EXPECT_TRUE(s.ok()) << s.message();
    return dir;
  }

  // Loads `dir` expecting an error that mentions every string in `needles`.
  void expect_error(const fs::path& dir, std::initializer_list<std::string> needles) {
    auto ckpt = load_checkpoint(dir);
    ASSERT_FALSE(ckpt.ok()) << "loaded " << dir;
    for (const std::string& n : needles) {
      EXPECT_NE(ckpt.status().message().find(n), std::string::npos)
          << "'" << n << "' not in: " << ckpt.status().message();
    }
  }

  fs::path root_;
};

std::vector<float> logits_of(const fs::path& dir, const std::vector<int32_t>& ids) {
  auto ckpt = load_checkpoint(dir);
  MEGALITH_CHECK(ckpt.ok(), "{}", ckpt.status().message());
  ReferenceModel model(**ckpt);
  return *model.forward(ids);
}

TEST_F(CheckpointTest, RandomCheckpointIsReproducibleAndLoads) {
  for (Architecture arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
    const fs::path a = make(arch, 5, DType::kBF16, ConfigStyle::kHub, 1 << 30, "a");
    const fs::path b = make(arch, 5, DType::kBF16, ConfigStyle::kTransformers5, 40000, "b");
    const fs::path c = make(arch, 6, DType::kBF16, ConfigStyle::kHub, 1 << 30, "c");
    EXPECT_TRUE(fs::exists(b / "model.safetensors.index.json"));  // sharded
    const std::vector<int32_t> ids = {1, 5, 9, 300};
    EXPECT_EQ(logits_of(a, ids), logits_of(b, ids));  // same seed: same weights, either layout
    EXPECT_NE(logits_of(a, ids), logits_of(c, ids));
    fs::remove_all(root_);
  }
}

// Reading the weights of a sharded checkpoint reports every byte once, in growing amounts.
TEST_F(CheckpointTest, ReadingTheWeightsReportsEveryByte) {
  const fs::path dir = make(Architecture::kQwen3, 2, DType::kBF16, ConfigStyle::kHub, 40000);
  auto ckpt = load_checkpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  uint64_t expected = 0;
  for (const WeightSpec& spec : model_weight_specs((*ckpt)->config())) {
    expected += (*ckpt)->weight(spec.name).nbytes();
  }
  std::vector<std::pair<uint64_t, uint64_t>> reports;
  (*ckpt)->read_weights([&](uint64_t done, uint64_t total) { reports.emplace_back(done, total); });
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back(), std::make_pair(expected, expected));
  for (size_t i = 1; i < reports.size(); ++i) EXPECT_GT(reports[i].first, reports[i - 1].first);
}

TEST_F(CheckpointTest, DecodingOneTokenAtATimeEqualsPrefill) {
  for (Architecture arch : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
    for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
      const fs::path dir = make(arch, 11, dtype);
      auto ckpt = load_checkpoint(dir);
      ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
      const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
      ReferenceModel all(**ckpt), stepwise(**ckpt);
      const std::vector<float> full = *all.forward(ids);
      const size_t vocab = size_t((*ckpt)->config().vocab_size);
      for (size_t t = 0; t < ids.size(); ++t) {
        const std::vector<float> step = *stepwise.forward(std::span(&ids[t], 1));
        for (size_t i = 0; i < vocab; ++i) ASSERT_NEAR(step[i], full[t * vocab + i], 1e-4);
      }
      EXPECT_EQ(stepwise.position(), int64_t(ids.size()));
      fs::remove_all(root_);
    }
  }
}

TEST_F(CheckpointTest, RejectsOutOfVocabularyTokens) {
  auto ckpt = load_checkpoint(make(Architecture::kQwen3, 1));
  ASSERT_TRUE(ckpt.ok());
  ReferenceModel model(**ckpt);
  const std::vector<int32_t> bad = {1, 512};
  auto r = model.forward(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("512"), std::string::npos);
}

TEST_F(CheckpointTest, MissingPiecesAreNamed) {
  expect_error(root_ / "nowhere", {"nowhere", "not a directory"});
  const fs::path dir = make(Architecture::kLlama, 1);
  fs::remove(dir / "config.json");
  expect_error(dir, {"config.json"});
  const fs::path dir2 = make(Architecture::kLlama, 1, DType::kBF16, ConfigStyle::kHub, 1 << 30, "m2");
  fs::remove(dir2 / "model.safetensors");
  expect_error(dir2, {"model.safetensors"});
}

// Rewrites the checkpoint's tensors through `edit`, which may rename, drop, add or reshape them.
void rewrite_tensors(const fs::path& dir,
                     const std::function<void(std::vector<TensorToWrite>&)>& edit) {
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<char>> bytes;
  {
    auto file = SafetensorsFile::open(dir / "model.safetensors");
    MEGALITH_CHECK(file.ok(), "{}", file.status().message());
    for (const auto& [name, e] : (*file)->entries()) {
      const char* p = static_cast<const char*>(e.data);
      auto data = std::make_shared<std::vector<char>>(p, p + (e.end - e.begin));
      const size_t elem = dtype_size(*e.dtype);
      tensors.push_back({name, *e.dtype, e.shape, [data, elem](int64_t first, int64_t n, void* out) {
                           std::memcpy(out, data->data() + size_t(first) * elem, size_t(n) * elem);
                         }});
    }
  }
  edit(tensors);
  Status s = write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  MEGALITH_CHECK(s.ok(), "{}", s.message());
}

TEST_F(CheckpointTest, WrongTensorsAreNamed) {
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  struct Case {
    const char* what;
    std::function<void(std::vector<TensorToWrite>&)> edit;
    std::vector<std::string> needles;
  };
  const auto find = [](std::vector<TensorToWrite>& ts, const std::string& name) -> TensorToWrite& {
    for (auto& t : ts)
      if (t.name == name) return t;
    MEGALITH_CHECK(false, "{}", name);
    return ts[0];
  };
  const Case cases[] = {
      {"missing", [&](auto& ts) { std::erase_if(ts, [&](auto& t) { return t.name == q; }); },
       {q, "missing"}},
      {"unexpected", [&](auto& ts) {
         TensorToWrite extra = find(ts, "model.norm.weight");
         extra.name = "model.extra.weight";
         ts.push_back(extra);
       }, {"model.extra.weight", "unexpected"}},
      {"wrong shape", [&](auto& ts) {
         auto& t = find(ts, q);
         t.shape = {t.shape[1], t.shape[0]};
       }, {q, "shape"}},
      {"wrong dtype", [&](auto& ts) {
         // Same bytes reinterpreted: F32 with half the elements.
         auto& t = find(ts, "model.norm.weight");
         t.dtype = DType::kF32;
         t.shape = {t.shape[0] / 2};
       }, {"model.norm.weight"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const fs::path dir = make(Architecture::kQwen3, 1);
    rewrite_tensors(dir, c.edit);
    auto ckpt = load_checkpoint(dir);
    ASSERT_FALSE(ckpt.ok());
    EXPECT_NE(ckpt.status().message().find("model.safetensors"), std::string::npos)
        << ckpt.status().message();
    for (const std::string& n : c.needles) {
      EXPECT_NE(ckpt.status().message().find(n), std::string::npos) << ckpt.status().message();
    }
    fs::remove_all(root_);
  }
}

TEST_F(CheckpointTest, ConfigThatDisagreesWithWeightsIsCaught) {
  const fs::path dir = make(Architecture::kLlama, 1);
  std::ifstream in(dir / "config.json");
  json cfg = json::parse(in);
  cfg["intermediate_size"] = 256;
  std::ofstream(dir / "config.json") << cfg.dump();
  expect_error(dir, {"mlp.gate_proj.weight", "shape"});
}

TEST_F(CheckpointTest, IntegerTensorIsNamed) {
  const fs::path dir = make(Architecture::kQwen2, 1);
  // Hand-written file: the norm weight stored as I64.
  rewrite_tensors(dir, [](std::vector<TensorToWrite>& ts) {
    std::erase_if(ts, [](auto& t) { return t.name == "model.norm.weight"; });
  });
  auto file = SafetensorsFile::open(dir / "model.safetensors");
  ASSERT_TRUE(file.ok());
  // Append an I64 tensor by rebuilding the header by hand.
  json header;
  std::vector<char> data;
  for (const auto& [name, e] : (*file)->entries()) {
    header[name] = {{"dtype", e.dtype_name}, {"shape", e.shape},
                    {"data_offsets", {data.size(), data.size() + (e.end - e.begin)}}};
    const char* p = static_cast<const char*>(e.data);
    data.insert(data.end(), p, p + (e.end - e.begin));
  }
  header["model.norm.weight"] = {{"dtype", "I64"}, {"shape", {128}},
                                 {"data_offsets", {data.size(), data.size() + 128 * 8}}};
  data.resize(data.size() + 128 * 8);
  file->reset();
  const std::string h = header.dump();
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << h;
  out.write(data.data(), std::streamsize(data.size()));
  out.close();
  expect_error(dir, {"model.norm.weight", "I64"});
}

}  // namespace
}  // namespace megalith
