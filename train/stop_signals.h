// Ctrl-C (SIGINT) and a scheduler's SIGTERM as a request to stop cleanly.
//
// While a StopOnSignals is alive, the first of these signals only sets a
// flag: the training loop finishes the step in flight, saves a checkpoint
// and returns (an evaluation in progress is abandoned, and the resumed run
// redoes it). A second signal ends the process at once, without saving,
// with the status a shell gives a process killed by the first (128 + its
// number: 130 for SIGINT, 143 for SIGTERM).
//
// Without a StopOnSignals (a library caller), signals keep their default
// action and stop_signal() stays 0.
#pragma once

namespace attn {

class StopOnSignals {
 public:
  StopOnSignals();   // installs the handlers for SIGINT and SIGTERM
  ~StopOnSignals();  // restores the previous ones
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;
};

// The first signal received (SIGINT or SIGTERM), or 0 when none was.
int stop_signal();

// "SIGINT", "SIGTERM".
const char* signal_name(int signal);

// 128 + the signal's number: what a shell reports for a process it killed.
inline int exit_status_for(int signal) { return 128 + signal; }

}  // namespace attn
