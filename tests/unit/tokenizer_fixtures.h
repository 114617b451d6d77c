// The tokenizer fixtures made by tests/tokenizer/make_fixtures.py with Hugging Face `tokenizers`:
// fixtures/<name>/tokenizer.json and the encodings it recorded in expected.json.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "megalith/tokenizer/tokenizer.h"

namespace megalith::testing {

inline const std::filesystem::path kTokenizerFixtures =
    std::filesystem::path(MEGALITH_SOURCE_DIR) / "tests/tokenizer/fixtures";

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file) << "cannot open " << path;
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

inline Tokenizer load_fixture_tokenizer(const std::string& name) {
  auto tokenizer = Tokenizer::load(kTokenizerFixtures / name / "tokenizer.json");
  if (!tokenizer.ok()) {
    ADD_FAILURE() << tokenizer.status().message();
    std::abort();
  }
  return std::move(tokenizer).value();
}

inline nlohmann::json load_fixture_expected(const std::string& name) {
  return nlohmann::json::parse(read_text_file(kTokenizerFixtures / name / "expected.json"));
}

}  // namespace megalith::testing
