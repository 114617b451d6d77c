// Chat prompts for the two families megalith serves, written out without a Jinja engine: the
// Llama-3 header format and Qwen's ChatML. The family comes from the tokenizer's special tokens,
// since a fine-tune may speak another family than its architecture; the architecture only
// breaks a tie when a tokenizer has the tokens of both.
//
//   MEGALITH_ASSIGN_OR_RETURN(ChatTemplate chat, ChatTemplate::for_tokenizer(tok, config.arch));
//   std::vector<ChatMessage> messages = {{"system", "Be brief."}, {"user", "Hi!"}};
//   MEGALITH_ASSIGN_OR_RETURN(std::string prompt, chat.format(messages));
//   // The prompt carries its own <|begin_of_text|>: encode it without adding special tokens.
//   std::vector<int32_t> ids = tok.encode(prompt, /*add_special_tokens=*/false);
//   // ...generate until one of chat.stop_token_ids() comes out.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/model/config.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith {

enum class ChatFamily {
  // <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>...
  kLlama3,
  // <|im_start|>role\ncontent<|im_end|>\n...
  kChatML,
};

std::string_view chat_family_name(ChatFamily family);  // "llama3", "chatml"

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ...
  std::string content;
};

struct ChatOptions {
  // End with the assistant's header, so the model writes the reply.
  bool add_generation_prompt = true;
  // A system message put first when the conversation does not start with one (Qwen2.5's
  // template adds "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  // empty: none.
  std::string default_system_prompt;
};

class ChatTemplate {
 public:
  // Picks the family from the tokenizer's special tokens, or errs when it has neither set.
  static StatusOr<ChatTemplate> for_tokenizer(const Tokenizer& tokenizer,
                                              std::optional<Architecture> arch = std::nullopt);

  ChatFamily family() const { return family_; }

  // The prompt text. Roles must be non-empty words (letters, digits, '_' or '-'). The Llama-3
  // family trims whitespace around each content, as Meta's template does; ChatML keeps it.
  StatusOr<std::string> format(std::span<const ChatMessage> messages,
                               const ChatOptions& options = {}) const;

  // The ids that end an assistant turn: <|eot_id|> (and <|end_of_text|>, <|eom_id|>) for
  // Llama-3; <|im_end|> (and <|endoftext|>) for ChatML.
  const std::vector<int32_t>& stop_token_ids() const { return stop_token_ids_; }

 private:
  ChatTemplate(ChatFamily family, std::vector<int32_t> stop_token_ids)
      : family_(family), stop_token_ids_(std::move(stop_token_ids)) {}

  ChatFamily family_;
  std::vector<int32_t> stop_token_ids_;
};

}  // namespace megalith
