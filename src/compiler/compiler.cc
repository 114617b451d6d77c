#include "megalith/compiler/compiler.h"

#include <array>
#include <chrono>

#include "lower.h"
#include "megalith/compiler/verify_task_graph.h"
#include "megalith/core/logging.h"
#include "passes.h"

namespace megalith {

namespace {
// The passes in the order compile() runs them; verification is the last and optional.
constexpr std::array<const char*, 6> kPasses = {"lowering",    "dependencies", "placement",
                                                "buffer plan", "assembly",     "verification"};

// Ends the next pass of kPasses: logs its time at debug level and reports it to on_pass.
class PassTimer {
 public:
  explicit PassTimer(const CompileOptions& options)
      : on_pass_(options.on_pass), total_(int(kPasses.size()) - (options.verify ? 0 : 1)) {}
  void lap() {
    const char* pass = kPasses[size_t(done_)];
    const auto now = std::chrono::steady_clock::now();
    MEGALITH_LOG_DEBUG("compiler: {} took {:.1f} ms", pass,
                       std::chrono::duration<double, std::milli>(now - last_).count());
    last_ = now;
    if (on_pass_) on_pass_(pass, ++done_, total_);
  }

 private:
  const std::function<void(std::string_view, int, int)>& on_pass_;
  int done_ = 0, total_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};
}  // namespace

StatusOr<TaskGraph> compile(const Graph& g, const ModelConfig& cfg, const CompileOptions& options) {
  PassTimer timer(options);
  MEGALITH_ASSIGN_OR_RETURN(compiler::Program program, compiler::lower(g, cfg, options));
  compiler::mark_claimed_rows(program, options);
  timer.lap();
  MEGALITH_ASSIGN_OR_RETURN(compiler::DependencyStats deps, compiler::add_dependencies(program));
  timer.lap();
  MEGALITH_LOG_DEBUG("compiler: {} tasks, {} read-after-write edges, {} orderings added, {} "
                     "implied edges removed", program.tasks.size(), deps.raw_edges,
                     deps.ordering_edges, deps.reduced_edges);
  const std::vector<uint32_t> worker = compiler::place_tasks(program, options);
  timer.lap();
  const compiler::BufferPlan plan = compiler::plan_buffers(program);
  timer.lap();
  MEGALITH_LOG_DEBUG("compiler: activation arena {} bytes ({} without reuse)", plan.arena_bytes,
                     plan.unshared_bytes);
  TaskGraph tg = compiler::assemble(program, worker, plan, options.num_workers);
  timer.lap();
  if (options.verify) {
    Status s = verify_task_graph(tg);
    timer.lap();
    if (!s.ok()) return s.with_context("compiler produced an invalid task graph");
  }
  return tg;
}

}  // namespace megalith
