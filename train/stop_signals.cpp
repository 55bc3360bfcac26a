// SIGINT and SIGTERM as a request to stop (stop_signals.h).
#include "train/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

namespace attn {

namespace {

volatile std::sig_atomic_t g_first_signal = 0;
// A progress line ("\rstep 12/500 ...") may be on the terminal: start a new line first.
bool g_on_terminal = false;
struct sigaction g_previous_int, g_previous_term;

// Only async-signal-safe calls in here: write(2) and _exit(2).
void say(const char* text) {
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void on_signal(int signal) {
  if (g_on_terminal) say("\n");
  if (g_first_signal != 0) {
    say("attnlab: second signal: stopped at once, without saving; the run folder keeps its last checkpoint\n");
    ::_exit(exit_status_for(g_first_signal));
  }
  g_first_signal = signal;
  say(signal == SIGINT ? "attnlab: SIGINT: finishing the step in flight, then saving (Ctrl-C again stops at once)\n"
                       : "attnlab: SIGTERM: finishing the step in flight, then saving (a second signal stops at once)\n");
}

}  // namespace

StopOnSignals::StopOnSignals() {
  g_on_terminal = ::isatty(STDERR_FILENO) != 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  // Restart reads and writes the signal interrupts: the run goes on to its
  // checkpoint, and a write cut short by EINTR would only fail it.
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &g_previous_int);
  sigaction(SIGTERM, &action, &g_previous_term);
}

StopOnSignals::~StopOnSignals() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

int stop_signal() { return g_first_signal; }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
  }
  return "a signal";
}

}  // namespace attn
