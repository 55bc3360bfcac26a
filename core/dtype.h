// Element types. Values are float32; indices are int64; masks are bool (one
// byte); bfloat16 (core/bfloat16.h) is a storage type for values, converted
// to and from float32 (mixed precision computes in float32).
#pragma once
#include <cstddef>
#include <cstdint>

namespace attn {

enum class DType : int { Float32 = 0, Int64 = 1, Bool = 2, BFloat16 = 3 };

inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
    case DType::BFloat16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}

}  // namespace attn
