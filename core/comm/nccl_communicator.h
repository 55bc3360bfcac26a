// The communicator over NCCL (communicator.h), between the GPUs of one
// job, one process per GPU. Its buffers are GPU memory on `device`; every
// transfer is queued on a stream of its own, after the work this thread
// queued on the device so far (so the data it sends is ready), and its
// Request returns once the transfer is done.
#pragma once
#include <memory>

#include "core/comm/communicator.h"
#include "core/comm/nccl_library.h"
#include "core/device.h"

namespace attn::comm {

// A new id for a job: rank 0 makes it and every rank joins with it.
NcclUniqueId nccl_unique_id();
// Joins the job `id` names as `rank` of `size`, on `device`. Blocks until
// every rank has joined.
std::unique_ptr<Communicator> nccl_communicator(const Device& device, int rank, int size,
                                                const NcclUniqueId& id);

}  // namespace attn::comm
