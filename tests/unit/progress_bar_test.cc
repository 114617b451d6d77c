#include "megalith/core/progress_bar.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace megalith {
namespace {

TEST(ProgressBar, FormatsTheFractionAndTheBytes) {
  EXPECT_EQ(format_progress("w", 0, 4'000'000'000, 10), "w [>         ]   0% 0.0/4.0 GB");
  EXPECT_EQ(format_progress("w", 1'000'000'000, 4'000'000'000, 10), "w [==>       ]  25% 1.0/4.0 GB");
  EXPECT_EQ(format_progress("w", 4'000'000'000, 4'000'000'000, 10), "w [==========] 100% 4.0/4.0 GB");
  // Nothing to do counts as done; more than the total is clamped.
  EXPECT_EQ(format_progress("w", 0, 0, 4), "w [====] 100% 0.0/0.0 GB");
  EXPECT_EQ(format_progress("w", 9, 3, 4), "w [====] 100% 0.0/0.0 GB");
}

TEST(ProgressBar, FormatsStepsWithTheirDetail) {
  EXPECT_EQ(format_progress("c", 2, 4, 4, ProgressUnit::kSteps, "placement"),
            "c [==> ]  50% 2/4 placement");
  EXPECT_EQ(format_progress("c", 4, 4, 4, ProgressUnit::kSteps), "c [====] 100% 4/4");
}

std::string drawn(bool enabled) {
  std::FILE* f = std::tmpfile();
  {
    ProgressBar bar("load", f, enabled);
    bar.update(1, 2);
    bar.update(2, 2);
  }
  std::string text(4096, '\0');
  std::rewind(f);
  text.resize(std::fread(text.data(), 1, text.size(), f));
  std::fclose(f);
  return text;
}

TEST(ProgressBar, DrawsOnlyWhenEnabledAndEndsTheLine) {
  const std::string text = drawn(true);
  EXPECT_NE(text.find("load [="), std::string::npos) << text;
  EXPECT_NE(text.find("100%"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(drawn(false), "");
}

}  // namespace
}  // namespace megalith
