// Commands as text (cli_text.h).
#include "train/cli_text.h"

#include <cctype>

namespace attn {

namespace {

// Characters a shell leaves alone; anything else is single-quoted.
bool shell_safe(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string("_./:=,+-@%").find(c) != std::string::npos))
      return false;
  return true;
}

}  // namespace

std::string shell_quote(const std::string& s) {
  if (shell_safe(s)) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string command_line(int argc, char** argv) {
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + shell_quote(argv[i]);
  return cmd;
}

std::string resume_command(const std::string& program, const std::string& data, const std::string& out,
                           int64_t steps, const std::string& device) {
  std::string cmd = shell_quote(program) + " train --data " + shell_quote(data) + " --out " + shell_quote(out) +
                    " --resume " + shell_quote(out) + " --steps " + std::to_string(steps);
  if (device != "cpu") cmd += " --device " + shell_quote(device);
  return cmd;
}

}  // namespace attn
