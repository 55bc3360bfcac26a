# The CUDA backend queues all its work on the thread's stream
# (cuda::stream(), core/stream.h). A kernel launched without a stream, or a
# synchronous cudaMemcpy / cudaMemset, would run on the legacy default
# stream, unordered with the compute stream: a race that no CPU test sees
# and a GPU test sees only by luck. This check reads core/cuda/*.cu and
# fails, naming the file and the statement, on any such call.
#   cmake -DSOURCE_DIR=<repo> -P cuda_stream_check.cmake
file(GLOB sources ${SOURCE_DIR}/core/cuda/*.cu ${SOURCE_DIR}/core/cuda/*.cuh)
set(bad 0)
foreach(file ${sources})
  file(READ ${file} text)
  # A launch: from <<< to its >>> within one statement.
  string(REGEX MATCHALL "<<<[^;{}]*>>>" launches "${text}")
  foreach(launch IN LISTS launches)
    if(NOT launch MATCHES "stream\\(\\)>>>$")
      message(SEND_ERROR "${file}: a kernel launch without the thread's stream: ${launch}")
      math(EXPR bad "${bad} + 1")
    endif()
  endforeach()
  # Copies and fills: the asynchronous calls, on the thread's stream.
  string(REGEX MATCHALL "cudaMem(cpy|set)(Async)?\\([^;]*" calls "${text}")
  foreach(call IN LISTS calls)
    if(NOT call MATCHES "^cudaMem(cpy|set)Async" OR NOT call MATCHES "stream\\(\\)")
      message(SEND_ERROR "${file}: a copy or fill outside the thread's stream: ${call}")
      math(EXPR bad "${bad} + 1")
    endif()
  endforeach()
  list(LENGTH launches n)
  set(total_launches "${total_launches}+${n}")
endforeach()
math(EXPR total "0${total_launches}")
if(total LESS 50)
  message(FATAL_ERROR "found only ${total} kernel launches in ${SOURCE_DIR}/core/cuda: is the pattern still right?")
endif()
if(bad GREATER 0)
  message(FATAL_ERROR "${bad} call(s) outside the thread's stream")
endif()
message(STATUS "${total} kernel launches, every one on the thread's stream; every copy and fill asynchronous on it")
