// What the programs run under mpirun (comm_check, ring_check) share: each
// rank counts its failed checks and prints them with its rank, and ends
// with one line that the shell test counts per rank.
#pragma once
#include <cstdio>
#include <string>

#include "core/comm/communicator.h"

namespace attn::rank_check {

inline int failures = 0;

inline void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("rank %d: FAIL %s\n", comm::world().rank(), what.c_str());
  }
}

// The exit status: 0 when every check held on this rank.
inline int finish() {
  if (failures == 0) std::printf("rank %d of %d: every check held\n", comm::world().rank(), comm::world().size());
  return failures == 0 ? 0 : 1;
}

}  // namespace attn::rank_check
