// What every chapter's suites share: comparing a tensor with expected values
// so that a failure names the first wrong element, random inputs from a seed,
// and "this call must be rejected" checks that tell an unwritten stub apart
// from a wrong answer. Header-only; each suite includes it as
// "lesson_test.h".
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/device.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"
#include "nn/module.h"

namespace lesson_test {

// "[1,0,2]": where flat element `flat` sits in a row-major tensor of `shape`.
inline std::string index_str(int64_t flat, const attn::Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    idx[i] = flat % shape[i];
    flat /= shape[i];
  }
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < idx.size(); ++i) os << (i ? "," : "") << idx[i];
  os << "]";
  return os.str();
}

// A tensor's elements as doubles, row-major (whatever its strides).
inline std::vector<double> values(const attn::Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// Standard-normal values times `scale`, the same for the same seed.
inline attn::Tensor random_tensor(const attn::Shape& shape, uint64_t seed, float scale = 1.0f) {
  attn::Generator g(seed);
  return attn::mul(attn::randn(shape, g), scale);
}

// Compares `got` with `want` (row-major values of shape `shape`). Each element
// must be within tol * (1 + |want|), and finite unless an infinity is
// expected (then it must be that same infinity). A failure says how many
// elements are off and names the first: its index, expected and actual value.
inline ::testing::AssertionResult close(const std::string& what, const attn::Tensor& got,
                                        const std::vector<double>& want,
                                        const attn::Shape& shape, double tol = 1e-4) {
  if (!got.defined()) return ::testing::AssertionFailure() << what << ": got an undefined Tensor";
  if (got.shape() != shape)
    return ::testing::AssertionFailure() << what << ": expected shape " << attn::shape_str(shape)
                                         << ", got " << attn::shape_str(got.shape());
  if (want.size() != static_cast<std::size_t>(got.numel()))
    return ::testing::AssertionFailure() << what << ": the test expects " << want.size()
                                         << " values for shape " << attn::shape_str(shape);
  const std::vector<float> g = got.to_vector();
  int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool ok = std::isinf(want[i]) ? g[i] == static_cast<float>(want[i])
                                        : std::isfinite(g[i]) && std::fabs(g[i] - want[i]) <= tol * (1 + std::fabs(want[i]));
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << g.size() << " elements differ; first at "
         << index_str(first, shape) << ": expected " << want[first] << ", got " << g[first];
}

// The same, against another tensor (its shape is the expected shape).
inline ::testing::AssertionResult close(const std::string& what, const attn::Tensor& got,
                                        const attn::Tensor& want, double tol = 1e-4) {
  return close(what, got, values(want), want.shape(), tol);
}

// Succeeds when f throws attn::Error. A stub's NotImplemented does not count:
// an unwritten function is not a function that checks its input. `why` says
// what the check protects against, for the student who forgot it.
inline ::testing::AssertionResult rejects(const std::string& what, const std::function<void()>& f,
                                          const std::string& why) {
  try {
    f();
  } catch (const attn::NotImplemented& e) {
    return ::testing::AssertionFailure() << what << ": not implemented yet (" << e.what() << ")";
  } catch (const attn::Error& e) {
    std::cout << "  [" << what << "] rejected as expected: " << e.what() << "\n";
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << what << " returned normally; it must throw attn::Error ("
                                       << why << ")";
}

// ---- GPU parity (the GpuParity.* tests of the advanced suites) -------------
// The same call on CPU tensors and on .to(Device::cuda()) copies of them must
// give the same outputs and gradients. Each such test starts with this line,
// so it skips (neither passes nor fails) where no GPU exists:
//   if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";

// A fresh leaf on `device` holding t's values (requires_grad when `grad`):
// the CPU run and the GPU run each get their own, so their .grad() are apart.
inline attn::Tensor leaf_on(const attn::Tensor& t, const attn::Device& device, bool grad = true) {
  attn::Tensor out = t.detach().to(device).contiguous();
  if (out.device() == t.device()) out = out.clone();  // never share storage with t
  if (grad) out.set_requires_grad(true);
  return out;
}

// Compares what the CUDA run gave (`on_gpu`) with what the CPU run gave
// (`on_cpu`) for the same inputs. A failure says which device differs and
// where: "<what>: the CUDA result differs from the CPU one: 3 of 24 elements
// differ; first at [0,1,2]: CPU 0.25, CUDA 0.5", or that the CUDA result
// is missing or was left on the CPU.
inline ::testing::AssertionResult same_on_both_devices(const std::string& what,
                                                       const attn::Tensor& on_gpu,
                                                       const attn::Tensor& on_cpu,
                                                       double tol = 1e-4) {
  if (!on_cpu.defined())
    return ::testing::AssertionFailure() << what << ": the CPU run gave an undefined Tensor";
  if (!on_gpu.defined())
    return ::testing::AssertionFailure()
           << what << ": the CUDA run gave an undefined Tensor (the CPU run gave "
           << attn::shape_str(on_cpu.shape()) << ")";
  if (!on_gpu.device().is_cuda())
    return ::testing::AssertionFailure()
           << what << ": the inputs were on CUDA but the result is on " << on_gpu.device().str()
           << " (create new tensors on the input's device: x.device())";
  if (on_gpu.shape() != on_cpu.shape())
    return ::testing::AssertionFailure() << what << ": shape " << attn::shape_str(on_gpu.shape())
                                         << " on CUDA, " << attn::shape_str(on_cpu.shape())
                                         << " on the CPU";
  const std::vector<float> g = on_gpu.to_vector(), c = on_cpu.to_vector();
  int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool ok = (std::isnan(c[i]) && std::isnan(g[i])) ||
                    (std::isinf(c[i]) ? g[i] == c[i]
                                      : std::isfinite(g[i]) &&
                                            std::fabs(g[i] - c[i]) <= tol * (1 + std::fabs(c[i])));
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": the CUDA result differs from the CPU one: " << bad << " of " << g.size()
         << " elements differ; first at " << index_str(first, on_cpu.shape()) << ": CPU "
         << c[first] << ", CUDA " << g[first];
}

// The same for a gradient: `x_gpu` and `x_cpu` are the two runs' leaves.
inline ::testing::AssertionResult same_grad_on_both_devices(const std::string& what,
                                                            const attn::Tensor& x_gpu,
                                                            const attn::Tensor& x_cpu,
                                                            double tol = 1e-4) {
  if (!x_cpu.grad().defined())
    return ::testing::AssertionFailure() << what << ".grad: undefined after backward() on the CPU";
  if (!x_gpu.grad().defined())
    return ::testing::AssertionFailure()
           << what << ".grad: undefined after backward() on CUDA (defined on the CPU)";
  return same_on_both_devices(what + ".grad", x_gpu.grad(), x_cpu.grad(), tol);
}

// One function, both devices: runs f on CPU leaves made from `inputs`, then
// on CUDA leaves with the same values; backpropagates sum(out * w) (w a fixed
// random tensor, the same on both) through each run; compares the outputs
// and the .grad() of every float input that has a name in `names` (an empty
// name: no gradient wanted, e.g. a mask). The CPU run goes first, so an
// unwritten stub fails here with its NotImplemented. Every difference is
// reported, each naming the device that differs and the first bad index.
inline ::testing::AssertionResult same_on_both_devices(
    const std::string& what, const std::function<attn::Tensor(const std::vector<attn::Tensor>&)>& f,
    const std::vector<attn::Tensor>& inputs, const std::vector<std::string>& names,
    double tol = 1e-4) {
  auto make = [&](const attn::Device& device) {
    std::vector<attn::Tensor> leaves;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const bool grad = i < names.size() && !names[i].empty() &&
                        inputs[i].dtype() == attn::DType::Float32;
      leaves.push_back(inputs[i].defined() ? leaf_on(inputs[i], device, grad) : inputs[i]);
    }
    return leaves;
  };
  auto run = [&](const std::vector<attn::Tensor>& leaves, const attn::Device& device) {
    const attn::Tensor out = f(leaves);
    if (out.defined() && out.requires_grad()) {
      const attn::Tensor w = random_tensor(out.shape(), 4242).to(device);
      attn::sum(attn::mul(out, w)).backward();
    }
    return out;
  };
  const std::vector<attn::Tensor> cpu = make(attn::Device::cpu());
  const attn::Tensor out_cpu = run(cpu, attn::Device::cpu());
  const std::vector<attn::Tensor> gpu = make(attn::Device::cuda());
  attn::Tensor out_gpu;
  try {
    out_gpu = run(gpu, attn::Device::cuda());
  } catch (const attn::NotImplemented&) {
    throw;
  } catch (const attn::Error& e) {
    return ::testing::AssertionFailure()
           << what << ": ran on the CPU, but threw on CUDA tensors: " << e.what()
           << "\n(a tensor made inside your code is probably on the CPU: create it on the input's "
              "device, e.g. arange(n, DType::Int64, x.device()), or move it with .to(x.device()))";
  }
  std::ostringstream failures;
  int bad = 0;
  auto note = [&](const ::testing::AssertionResult& r) {
    if (!r) failures << (bad++ ? "\n" : "") << r.message();
  };
  note(same_on_both_devices(what + ": output", out_gpu, out_cpu, tol));
  for (std::size_t i = 0; i < cpu.size(); ++i)
    if (cpu[i].defined() && cpu[i].requires_grad())
      note(same_grad_on_both_devices(what + ": " + names[i], gpu[i], cpu[i], tol));
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << failures.str();
}

// One module, both devices: `on_gpu` gets on_cpu's weights (load_state_dict)
// and is moved to CUDA (Module::to); then forward(module, x) runs on each,
// sum(out * w) is backpropagated, and the outputs, x.grad (when x is float)
// and the .grad() of every parameter, by name, are compared. The CPU run
// goes first (an unwritten stub fails there).
inline ::testing::AssertionResult module_same_on_both_devices(
    const std::string& what, attn::Module& on_cpu, attn::Module& on_gpu,
    const std::function<attn::Tensor(attn::Module&, const attn::Tensor&)>& forward,
    const attn::Tensor& x, double tol = 1e-4) {
  const bool x_grad = x.dtype() == attn::DType::Float32;
  const attn::Tensor x_cpu = leaf_on(x, attn::Device::cpu(), x_grad);
  const attn::Tensor out_cpu = forward(on_cpu, x_cpu);
  attn::sum(attn::mul(out_cpu, random_tensor(out_cpu.shape(), 4243))).backward();
  on_gpu.load_state_dict(on_cpu.state_dict());
  on_gpu.to(attn::Device::cuda());
  const attn::Tensor x_gpu = leaf_on(x, attn::Device::cuda(), x_grad);
  attn::Tensor out_gpu;
  try {
    out_gpu = forward(on_gpu, x_gpu);
    attn::sum(attn::mul(out_gpu, random_tensor(out_gpu.shape(), 4243).to(attn::Device::cuda())))
        .backward();
  } catch (const attn::Error& e) {
    return ::testing::AssertionFailure()
           << what << ": ran on the CPU, but threw with the module and its input on CUDA: "
           << e.what()
           << "\n(a tensor made inside your code is probably on the CPU: create it on the input's "
              "device, e.g. causal_mask(T, T, 0, x.device()))";
  }
  std::ostringstream failures;
  int bad = 0;
  auto note = [&](const ::testing::AssertionResult& r) {
    if (!r) failures << (bad++ ? "\n" : "") << r.message();
  };
  note(same_on_both_devices(what + ": output", out_gpu, out_cpu, tol));
  if (x_grad) note(same_grad_on_both_devices(what + ": x", x_gpu, x_cpu, tol));
  std::map<std::string, attn::Tensor*> gpu_params;
  for (auto& [name, p] : on_gpu.named_parameters()) gpu_params[name] = p;
  for (auto& [name, p] : on_cpu.named_parameters()) {
    const auto it = gpu_params.find(name);
    if (it == gpu_params.end()) {
      note(::testing::AssertionFailure() << what << ": parameter " << name << " missing on CUDA");
      continue;
    }
    if (!p->grad().defined() && !it->second->grad().defined()) continue;
    note(same_grad_on_both_devices(what + ": parameter " + name, *it->second, *p, tol));
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << failures.str();
}

}  // namespace lesson_test
