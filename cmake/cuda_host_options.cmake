# attn_cuda_host_options(target): a target with .cu sources inherits the
# directory's C++ flags (-Wall, sanitizers, ...), which nvcc does not accept.
# Keep them for C++ and hand them to nvcc's host compiler for CUDA
# (-Xcompiler splits at commas, so -fsanitize=a,b goes as one flag per
# sanitizer; other flags with commas are left to the C++ side).
function(attn_cuda_host_options target)
  get_target_property(options ${target} COMPILE_OPTIONS)
  if(NOT options)
    return()
  endif()
  set(wrapped)
  foreach(opt IN LISTS options)
    list(APPEND wrapped "$<$<COMPILE_LANGUAGE:CXX>:${opt}>")
    if(opt MATCHES "^-fsanitize=(.+)$")
      string(REPLACE "," ";" kinds "${CMAKE_MATCH_1}")
      foreach(kind IN LISTS kinds)
        list(APPEND wrapped "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fsanitize=${kind}>")
      endforeach()
    elseif(NOT opt MATCHES ",")
      list(APPEND wrapped "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${opt}>")
    endif()
  endforeach()
  set_property(TARGET ${target} PROPERTY COMPILE_OPTIONS ${wrapped})
endfunction()
