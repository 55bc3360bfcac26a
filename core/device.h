// Where a tensor lives: the CPU, or CUDA device n.
#pragma once
#include <string>

namespace attn {

struct Device {
  enum Kind { CPU, CUDA } kind = CPU;
  int index = 0;

  static Device cpu() { return {CPU, 0}; }
  static Device cuda(int i = 0) { return {CUDA, i}; }
  // "cpu", "cuda", "cuda:1"; anything else is an error naming the text.
  static Device parse(const std::string& text);

  bool is_cpu() const { return kind == CPU; }
  bool is_cuda() const { return kind == CUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

}  // namespace attn
