// megalith: compile LLM decoding into one persistent GPU kernel, and run it.
#include <cstdio>

#include "cli.h"
#include "megalith/core/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"megalith: LLM inference as a single persistent GPU megakernel"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();

  const megalith::cli::Command commands[] = {
      megalith::cli::add_make_checkpoint(app),
      megalith::cli::add_generate(app),
      megalith::cli::add_chat(app),
      megalith::cli::add_serve(app),
      megalith::cli::add_score(app),
      megalith::cli::add_inspect(app),
      megalith::cli::add_bench(app),
      megalith::cli::add_trace(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (megalith::Status s = megalith::set_log_level(log_level); !s.ok()) {
    std::fprintf(stderr, "megalith: %s\n", s.message().c_str());
    return 2;
  }
  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    megalith::Status status = command.run();
    if (!status.ok()) {
      std::fprintf(stderr, "megalith %s: error: %s\n", command.app->get_name().c_str(),
                   status.message().c_str());
      return 1;
    }
  }
  return 0;
}
