// The command-line side of `attnlab compare` and `attnlab eval`: the options
// they add to train's, and what they print. Kept apart from
// attnlab_main.cpp so that file only wires commands together.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "train/compare.h"
#include "train/length_eval.h"

namespace attn {

// --seeds, --budget, --seconds, --extrapolate, --eval-windows.
void add_compare_options(CLI::App* compare_cmd, CompareOptions& o);
// The `eval` command with its options bound to `o`.
CLI::App* add_eval_command(CLI::App& app, EvalOptions& o);

// Runs the comparison and prints one line per variant; returns the exit
// status (128 + the signal's number when SIGINT or SIGTERM stopped it).
int run_compare(const CompareOptions& o);

}  // namespace attn
