// Element types. Values are float32; indices are int64; masks are bool (one
// byte). bf16 would slot in here later without touching the Tensor class.
#pragma once
#include <cstddef>
#include <cstdint>

namespace attn {

enum class DType : int { Float32 = 0, Int64 = 1, Bool = 2 };

inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "?";
}

}  // namespace attn
