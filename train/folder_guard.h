// What a folder holds, before anything is written into it: the checks
// behind "no silent overwrite" (run_folder.h acts on them).
//
// A folder holds a run when it has a config.json or a
// checkpoint.safetensors: a run writes its config.json first, so even one
// killed before its first checkpoint counts.
#pragma once
#include <filesystem>
#include <string>

namespace attn {

bool holds_run(const std::filesystem::path& folder);

// What the run in `folder` is, for a message: "step 500 of 2000, attention
// mha", or "no checkpoint yet, attention mha". Only reads.
std::string describe_run(const std::filesystem::path& folder);

// Creates and returns "<parent>/<N>", N one more than the largest number
// among the folders there (1 for the first): a run without --out gets a
// folder of its own, so a second `attnlab train` never meets the first's.
// `who` ("train") starts the error messages.
std::filesystem::path fresh_numbered_folder(const std::filesystem::path& parent, const std::string& who);

}  // namespace attn
