// The helper every bad-input test uses: the message of the attn::Error that
// f throws, or "(no error)" when it throws none, so that a check like
// EXPECT_NE(error_of(...).find("expected ..."), npos) shows in its failure
// message what happened instead.
#pragma once
#include <functional>
#include <string>

#include "core/error.h"

namespace attn {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace attn
