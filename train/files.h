// Writing files so that a crash, a full disk or a kill never leaves a
// half-written file where a good one was: write "<path>.tmp", flush, then
// rename over the target (a rename within a folder is atomic on POSIX).
#pragma once
#include <string>

namespace attn {

void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace attn
