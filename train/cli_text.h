// Commands as text: what attnlab prints for the user to run (the command
// that continues an interrupted run) and records (a comparison's report).
// Every such command names --out, so that it acts on the same folder.
#pragma once
#include <cstdint>
#include <string>

namespace attn {

// `s` as one shell word: unchanged when the shell leaves it alone, else
// in single quotes.
std::string shell_quote(const std::string& s);

// argv as a shell command that gives the same arguments.
std::string command_line(int argc, char** argv);

// "<program> train --data D --out O --resume O --steps N [--device X]": the
// command that continues the run in folder `out` to step `steps`.
std::string resume_command(const std::string& program, const std::string& data, const std::string& out,
                           int64_t steps, const std::string& device);

}  // namespace attn
