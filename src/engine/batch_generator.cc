#include "megalith/engine/batch_generator.h"

#include <algorithm>

namespace megalith {

namespace {

// Steps a launch takes at most: a prompt goes in a few long launches, generation in short ones
// so a stop token ends a request, and a waiting one joins, soon.
constexpr int64_t kPromptChunk = 64;
constexpr int64_t kDecodeChunk = 16;

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

Status check_request(const Executor& exec, const GenerationRequest& r) {
  MEGALITH_RETURN_IF_ERROR(validate(r.sampling));
  if (r.options.max_new_tokens < 0) return invalid_argument("max_new_tokens must not be negative");
  // prompt + max_new_tokens - 1 positions, compared without overflowing.
  if (r.options.max_new_tokens > exec.max_positions() + 1 - int64_t(r.prompt.size())) {
    return invalid_argument("{} prompt tokens and {} new ones need {} positions; the compiled KV "
                            "cache holds {}", r.prompt.size(), r.options.max_new_tokens,
                            int64_t(r.prompt.size()) - 1 + r.options.max_new_tokens,
                            exec.max_positions());
  }
  return {};
}

}  // namespace

BatchGenerator::BatchGenerator(Executor& exec) : exec_(exec), slots_(size_t(exec.batch())) {}

int32_t BatchGenerator::free_slots() const {
  return int32_t(std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s; }));
}

void BatchGenerator::add(GenerationRequest request) {
  const auto free = std::find_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s; });
  MEGALITH_CHECK(free != slots_.end(), "BatchGenerator::add without a free slot");
  const int32_t slot = int32_t(free - slots_.begin());
  Status status = check_request(exec_, request);
  const SamplingParams& sampling = request.sampling;
  const bool in_launch = sampling.top_k == 0 && sampling.top_p == 1.0;
  if (status.ok()) {
    status = exec_.start_sequence(request.prompt, in_launch ? sampling.temperature : 0.0,
                                  sampling.seed, slot);
  }
  if (!status.ok()) return request.on_done(status);
  if (request.options.max_new_tokens == 0) {
    MEGALITH_CHECK(exec_.end_sequence(slot).ok(), "slot {} exists", slot);
    GenerationResult empty;
    empty.finish_reason = "length";
    return request.on_done(std::move(empty));
  }
  Sequence& s = free->emplace(Sequence{std::move(request), {}, {}, {}, {}});
  s.result.finish_reason = "length";
  if (!in_launch) s.host_sampler.emplace(s.request.sampling);
  s.start = std::chrono::steady_clock::now();
}

int64_t BatchGenerator::steps_for(int32_t slot) const {
  const Sequence& s = *slots_[size_t(slot)];
  const int64_t prompt = int64_t(s.request.prompt.size()), at = exec_.position(slot);
  // Positions still to compute: the last new token comes from position prompt - 2 + max_new.
  const int64_t left = prompt - 1 + s.request.options.max_new_tokens - at;
  if (at < prompt) return std::min({left, prompt - at, kPromptChunk});
  // A token sampled on the host is forced before the next step.
  return s.host_sampler ? 1 : std::min(left, kDecodeChunk);
}

Status BatchGenerator::run_launch() {
  // A caller that went away (or a shutdown) ends its request at once, also during its prompt.
  for (int32_t slot = 0; slot < int32_t(slots_.size()); ++slot) {
    const auto& s = slots_[size_t(slot)];
    if (s && s->request.options.should_stop && s->request.options.should_stop()) {
      slots_[size_t(slot)]->result.finish_reason = "stop";
      finish(slot);
    }
  }
  int64_t steps = kPromptChunk;
  for (int32_t slot = 0; slot < int32_t(slots_.size()); ++slot) {
    if (slots_[size_t(slot)]) steps = std::min(steps, steps_for(slot));
  }
  if (!busy()) return {};
  MEGALITH_CHECK(steps >= 1, "a launch of {} steps", steps);
  if (Status status = exec_.run(steps); !status.ok()) {
    fail_all(status);
    return status;
  }
  for (int32_t slot = 0; slot < int32_t(slots_.size()); ++slot) {
    if (slots_[size_t(slot)] && collect(slot)) finish(slot);
  }
  return {};
}

bool BatchGenerator::collect(int32_t slot) {
  Sequence& s = *slots_[size_t(slot)];
  GenerationResult& r = s.result;
  const GenerationOptions& options = s.request.options;
  // Every computed position from the prompt's last on has produced its next token.
  const int64_t first_new = int64_t(s.request.prompt.size()) - 1 + int64_t(r.tokens.size());
  for (int64_t p = first_new; p < exec_.position(slot); ++p) {
    const int32_t token = s.host_sampler ? s.host_sampler->sample(exec_.logits(slot))
                                         : exec_.token(p, slot);
    if (r.tokens.empty()) s.first_token = std::chrono::steady_clock::now();
    r.tokens.push_back(token);
    if (options.on_token) options.on_token(token);
    if (ends_generation(options, token)) {
      r.finish_reason = "stop";
      return true;
    }
    if (int64_t(r.tokens.size()) == options.max_new_tokens) return true;
  }
  if (s.host_sampler && !r.tokens.empty()) {
    const Status forced = exec_.force_token(r.tokens.back(), slot);
    MEGALITH_CHECK(forced.ok(), "forcing a sampled token: {}", forced.message());
  }
  return false;
}

void BatchGenerator::finish(int32_t slot) {
  Sequence s = std::move(*slots_[size_t(slot)]);
  slots_[size_t(slot)].reset();
  MEGALITH_CHECK(exec_.end_sequence(slot).ok(), "slot {} exists", slot);
  const auto now = std::chrono::steady_clock::now();
  const bool any = !s.result.tokens.empty();
  s.result.prefill_ms = ms_between(s.start, any ? s.first_token : now);
  s.result.decode_ms = any ? ms_between(s.first_token, now) : 0.0;
  s.request.on_done(std::move(s.result));
}

void BatchGenerator::fail_all(const Status& status) {
  for (int32_t slot = 0; slot < int32_t(slots_.size()); ++slot) {
    if (!slots_[size_t(slot)]) continue;
    Sequence s = std::move(*slots_[size_t(slot)]);
    slots_[size_t(slot)].reset();
    (void)exec_.end_sequence(slot);
    s.request.on_done(status);
  }
}

}  // namespace megalith
