// `attnlab launch`: one process per rank on this machine, without mpirun,
// as torchrun starts PyTorch's. It starts N copies of a command, each told
// its place in the job through the environment:
//   ATTNLAB_RANK        0 .. N-1
//   ATTNLAB_WORLD_SIZE  N
//   ATTNLAB_LOCAL_RANK  the same as the rank (one machine): the GPU to use
//   ATTNLAB_NCCL_ID     with nccl: one NCCL unique id, in hex, the same for
//                       every rank, which they join with (core/comm/
//                       nccl_communicator.h); made by the launcher, so no
//                       rank has to send it to the others
// and then watches them:
//   - SIGINT and SIGTERM sent to the launcher reach every rank (each rank
//     runs in a process group of its own, so a Ctrl-C in the terminal
//     reaches the ranks once, through the launcher);
//   - when a rank fails (exits non-zero, or a signal ends it), the others
//     get SIGTERM, then SIGKILL after `grace_s`: no rank is left waiting
//     for a peer that will never answer;
//   - a rank dies with the launcher (a kill -9 of the launcher ends them).
// The launcher's exit status is the first failed rank's (128 + its signal
// for a signal), or 0.
#pragma once
#include <string>
#include <vector>

namespace attn {

struct LaunchOptions {
  int ranks = 1;           // N
  double grace_s = 10;     // after a failure: SIGTERM, this long, SIGKILL
  bool nccl = false;       // hand the ranks an NCCL unique id
};

int launch(const LaunchOptions& options, const std::vector<std::string>& command);

}  // namespace attn
