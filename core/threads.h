// How many CPU threads attnlab computes with: one setting for the whole
// process (`--threads N` on every command).
//
// The CPU kernels split their work over a pool of this many threads
// (core/cpu/parallel.h). OpenBLAS is told to use one thread of its own, and
// each of our threads calls it on its own slice of a product: one pool, so
// BLAS threads and ours never compete for the same cores.
//
// Results never depend on this number: work is cut into chunks fixed by
// the data's shape alone, and partial results are combined in chunk order.
// A run with 1 thread and one with 8 give bitwise the same checkpoint.
#pragma once

namespace attn {

// The current setting. Before any call to set_num_threads it is the value of
// the environment variable ATTNLAB_THREADS if set (the tests set 1), else
// the number of physical cores this process may run on.
int num_threads();
// n in 1..1024; anything else fails naming the value.
void set_num_threads(int n);
// Physical cores (not hardware threads) in this process's CPU affinity set.
int physical_cores();

}  // namespace attn
