#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

namespace {

// sum(w * y) in double, on the host.
double weighted_sum(const Tensor& y, const std::vector<float>& w) {
  const std::vector<float> v = y.to_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += static_cast<double>(v[i]) * w[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const GradFn& fn, const std::vector<Tensor>& inputs, double eps,
                          double atol, double rtol) {
  // Work on private host copies so the caller's tensors are never touched.
  std::vector<Tensor> xs;
  std::vector<bool> checked;
  for (const Tensor& in : inputs) {
    const bool diff = in.dtype() == DType::Float32 && in.requires_grad();
    Tensor copy = in.detach().clone();
    if (diff) copy.set_requires_grad(true);
    xs.push_back(copy);
    checked.push_back(diff);
  }

  const Tensor y = fn(xs);
  check(y.defined() && y.requires_grad(), "gradcheck: the function's output does not depend on ",
        "any input that requires grad");
  Generator gen(1234);
  std::vector<float> w(y.numel());
  for (float& v : w) v = gen.uniform() * 2 - 1;
  y.backward(from_vector(w, y.shape(), y.device()));

  GradcheckResult result;
  double worst = -1;
  for (size_t k = 0; k < xs.size(); ++k) {
    if (!checked[k]) continue;
    const Tensor g = xs[k].grad();
    const std::vector<float> analytic =
        g.defined() ? g.to_vector() : std::vector<float>(xs[k].numel(), 0.0f);
    // Perturb a host copy element by element and re-run the function.
    const Tensor host = xs[k].detach().to(Device::cpu()).contiguous().clone();
    float* p = host.data<float>();
    for (int64_t i = 0; i < host.numel(); ++i) {
      const float orig = p[i];
      auto eval = [&](float value) {
        p[i] = value;
        std::vector<Tensor> args = xs;
        args[k] = host.to(xs[k].device());
        NoGradGuard no_grad;
        return weighted_sum(fn(args), w);
      };
      const double plus = eval(orig + static_cast<float>(eps));
      const double minus = eval(orig - static_cast<float>(eps));
      p[i] = orig;
      const double numeric = (plus - minus) / (2 * eps);
      const double err = std::fabs(numeric - analytic[i]);
      const double allowed = atol + rtol * std::fabs(numeric);
      // Rank by how far past its tolerance each element is.
      // A NaN (from the backward, or a forward that is NaN near x) compares
      // false with every tolerance and used to pass silently: rank it worst.
      // (An exact match stays fine even with zero tolerances.)
      double badness = err == 0 ? 0 : err / allowed;
      if (std::isnan(badness)) badness = HUGE_VAL;
      if (badness > worst) {
        worst = badness;
        result.input = static_cast<int>(k);
        result.index = i;
        result.analytic = analytic[i];
        result.numeric = numeric;
        result.error = err;
      }
    }
  }
  result.ok = worst <= 1.0;
  if (!result.ok) {
    std::ostringstream os;
    os << "gradcheck failed: input " << result.input << " element " << result.index
       << ": analytic " << result.analytic << " vs numeric " << result.numeric << " (|diff| "
       << result.error << " > atol " << atol << " + rtol " << rtol << " * |numeric|)";
    result.message = os.str();
  }
  return result;
}

}  // namespace attn
