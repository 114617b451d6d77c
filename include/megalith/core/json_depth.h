// A guard to run before parsing untrusted JSON: nlohmann::json parses any nesting depth, but
// copying, printing and destroying a value recurse once per level, so a body of nested
// brackets would overflow the stack.
//
//   if (json_nests_deeper_than(text, 64)) return error;   // then json::parse(text)
#pragma once

#include <string_view>

namespace megalith {

// Whether `text` nests arrays and objects more than `limit` deep (brackets inside strings do
// not count). Stops scanning as soon as it knows.
bool json_nests_deeper_than(std::string_view text, int limit);

}  // namespace megalith
