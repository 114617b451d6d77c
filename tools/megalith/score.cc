// megalith score: the log-probability of each token given the ones before it.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "megalith/engine/generation.h"
#include "megalith/model/checkpoint.h"

namespace megalith::cli {

namespace {
struct ScoreArgs {
  DeviceOptions device;
  std::string ids;
  bool json = false;
};

Status run(const ScoreArgs& a) {
  MEGALITH_RETURN_IF_ERROR(check_device(a.device));
  MEGALITH_ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_ids(a.ids, "--ids"));
  if (ids.size() < 2) return invalid_argument("--ids needs at least two token ids");
  MEGALITH_ASSIGN_OR_RETURN(Model model, load_model(a.device));
  const std::string& dir = model.dir;
  std::vector<double> logprobs;
  if (a.device.device == "ref") {
    ReferenceModel reference(*model.checkpoint);
    MEGALITH_ASSIGN_OR_RETURN(logprobs, score(reference, ids));
  } else {
    MEGALITH_ASSIGN_OR_RETURN(auto exec, make_executor(a.device, model, int64_t(ids.size())));
    MEGALITH_ASSIGN_OR_RETURN(logprobs, score(*exec, ids));
  }
  double total = 0;
  for (double lp : logprobs) total += lp;
  const double perplexity = std::exp(-total / double(logprobs.size()));
  if (a.json) {
    nlohmann::json out = {{"logprobs", logprobs}, {"total_logprob", total},
                          {"perplexity", perplexity}, {"device", a.device.device}, {"model", dir}};
    fmt::print("{}\n", out.dump());
  } else {
    for (size_t i = 0; i < logprobs.size(); ++i) {
      fmt::print("{:>6} {:>10.4f}\n", ids[i + 1], logprobs[i]);
    }
    fmt::print("total log-prob {:.4f}, perplexity {:.3f}\n", total, perplexity);
  }
  return {};
}
}  // namespace

Command add_score(CLI::App& app) {
  auto args = std::make_shared<ScoreArgs>();
  CLI::App* cmd = app.add_subcommand(
      "score", "Log-probability of each token id given the ones before it (and perplexity)");
  add_device_options(*cmd, args->device);
  cmd->add_option("--ids", args->ids, "token ids, e.g. 1,2,3 (at least two)")->required();
  cmd->add_flag("--json", args->json, "print one JSON object: {\"logprobs\": [...], ...}");
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
