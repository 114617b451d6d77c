#include "megalith/tokenizer/chat_template.h"

#include <initializer_list>

#include "utf8.h"

namespace megalith {
namespace {

constexpr std::string_view kLlama3Bos = "<|begin_of_text|>";
constexpr std::string_view kLlama3HeaderStart = "<|start_header_id|>";
constexpr std::string_view kLlama3HeaderEnd = "<|end_header_id|>";
constexpr std::string_view kLlama3TurnEnd = "<|eot_id|>";
constexpr std::string_view kChatMLStart = "<|im_start|>";
constexpr std::string_view kChatMLEnd = "<|im_end|>";

bool has_all(const Tokenizer& tokenizer, std::initializer_list<std::string_view> tokens) {
  for (std::string_view token : tokens) {
    if (!tokenizer.token_to_id(token)) return false;
  }
  return true;
}

// The ids of those of `tokens` the tokenizer has, in order.
std::vector<int32_t> ids_present(const Tokenizer& tokenizer,
                                 std::initializer_list<std::string_view> tokens) {
  std::vector<int32_t> ids;
  for (std::string_view token : tokens) {
    if (const auto id = tokenizer.token_to_id(token)) ids.push_back(*id);
  }
  return ids;
}

bool is_role_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

Status check_role(const ChatMessage& message, size_t index) {
  if (message.role.empty()) return invalid_argument("chat message {}: the role is empty", index);
  for (char c : message.role) {
    if (!is_role_character(c)) {
      return invalid_argument(
          "chat message {}: role \"{}\" must be letters, digits, '_' or '-' only", index,
          message.role);
    }
  }
  return Status::ok_status();
}

void append_llama3_turn(std::string_view role, std::string_view content, std::string& out) {
  out += kLlama3HeaderStart;
  out += role;
  out += kLlama3HeaderEnd;
  out += "\n\n";
  out += tokenizer_internal::trim_white_space(content);
  out += kLlama3TurnEnd;
}

void append_chatml_turn(std::string_view role, std::string_view content, std::string& out) {
  out += kChatMLStart;
  out += role;
  out += '\n';
  out += content;
  out += kChatMLEnd;
  out += '\n';
}

}  // namespace

std::string_view chat_family_name(ChatFamily family) {
  switch (family) {
    case ChatFamily::kLlama3:
      return "llama3";
    case ChatFamily::kChatML:
      return "chatml";
  }
  return "?";
}

StatusOr<ChatTemplate> ChatTemplate::for_tokenizer(const Tokenizer& tokenizer,
                                                   std::optional<Architecture> arch) {
  const bool llama3 =
      has_all(tokenizer, {kLlama3Bos, kLlama3HeaderStart, kLlama3HeaderEnd, kLlama3TurnEnd});
  const bool chatml = has_all(tokenizer, {kChatMLStart, kChatMLEnd});
  if (!llama3 && !chatml) {
    return not_found(
        "no chat template fits this tokenizer: it has neither the Llama-3 tokens ({}, {}, {}, {}) "
        "nor the ChatML tokens ({}, {})",
        kLlama3Bos, kLlama3HeaderStart, kLlama3HeaderEnd, kLlama3TurnEnd, kChatMLStart, kChatMLEnd);
  }
  ChatFamily family = llama3 ? ChatFamily::kLlama3 : ChatFamily::kChatML;
  if (llama3 && chatml) {
    if (!arch) {
      return invalid_argument(
          "the tokenizer has both the Llama-3 and the ChatML tokens; name the model architecture "
          "to choose");
    }
    family = *arch == Architecture::kLlama ? ChatFamily::kLlama3 : ChatFamily::kChatML;
  }
  if (family == ChatFamily::kLlama3) {
    return ChatTemplate(family,
                        ids_present(tokenizer, {kLlama3TurnEnd, "<|eom_id|>", "<|end_of_text|>"}));
  }
  return ChatTemplate(family, ids_present(tokenizer, {kChatMLEnd, "<|endoftext|>"}));
}

StatusOr<std::string> ChatTemplate::format(std::span<const ChatMessage> messages,
                                           const ChatOptions& options) const {
  for (size_t i = 0; i < messages.size(); ++i) MEGALITH_RETURN_IF_ERROR(check_role(messages[i], i));
  const bool add_system = !options.default_system_prompt.empty() &&
                          (messages.empty() || messages.front().role != "system");
  const auto append_turn = family_ == ChatFamily::kLlama3 ? append_llama3_turn : append_chatml_turn;
  std::string prompt;
  if (family_ == ChatFamily::kLlama3) prompt += kLlama3Bos;
  if (add_system) append_turn("system", options.default_system_prompt, prompt);
  for (const ChatMessage& message : messages) append_turn(message.role, message.content, prompt);
  if (options.add_generation_prompt) {
    if (family_ == ChatFamily::kLlama3) {
      prompt += kLlama3HeaderStart;
      prompt += "assistant";
      prompt += kLlama3HeaderEnd;
      prompt += "\n\n";
    } else {
      prompt += kChatMLStart;
      prompt += "assistant\n";
    }
  }
  return prompt;
}

}  // namespace megalith
