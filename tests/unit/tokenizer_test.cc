#include "megalith/tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tokenizer_fixtures.h"

namespace megalith {
namespace {

using nlohmann::json;
using testing::kTokenizerFixtures;
using testing::load_fixture_expected;
using testing::load_fixture_tokenizer;
using testing::read_text_file;

std::vector<int32_t> ids_of(const json& array) { return array.get<std::vector<int32_t>>(); }

// Printable form of a test string for failure messages.
std::string quoted(const std::string& text) { return json(text).dump(); }

bool is_valid_utf8(const std::string& text) {
  try {
    json(text).dump(-1, ' ', false, json::error_handler_t::strict);
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

// Every fixture tokenizer (Llama-3, Qwen2 and GPT-2 styles) against what Hugging Face recorded.
class TokenizerFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { expected_ = load_fixture_expected(GetParam()); }
  json expected_;
};

TEST_P(TokenizerFixture, EncodesLikeHuggingFace) {
  const Tokenizer tok = load_fixture_tokenizer(GetParam());
  ASSERT_GT(expected_["encode"].size(), 100u);
  for (const json& c : expected_["encode"]) {
    const auto text = c["text"].get<std::string>();
    EXPECT_EQ(tok.encode(text, false), ids_of(c["ids"])) << quoted(text);
    EXPECT_EQ(tok.encode(text, true), ids_of(c["ids_with_special"])) << quoted(text);
  }
}

TEST_P(TokenizerFixture, PreTokenizesLikeHuggingFace) {
  const Tokenizer tok = load_fixture_tokenizer(GetParam());
  for (const json& c : expected_["encode"]) {
    const auto text = c["text"].get<std::string>();
    EXPECT_EQ(tok.pre_tokenize(text), c["pre_tokens"].get<std::vector<std::string>>())
        << quoted(text);
  }
}

TEST_P(TokenizerFixture, DecodesLikeHuggingFace) {
  const Tokenizer tok = load_fixture_tokenizer(GetParam());
  for (const json& c : expected_["encode"]) {
    const auto text = c["text"].get<std::string>();
    EXPECT_EQ(tok.decode(ids_of(c["ids"]), false), c["decoded"].get<std::string>()) << quoted(text);
    EXPECT_EQ(tok.decode(ids_of(c["ids_with_special"]), true),
              c["decoded_skip_special"].get<std::string>())
        << quoted(text);
  }
  // Id sequences no encoder makes: lone bytes of a UTF-8 character, specials, random ids.
  ASSERT_GT(expected_["decode"].size(), 50u);
  for (const json& c : expected_["decode"]) {
    const std::vector<int32_t> ids = ids_of(c["ids"]);
    EXPECT_EQ(tok.decode(ids, false), c["text"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(tok.decode(ids, true), c["text_skip_special"].get<std::string>()) << c["ids"].dump();
  }
}

TEST_P(TokenizerFixture, RoundTripsText) {
  const Tokenizer tok = load_fixture_tokenizer(GetParam());
  int exact = 0;
  for (const json& c : expected_["encode"]) {
    const auto text = c["text"].get<std::string>();
    const std::string round_trip = tok.decode(tok.encode(text, false), false);
    // Llama-3 style gives back the text itself. Qwen normalizes to NFC and GPT-2 style adds a
    // prefix space; Hugging Face's decode shows what the round trip gives there.
    if (GetParam() == "llama3") {
      EXPECT_EQ(round_trip, text) << quoted(text);
    }
    EXPECT_EQ(round_trip, c["decoded"].get<std::string>()) << quoted(text);
    EXPECT_EQ(tok.decode(tok.encode(text, true), true),
              c["decoded_skip_special"].get<std::string>())
        << quoted(text);
    exact += round_trip == text;
  }
  EXPECT_GT(exact, GetParam() == "gpt2" ? 0 : 100);
}

TEST_P(TokenizerFixture, StreamDecodingEqualsFullDecodingAtEveryStep) {
  const Tokenizer tok = load_fixture_tokenizer(GetParam());
  std::vector<std::vector<int32_t>> sequences;
  for (const json& c : expected_["encode"]) sequences.push_back(ids_of(c["ids_with_special"]));
  for (const json& c : expected_["decode"]) sequences.push_back(ids_of(c["ids"]));
  for (bool skip : {false, true}) {
    for (const std::vector<int32_t>& ids : sequences) {
      const std::string full = tok.decode(ids, skip);
      StreamDecoder stream(tok, skip);
      std::string streamed;
      for (size_t k = 0; k < ids.size(); ++k) {
        const std::string piece = stream.add(ids[k]);
        ASSERT_TRUE(is_valid_utf8(piece)) << json(ids).dump() << " at " << k;
        streamed += piece;
        // What came out so far, plus what a flush would add, is the decoding of the prefix.
        StreamDecoder flushed = stream;
        const std::vector<int32_t> prefix(ids.begin(), ids.begin() + k + 1);
        ASSERT_EQ(streamed + flushed.flush(), tok.decode(prefix, skip)) << json(ids).dump();
      }
      streamed += stream.flush();
      ASSERT_EQ(streamed, full) << json(ids).dump();
      EXPECT_EQ(stream.flush(), "");
    }
  }
}

TEST_P(TokenizerFixture, LooksUpTokensAndIds) {
  const Tokenizer tok = load_fixture_tokenizer(GetParam());
  EXPECT_EQ(tok.vocab_size(), expected_["vocab_size"].get<int32_t>());
  for (const auto& [token, id] : expected_["added_tokens"].items()) {
    EXPECT_EQ(tok.token_to_id(token), id.get<int32_t>()) << token;
    EXPECT_EQ(tok.id_to_token(id.get<int32_t>()), token);
    auto required = tok.required_token_id(token);
    ASSERT_TRUE(required.ok());
    EXPECT_EQ(*required, id.get<int32_t>());
  }
  for (const auto& [id, token] : expected_["id_to_token"].items()) {
    EXPECT_EQ(tok.id_to_token(std::stoi(id)), token.get<std::string>()) << id;
    EXPECT_EQ(tok.token_to_id(token.get<std::string>()), std::stoi(id));
  }
  EXPECT_EQ(tok.id_to_token(-1), std::nullopt);
  EXPECT_EQ(tok.id_to_token(tok.vocab_size()), std::nullopt);
  EXPECT_EQ(tok.token_to_id("no such token"), std::nullopt);
  auto missing = tok.required_token_id("<|no_such_token|>");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("<|no_such_token|>"), std::string::npos);
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>"}) {
    if (const auto id = tok.token_to_id(name)) {
      EXPECT_TRUE(tok.is_special(*id)) << name;
    }
  }
  EXPECT_FALSE(tok.is_special(0));
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerFixture, ::testing::Values("llama3", "qwen2", "gpt2"),
                         [](const auto& info) { return info.param; });

TEST(Tokenizer, Llama3PrependsBeginOfTextAndQwenAddsNothing) {
  const Tokenizer llama = load_fixture_tokenizer("llama3");
  const Tokenizer qwen = load_fixture_tokenizer("qwen2");
  const int32_t bos = *llama.token_to_id("<|begin_of_text|>");
  EXPECT_EQ(llama.encode("", true), std::vector<int32_t>{bos});
  EXPECT_EQ(llama.encode("hi", true).front(), bos);
  EXPECT_EQ(qwen.encode("hi", true), qwen.encode("hi", false));
  EXPECT_TRUE(qwen.encode("", true).empty());
}

TEST(Tokenizer, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  const Tokenizer tok = load_fixture_tokenizer("llama3");
  // make_fixtures.py added these words to the vocabulary without merges that build them.
  for (const char* word : {" quokka", " xylophone", " wombat", " fjord", " sphinx"}) {
    const std::vector<int32_t> ids = tok.encode(word, false);
    ASSERT_EQ(ids.size(), 1u) << word;
    EXPECT_EQ(tok.decode(ids, false), word);
  }
}

TEST(Tokenizer, IllFormedUtf8IsReadAsReplacementCharacters) {
  const Tokenizer tok = load_fixture_tokenizer("llama3");
  EXPECT_EQ(tok.encode("a\xff b\xe2\x82", false), tok.encode("a\uFFFD b\uFFFD", false));
  EXPECT_EQ(tok.encode("\xc0\xaf", false), tok.encode("\uFFFD\uFFFD", false));
  EXPECT_EQ(tok.decode(tok.encode("\xed\xa0\x80x", false), false), "\uFFFD\uFFFD\uFFFDx");
}

TEST(Tokenizer, StreamDecoderHoldsBackAnUnfinishedCharacter) {
  const Tokenizer tok = load_fixture_tokenizer("qwen2");
  // U+1F600 is F0 9F 98 80: the byte-level symbols ð Ł ĺ Ģ, one token each.
  std::vector<int32_t> bytes;
  for (const char* symbol : {"ð", "Ł", "ĺ", "Ģ"}) bytes.push_back(*tok.token_to_id(symbol));
  StreamDecoder stream(tok, false);
  EXPECT_EQ(stream.add(*tok.token_to_id("a")), "a");
  EXPECT_EQ(stream.add(bytes[0]), "");
  EXPECT_EQ(stream.add(bytes[1]), "");
  EXPECT_EQ(stream.add(bytes[2]), "");
  EXPECT_EQ(stream.add(bytes[3]), "\U0001F600");
  // An unfinished character at the end comes out as one U+FFFD; a broken one at once.
  EXPECT_EQ(stream.add(bytes[0]), "");
  EXPECT_EQ(stream.add(bytes[1]), "");
  EXPECT_EQ(stream.flush(), "\uFFFD");
  EXPECT_EQ(stream.add(bytes[0]), "");
  EXPECT_EQ(stream.add(*tok.token_to_id("a")), "\uFFFDa");
  // Special tokens come out whole, or not at all when skipped.
  const int32_t im_end = *tok.token_to_id("<|im_end|>");
  EXPECT_EQ(stream.add(im_end), "<|im_end|>");
  StreamDecoder skipping(tok, true);
  EXPECT_EQ(skipping.add(im_end), "");
  EXPECT_EQ(skipping.add(*tok.token_to_id("<think>")), "<think>");
  EXPECT_EQ(skipping.add(-5), "");  // no such id: nothing, as in decode
}

TEST(Tokenizer, LongInputsEncodeAndRoundTrip) {
  const Tokenizer tok = load_fixture_tokenizer("llama3");
  for (const std::string& text : {std::string(200000, ' '), std::string(200000, 'a'),
                                  std::string(100000, '7'), std::string(50000, '\n') + "x", [] {
                                    std::string mixed;
                                    for (int i = 0; i < 20000; ++i)
                                      mixed += "word" + std::to_string(i) + " \t\r\n";
                                    return mixed;
                                  }()}) {
    const std::vector<int32_t> ids = tok.encode(text, false);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tok.decode(ids, false), text);
  }
}

TEST(Tokenizer, EncodesConcurrently) {
  const Tokenizer tok = load_fixture_tokenizer("qwen2");
  const json expected = load_fixture_expected("qwen2");
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (const json& c : expected["encode"]) {
          mismatches[t] +=
              tok.encode(c["text"].get<std::string>(), true) != ids_of(c["ids_with_special"]);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// A fixture tokenizer.json changed by `edit`, loaded under the name "edited.json".
StatusOr<Tokenizer> load_edited(const std::function<void(json&)>& edit) {
  json j = json::parse(read_text_file(kTokenizerFixtures / "llama3" / "tokenizer.json"));
  edit(j);
  return Tokenizer::from_json(j.dump(), "edited.json");
}

void expect_error(const StatusOr<Tokenizer>& tok, StatusCode code,
                  std::initializer_list<std::string_view> needles) {
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), code) << tok.status().message();
  for (std::string_view needle : needles) {
    EXPECT_NE(tok.status().message().find(needle), std::string::npos)
        << "\"" << needle << "\" not in: " << tok.status().message();
  }
}

TEST(Tokenizer, RejectsMissingAndTruncatedFiles) {
  expect_error(Tokenizer::load("/nonexistent/tokenizer.json"), StatusCode::kNotFound,
               {"/nonexistent/tokenizer.json", "cannot open"});
  expect_error(Tokenizer::load(kTokenizerFixtures), StatusCode::kInvalidArgument,
               {"is a directory"});
  const std::string text = read_text_file(kTokenizerFixtures / "qwen2" / "tokenizer.json");
  for (size_t cut : {size_t{0}, size_t{1}, text.size() / 3, text.size() / 2, text.size() - 1}) {
    expect_error(Tokenizer::from_json(text.substr(0, cut), "cut.json"),
                 StatusCode::kInvalidArgument, {"cut.json", "not valid JSON"});
  }
  // A weights file passed by mistake is refused before it is read (sparse, so nothing is written).
  const auto huge = std::filesystem::temp_directory_path() /
                    ("megalith_huge_tokenizer_" + std::to_string(::getpid()) + ".json");
  { std::ofstream{huge}; }
  std::filesystem::resize_file(huge, (std::uintmax_t{1} << 30) + 1);
  expect_error(Tokenizer::load(huge), StatusCode::kInvalidArgument, {"too large"});
  std::filesystem::remove(huge);
  expect_error(Tokenizer::from_json("[1, 2]", "list.json"), StatusCode::kInvalidArgument,
               {"list.json", "top level must be an object"});
}

TEST(Tokenizer, RejectsFieldsOfTheWrongType) {
  using E = std::function<void(json&)>;
  const std::vector<std::tuple<E, std::vector<std::string_view>>> cases = {
      {[](json& j) { j.erase("model"); }, {"model is missing"}},
      {[](json& j) { j["model"] = "BPE"; }, {"model must be an object"}},
      {[](json& j) { j["model"]["vocab"] = json::array(); }, {"model.vocab must be an object"}},
      {[](json& j) { j["model"]["vocab"]["Ġthe"] = "7"; }, {"model.vocab.Ġthe", "token id"}},
      {[](json& j) { j["model"]["vocab"]["x"] = -1; }, {"model.vocab.x", "token id"}},
      {[](json& j) { j["model"]["vocab"]["x"] = 1e12; }, {"model.vocab.x", "token id"}},
      {[](json& j) { j["model"]["merges"] = json::object(); }, {"model.merges must be an array"}},
      {[](json& j) { j["model"]["merges"][3] = 42; }, {"model.merges[3]"}},
      {[](json& j) { j["model"]["merges"][4] = "a b c"; }, {"model.merges[4]", "one space"}},
      {[](json& j) { j["model"]["merges"][5] = "Ġ zzzq"; }, {"model.merges[5]", "zzzq"}},
      {[](json& j) { j["model"]["ignore_merges"] = "yes"; },
       {"model.ignore_merges", "true or false"}},
      {[](json& j) { j["model"]["unk_token"] = "<unk>"; }, {"model.unk_token", "<unk>"}},
      {[](json& j) { j["added_tokens"] = json::object(); }, {"added_tokens must be an array"}},
      {[](json& j) { j["added_tokens"][1]["id"] = "1506"; }, {"added_tokens[1].id", "token id"}},
      {[](json& j) { j["added_tokens"][2].erase("content"); },
       {"added_tokens[2].content is missing"}},
      {[](json& j) { j["added_tokens"][2]["id"] = j["added_tokens"][1]["id"]; },
       {"added_tokens[2]", "used twice"}},
      {[](json& j) { j["added_tokens"][0]["special"] = 1; }, {"added_tokens[0].special"}},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"] = 5; },
       {"pre_tokenizer.pretokenizers must be an array"}},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = json::object(); },
       {"pre_tokenizer.pretokenizers[0].pattern", "Regex"}},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(\\p{L}+"; },
       {"pre_tokenizer.pretokenizers[0].pattern", "does not compile"}},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"][1] = "ByteLevel"; },
       {"pre_tokenizer.pretokenizers[1] must be an object"}},
      {[](json& j) {
         j["post_processor"]["processors"][1]["single"][0]["SpecialToken"]["id"] = "?";
       },
       {"post_processor.processors[1].single[0]", "\"?\""}},
      {[](json& j) { j["post_processor"]["processors"][1]["single"] = json::array(); },
       {"post_processor.processors[1].single has no Sequence"}},
      {[](json& j) { j["normalizer"] = json::array(); }, {"normalizer must be an object"}},
  };
  for (const auto& [edit, needles] : cases) {
    auto tok = load_edited(edit);
    ASSERT_FALSE(tok.ok()) << needles.front();
    EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument) << tok.status().message();
    EXPECT_EQ(tok.status().message().rfind("edited.json: ", 0), 0u) << tok.status().message();
    for (std::string_view needle : needles) {
      EXPECT_NE(tok.status().message().find(needle), std::string::npos)
          << "\"" << needle << "\" not in: " << tok.status().message();
    }
  }
}

