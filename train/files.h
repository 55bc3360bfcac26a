// Writing files so that a crash, a full disk or a kill never leaves a
// half-written file where a good one was: write a temporary file beside the
// target, flush, then rename it over the target (a rename within a folder
// is atomic on POSIX).
#pragma once
#include <string>

namespace attn {

// "<path>.tmp-<pid>-<n>": a name no other process and no other write of
// this one uses, so that two writers never write into the same temporary
// file (a fixed "<path>.tmp" let them interleave inside it).
std::string temporary_name(const std::string& path);

void write_text_atomically(const std::string& path, const std::string& text);

// Creates the output folder `path` (and its parents) if needed. A file in
// its place, or a folder that cannot be made, is an error naming `option`
// (e.g. "train: --out") and the path; nothing that exists is touched.
void make_output_folder(const std::string& path, const std::string& option);

}  // namespace attn
