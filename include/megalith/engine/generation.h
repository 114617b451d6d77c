// Decoding loops shared by every executor: greedy or sampled generation, and scoring.
//
//   ReferenceModel model(*ckpt);
//   Sampler sampler({.temperature = 0});                       // greedy
//   auto out = generate(model, prompt, {.max_new_tokens = 32}, sampler);
//   auto lp = score(model, ids);                               // ids.size()-1 log-probs
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/model/reference_model.h"
#include "megalith/runtime/executor.h"

namespace megalith {

struct SamplingParams {
  double temperature = 0.0;  // 0: greedy (argmax, lowest id on ties)
  double top_p = 1.0;        // nucleus sampling; 1 keeps every token
  int64_t top_k = 0;         // 0 keeps every token
  uint64_t seed = 0;
};

Status validate(const SamplingParams& params);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

int32_t argmax(std::span<const float> logits);
// Natural-log softmax in double precision.
std::vector<double> log_softmax(std::span<const float> logits);

struct GenerationOptions {
  int64_t max_new_tokens = 16;
  std::vector<int64_t> stop_token_ids;  // generation ends after emitting one of these
  // Called with each generated token as soon as generate() has it, in order (streaming).
  std::function<void(int32_t token)> on_token;
  // Asked after each generated token (after on_token): true ends generation there, with
  // finish_reason "stop" (a stop string found in the text, a client that went away).
  std::function<bool()> should_stop;
};

// Whether generation ends after `token`: a stop id, or the caller asks to stop.
bool ends_generation(const GenerationOptions& options, int32_t token);

struct GenerationResult {
  std::vector<int32_t> tokens;       // generated tokens only
  std::string finish_reason;         // "length" or "stop"
  double prefill_ms = 0, decode_ms = 0;
};

StatusOr<GenerationResult> generate(ReferenceModel& model, std::span<const int32_t> prompt,
                                    const GenerationOptions& options, Sampler& sampler);

// log P(ids[i] | ids[0..i-1]) for i = 1 .. n-1.
StatusOr<std::vector<double>> score(ReferenceModel& model, std::span<const int32_t> ids);

// The same through a compiled task graph, in a slot of the executor, dropping what its slots
// held (BatchGenerator runs several requests at once). Greedy and temperature sampling run inside
// the launch (Gumbel-max: deterministic for a seed, but a different stream than Sampler's);
// top-k and top-p sample on the host between single-step launches.
StatusOr<GenerationResult> generate(Executor& exec, std::span<const int32_t> prompt,
                                    const GenerationOptions& options, const SamplingParams& sampling);
StatusOr<std::vector<double>> score(Executor& exec, std::span<const int32_t> ids);

}  // namespace megalith
