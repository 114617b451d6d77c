// Continuous batching over an executor's slots: requests join at launch boundaries in free
// slots, each launch decodes one position of every active sequence per step, and each
// sequence ends on its own (a stop token, its length, its caller) and frees its slot for the
// next. A slot's rows of a step depend on that slot alone, so a request gets the same tokens
// whatever else shares the launches.
//
//   BatchGenerator batch(exec);
//   batch.add({.prompt = ids, .options = {.max_new_tokens = 16},
//              .on_done = [](StatusOr<GenerationResult> r) { ... }});
//   while (batch.busy()) MEGALITH_RETURN_IF_ERROR(batch.run_launch());
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/engine/generation.h"
#include "megalith/runtime/executor.h"

namespace megalith {

struct GenerationRequest {
  std::vector<int32_t> prompt;
  // on_token and should_stop are called from run_launch().
  GenerationOptions options;
  SamplingParams sampling;
  // Called exactly once: from add() when the request cannot run, else from run_launch() or
  // fail_all().
  std::function<void(StatusOr<GenerationResult>)> on_done;
};

class BatchGenerator {
 public:
  explicit BatchGenerator(Executor& exec);

  int32_t free_slots() const;
  bool busy() const { return free_slots() < int32_t(slots_.size()); }

  // Starts `request` in a free slot (free_slots() must be positive). A request that cannot
  // run (bad sampling parameters, a prompt that does not fit) is answered at once.
  void add(GenerationRequest request);

  // One launch over the active slots, then each one's new tokens in order; a request that
  // ends (or whose should_stop says so before the launch) is answered and frees its slot. A
  // failed launch fails every active request and is returned (the executor then refuses to
  // run again).
  Status run_launch();

  // Answers every active request with `status` and frees its slot.
  void fail_all(const Status& status);

 private:
  struct Sequence {
    GenerationRequest request;
    GenerationResult result;
    std::optional<Sampler> host_sampler;  // top-k / top-p: sampled here, one step a launch
    std::chrono::steady_clock::time_point start, first_token;
  };
  // Steps slot s can take in the next launch.
  int64_t steps_for(int32_t slot) const;
  // Takes the slot's new tokens; true when its request has ended.
  bool collect(int32_t slot);
  void finish(int32_t slot);

  Executor& exec_;
  std::vector<std::optional<Sequence>> slots_;
};

}  // namespace megalith
