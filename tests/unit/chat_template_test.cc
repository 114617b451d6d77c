#include "megalith/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer_fixtures.h"

namespace megalith {
namespace {

using nlohmann::json;
using testing::kTokenizerFixtures;
using testing::load_fixture_expected;
using testing::load_fixture_tokenizer;
using testing::read_text_file;

const std::vector<ChatMessage> kConversation = {{"system", "You are terse."},
                                                {"user", "Hi! What's 12345 + 678?"}};

// The ids Hugging Face `tokenizers` gave for `prompt` (make_fixtures.py encodes the prompts
// these tests expect), so a formatted prompt is pinned down to the ids, not only the text.
std::vector<int32_t> recorded_ids(const std::string& fixture, const std::string& prompt) {
  const json expected = load_fixture_expected(fixture);
  for (const json& c : expected["encode"]) {
    if (c["text"] == prompt) return c["ids"].get<std::vector<int32_t>>();
  }
  ADD_FAILURE() << "no recorded encoding of " << json(prompt).dump();
  return {};
}

TEST(ChatTemplate, FormatsLlama3Conversations) {
  const Tokenizer tok = load_fixture_tokenizer("llama3");
  auto chat = ChatTemplate::for_tokenizer(tok);
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  EXPECT_EQ(chat->family(), ChatFamily::kLlama3);
  auto prompt = chat->format(kConversation);
  ASSERT_TRUE(prompt.ok()) << prompt.status().message();
  const std::string expected =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHi! What's 12345 + 678?<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\n";
  EXPECT_EQ(*prompt, expected);
  const std::vector<int32_t> ids = tok.encode(*prompt, false);
  EXPECT_EQ(ids, recorded_ids("llama3", expected));
  EXPECT_EQ(ids.front(), tok.token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tok.token_to_id("<|eot_id|>")), 2);
  EXPECT_EQ(chat->stop_token_ids(), (std::vector<int32_t>{*tok.token_to_id("<|eot_id|>"),
                                                          *tok.token_to_id("<|end_of_text|>")}));
}

TEST(ChatTemplate, FormatsChatMLConversations) {
  const Tokenizer tok = load_fixture_tokenizer("qwen2");
  auto chat = ChatTemplate::for_tokenizer(tok, Architecture::kQwen3);
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  EXPECT_EQ(chat->family(), ChatFamily::kChatML);
  EXPECT_EQ(chat_family_name(chat->family()), "chatml");
  auto prompt = chat->format(kConversation);
  ASSERT_TRUE(prompt.ok()) << prompt.status().message();
  const std::string expected =
      "<|im_start|>system\nYou are terse.<|im_end|>\n"
      "<|im_start|>user\nHi! What's 12345 + 678?<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(*prompt, expected);
  EXPECT_EQ(tok.encode(*prompt, false), recorded_ids("qwen2", expected));
  EXPECT_EQ(chat->stop_token_ids(), (std::vector<int32_t>{*tok.token_to_id("<|im_end|>"),
                                                          *tok.token_to_id("<|endoftext|>")}));
}

TEST(ChatTemplate, ContinuesConversationsAndWritesWithoutGenerationPrompt) {
  const Tokenizer qwen = load_fixture_tokenizer("qwen2");
  const Tokenizer llama = load_fixture_tokenizer("llama3");
  const std::vector<ChatMessage> turns = {
      {"user", "  2+2?\n"}, {"assistant", "4"}, {"tool", "{\"ok\": true}"}};
  ChatOptions options;
  options.add_generation_prompt = false;
  auto chatml = ChatTemplate::for_tokenizer(qwen)->format(turns, options);
  ASSERT_TRUE(chatml.ok());
  // ChatML keeps content as it is; Llama-3 trims it, as Meta's template does.
  EXPECT_EQ(*chatml,
            "<|im_start|>user\n  2+2?\n<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
            "<|im_start|>tool\n{\"ok\": true}<|im_end|>\n");
  auto llama3 = ChatTemplate::for_tokenizer(llama)->format(turns, options);
  ASSERT_TRUE(llama3.ok());
  EXPECT_EQ(*llama3,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
            "<|start_header_id|>tool<|end_header_id|>\n\n{\"ok\": true}<|eot_id|>");
  // No messages at all: just the opening and the assistant header.
  EXPECT_EQ(*ChatTemplate::for_tokenizer(qwen)->format({}), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, AddsTheDefaultSystemPromptOnlyWhenThereIsNone) {
  const Tokenizer tok = load_fixture_tokenizer("qwen2");
  auto chat = ChatTemplate::for_tokenizer(tok);
  ASSERT_TRUE(chat.ok());
  ChatOptions options;
  options.default_system_prompt = "You are a helpful assistant.";
  const std::vector<ChatMessage> user_only = {{"user", "Hi"}};
  EXPECT_EQ(*chat->format(user_only, options),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(*chat->format(kConversation, options), *chat->format(kConversation));
}

TEST(ChatTemplate, RejectsBadRoles) {
  auto chat = ChatTemplate::for_tokenizer(load_fixture_tokenizer("qwen2"));
  ASSERT_TRUE(chat.ok());
  for (const std::string role : {"", "user\n", "<|im_start|>", "as sistant"}) {
    const std::vector<ChatMessage> messages = {{"user", "fine"}, {role, "x"}};
    auto prompt = chat->format(messages);
    ASSERT_FALSE(prompt.ok()) << json(role).dump();
    EXPECT_EQ(prompt.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(prompt.status().message().find("chat message 1"), std::string::npos)
        << prompt.status().message();
  }
}

TEST(ChatTemplate, FailsClearlyWhenNoFamilyFits) {
  auto chat = ChatTemplate::for_tokenizer(load_fixture_tokenizer("gpt2"), Architecture::kLlama);
  ASSERT_FALSE(chat.ok());
  EXPECT_EQ(chat.status().code(), StatusCode::kNotFound);
  for (const char* needle : {"no chat template", "<|start_header_id|>", "<|im_start|>"}) {
    EXPECT_NE(chat.status().message().find(needle), std::string::npos) << chat.status().message();
  }
}

TEST(ChatTemplate, TheArchitectureBreaksATieOnly) {
  // A Llama-3 tokenizer that also has the ChatML tokens, as some fine-tunes do.
  json j = json::parse(read_text_file(kTokenizerFixtures / "llama3" / "tokenizer.json"));
  int32_t next_id = 0;
  for (const json& token : j["added_tokens"])
    next_id = std::max(next_id, token["id"].get<int32_t>() + 1);
  for (const char* content : {"<|im_start|>", "<|im_end|>"}) {
    j["added_tokens"].push_back({{"id", next_id++},
                                 {"content", content},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  }
  auto both = Tokenizer::from_json(j.dump(), "both.json");
  ASSERT_TRUE(both.ok()) << both.status().message();
  auto undecided = ChatTemplate::for_tokenizer(*both);
  ASSERT_FALSE(undecided.ok());
  EXPECT_NE(undecided.status().message().find("architecture"), std::string::npos);
  EXPECT_EQ(ChatTemplate::for_tokenizer(*both, Architecture::kLlama)->family(),
            ChatFamily::kLlama3);
  EXPECT_EQ(ChatTemplate::for_tokenizer(*both, Architecture::kQwen2)->family(),
            ChatFamily::kChatML);
  // With only one family's tokens, the tokens win over the architecture.
  const Tokenizer qwen = load_fixture_tokenizer("qwen2");
  EXPECT_EQ(ChatTemplate::for_tokenizer(qwen, Architecture::kLlama)->family(), ChatFamily::kChatML);
}

}  // namespace
}  // namespace megalith
