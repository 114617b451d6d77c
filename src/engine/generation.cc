#include "megalith/engine/generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>

#include "megalith/engine/batch_generator.h"

namespace megalith {

namespace {
double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}
}  // namespace

bool ends_generation(const GenerationOptions& options, int32_t token) {
  const auto& stops = options.stop_token_ids;
  return std::find(stops.begin(), stops.end(), token) != stops.end() ||
         (options.should_stop && options.should_stop());
}

Status validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0 && p.temperature <= 100.0)) {
    return invalid_argument("temperature must be between 0 and 100, got {}", p.temperature);
  }
  if (!(p.top_p > 0.0 && p.top_p <= 1.0)) {
    return invalid_argument("top_p must be in (0, 1], got {}", p.top_p);
  }
  if (p.top_k < 0) return invalid_argument("top_k must be 0 (off) or positive, got {}", p.top_k);
  return {};
}

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

std::vector<double> log_softmax(std::span<const float> logits) {
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  double total = 0.0;
  for (float l : logits) total += std::exp(double(l) - max_logit);
  const double log_total = max_logit + std::log(total);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - log_total;
  return out;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature == 0.0) return argmax(logits);
  // Candidates sorted by logit, cut by top-k, turned into probabilities, cut by top-p.
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
  if (params_.top_k > 0 && size_t(params_.top_k) < order.size()) order.resize(size_t(params_.top_k));
  std::vector<double> probs(order.size());
  const double top = logits[size_t(order[0])];
  double total = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    total += probs[i] = std::exp((double(logits[size_t(order[i])]) - top) / params_.temperature);
  }
  double kept = 0.0;
  size_t count = 0;
  while (count < order.size() && (count == 0 || kept < params_.top_p * total)) kept += probs[count++];
  std::uniform_real_distribution<double> uniform(0.0, kept);
  double r = uniform(rng_);
  for (size_t i = 0; i < count; ++i) {
    if ((r -= probs[i]) < 0) return order[i];
  }
  return order[count - 1];
}

StatusOr<GenerationResult> generate(ReferenceModel& model, std::span<const int32_t> prompt,
                                    const GenerationOptions& options, Sampler& sampler) {
  if (prompt.empty()) return invalid_argument("the prompt must hold at least one token");
  if (options.max_new_tokens < 0) return invalid_argument("max_new_tokens must not be negative");
  GenerationResult result;
  result.finish_reason = "length";
  model.reset();
  auto start = std::chrono::steady_clock::now();
  MEGALITH_ASSIGN_OR_RETURN(std::vector<float> logits, model.forward(prompt));
  result.prefill_ms = ms_since(start);
  const size_t vocab = logits.size() / prompt.size();
  std::span<const float> last(logits.data() + logits.size() - vocab, vocab);

  start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int32_t token = sampler.sample(last);
    result.tokens.push_back(token);
    if (options.on_token) options.on_token(token);
    if (ends_generation(options, token)) {
      result.finish_reason = "stop";
      break;
    }
    if (i + 1 == options.max_new_tokens) break;
    MEGALITH_ASSIGN_OR_RETURN(logits, model.forward(std::span(&token, 1)));
    last = logits;
  }
  result.decode_ms = ms_since(start);
  return result;
}

StatusOr<std::vector<double>> score(ReferenceModel& model, std::span<const int32_t> ids) {
  if (ids.size() < 2) return invalid_argument("scoring needs at least two token ids");
  model.reset();
  MEGALITH_ASSIGN_OR_RETURN(std::vector<float> logits, model.forward(ids));
  const size_t vocab = logits.size() / ids.size();
  std::vector<double> out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    out.push_back(log_softmax(std::span(logits.data() + i * vocab, vocab))[size_t(ids[i + 1])]);
  }
  return out;
}

StatusOr<GenerationResult> generate(Executor& exec, std::span<const int32_t> prompt,
                                    const GenerationOptions& options, const SamplingParams& sampling) {
  // The executor is this request's: what its slots held is dropped (start_sequence would drop
  // slot 0's; the others would otherwise be advanced along).
  for (int32_t slot = 0; slot < exec.batch(); ++slot) {
    MEGALITH_RETURN_IF_ERROR(exec.end_sequence(slot));
  }
  BatchGenerator batch(exec);
  std::optional<StatusOr<GenerationResult>> result;
  batch.add({{prompt.begin(), prompt.end()}, options, sampling,
             [&result](StatusOr<GenerationResult> r) { result = std::move(r); }});
  while (batch.busy()) {
    if (Status status = batch.run_launch(); !status.ok()) return status;
  }
  MEGALITH_CHECK(result.has_value(), "a request ended without an answer");
  return std::move(*result);
}

StatusOr<std::vector<double>> score(Executor& exec, std::span<const int32_t> ids) {
  if (ids.size() < 2) return invalid_argument("scoring needs at least two token ids");
  if (int64_t(ids.size()) - 1 > exec.max_positions()) {
    return invalid_argument("{} ids need {} positions; the compiled KV cache holds {}", ids.size(),
                            ids.size() - 1, exec.max_positions());
  }
  MEGALITH_RETURN_IF_ERROR(exec.start_sequence(ids));
  MEGALITH_RETURN_IF_ERROR(exec.run(int64_t(ids.size()) - 1));
  std::vector<double> out;
  for (int64_t p = 0; p + 1 < int64_t(ids.size()); ++p) out.push_back(exec.logprob(p));
  return out;
}

}  // namespace megalith
