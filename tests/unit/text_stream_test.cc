// The text side of serving: stop strings cut the text wherever the tokens split it, and a
// TextStream hands the worker's text to a reader thread whole and in order.
#include "megalith/server/text_stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer_fixtures.h"

namespace megalith {
namespace {

// Feeds `pieces` through a filter; returns what it released, and whether it stopped.
std::pair<std::string, bool> filter(const std::vector<std::string>& stops,
                                    const std::vector<std::string>& pieces) {
  StopStringFilter f(stops);
  std::string out;
  for (const std::string& piece : pieces) out += f.add(piece);
  out += f.flush();
  return {out, f.stopped()};
}

TEST(StopStringFilter, CutsAtTheFirstStopStringHoweverThePiecesSplitIt) {
  const std::string text = "one two\n\nthree END four";
  for (const std::vector<std::string>& stops :
       {std::vector<std::string>{"\n\n"}, {"END", "\n\n"}, {"three", "\n\n", "two\n\nx"}}) {
    // Every way of cutting the text into two and three pieces.
    for (size_t a = 0; a <= text.size(); ++a) {
      for (size_t b = a; b <= text.size(); ++b) {
        const auto [out, stopped] =
            filter(stops, {text.substr(0, a), text.substr(a, b - a), text.substr(b)});
        EXPECT_EQ(out, "one two") << a << " " << b;
        EXPECT_TRUE(stopped);
      }
    }
  }
  EXPECT_EQ(filter({"END"}, {"one two\n\nthree END four"}).first, "one two\n\nthree ");
  EXPECT_EQ(filter({"END", "two"}, {"one two END"}).first, "one ");  // the earliest wins
}

TEST(StopStringFilter, HoldsBackOnlyWhatCouldStartAStopString) {
  StopStringFilter f({"<end>"});
  EXPECT_EQ(f.add("abc<e"), "abc");  // "<e" may become "<end>"
  EXPECT_EQ(f.add("x"), "<ex");      // it did not
  EXPECT_EQ(f.add("<"), "");
  EXPECT_EQ(f.flush(), "<");  // the text ended: what was held back is text
  EXPECT_FALSE(f.stopped());
  EXPECT_EQ(filter({"zz"}, {"no stop here"}), std::make_pair(std::string("no stop here"), false));
  EXPECT_EQ(filter({}, {"a", "b"}), std::make_pair(std::string("ab"), false));
}

TEST(TextStream, HandsWholeCharactersToTheReaderAndCutsAtStops) {
  const Tokenizer tok = testing::load_fixture_tokenizer("qwen2");
  const std::string text = "naïve café — 你好 STOP never";
  const std::vector<int32_t> ids = tok.encode(text, /*add_special_tokens=*/false);
  auto stream = std::make_shared<TextStream>(tok, std::vector<std::string>{" STOP"});
  std::thread worker([&] {
    for (int32_t id : ids) {
      if (stream->should_stop()) break;
      stream->add_token(id);
    }
    stream->finish(GenerationResult{{}, "stop", 0, 0});
  });
  std::string got, piece;
  for (TextStream::Next n;
       (n = stream->next_for(piece, std::chrono::milliseconds(50))) != TextStream::Next::kEnded;) {
    if (n == TextStream::Next::kWaiting) continue;
    EXPECT_FALSE(piece.empty());
    got += piece;
  }
  worker.join();
  EXPECT_EQ(got, "naïve café — 你好");
  ASSERT_TRUE(stream->result().ok());
  EXPECT_EQ(stream->result()->finish_reason, "stop");

  // A reader that cancels makes should_stop() true.
  TextStream cancelled(tok, {});
  EXPECT_FALSE(cancelled.should_stop());
  cancelled.cancel();
  EXPECT_TRUE(cancelled.should_stop());
}

}  // namespace
}  // namespace megalith