TEST(Tokenizer, RefusesUnsupportedComponents) {
  using E = std::function<void(json&)>;
  const std::vector<std::tuple<E, std::string_view>> cases = {
      {[](json& j) { j["model"]["type"] = "Unigram"; }, "model.type \"Unigram\" is not supported"},
      {[](json& j) { j["model"]["type"] = "WordPiece"; }, "\"WordPiece\""},
      {[](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout"},
      {[](json& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback"},
      {[](json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
       "model.continuing_subword_prefix"},
      {[](json& j) {
         j["normalizer"] = {{"type", "Lowercase"}};
       },
       "normalizer \"Lowercase\""},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}};
       },
       "\"Metaspace\""},
      {[](json& j) { j["pre_tokenizer"] = nullptr; }, "pre_tokenizer is null"},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"].erase(1); }, "no ByteLevel step"},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; },
       "behavior \"Removed\""},
      {[](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["invert"] = true; }, "invert"},
      {[](json& j) {
         j["post_processor"] = {{"type", "RobertaProcessing"}};
       },
       "\"RobertaProcessing\""},
      {[](json& j) {
         j["decoder"] = {{"type", "Metaspace"}};
       },
       "decoder \"Metaspace\""},
      {[](json& j) { j["decoder"] = nullptr; }, "decoder is null"},
  };
  for (const auto& [edit, needle] : cases) {
    auto tok = load_edited(edit);
    expect_error(tok, StatusCode::kUnimplemented, {"edited.json: ", needle});
  }
}

TEST(Tokenizer, ReadsOptionalFieldsAndAlternativeForms) {
  // No "type" in the model (older files), merges as pairs, a literal Split pattern, null
  // post-processor and added tokens: all valid, and the literal split changes the words.
  auto tok = load_edited([](json& j) {
    j["model"].erase("type");
    for (json& merge : j["model"]["merges"]) {
      const auto text = merge.get<std::string>();
      const size_t space = text.find(' ');
      merge = json::array({text.substr(0, space), text.substr(space + 1)});
    }
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"String", ","}};
    j["post_processor"] = nullptr;
    j["added_tokens"] = nullptr;
  });
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->pre_tokenize("a b,c"), (std::vector<std::string>{"aĠb", ",", "c"}));
  EXPECT_EQ(tok->decode(tok->encode("a b,c <|eot_id|>", true), false), "a b,c <|eot_id|>");
  EXPECT_EQ(tok->token_to_id("<|eot_id|>"), std::nullopt);
}

}  // namespace
}  // namespace megalith
