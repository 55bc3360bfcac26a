#include "core/device.h"

#include "core/error.h"

namespace attn {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const std::string num = text.substr(5);
    bool digits = !num.empty() && num.size() < 4;
    for (char c : num) digits = digits && c >= '0' && c <= '9';
    if (digits) return cuda(std::stoi(num));
  }
  fail("device: unknown device '", text, "'; expected cpu, cuda or cuda:N");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

}  // namespace attn
