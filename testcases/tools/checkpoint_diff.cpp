// checkpoint_diff A B [TOLERANCE]: compares the model and optimizer tensors
// of two checkpoints and exits 0 when every value agrees within TOLERANCE
// (default 0: bit for bit). The shell tests use it to say "this run ended
// where that one did" (threads, resume, data parallel).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "train/checkpoint.h"

using namespace attn;

namespace {

struct Worst {
  double diff = 0;
  std::string name;
};

// Compares one tensor; false when shapes differ. Counts bit-identical ones.
bool compare(const std::string& name, const Tensor& a, const Tensor& b, int& identical, Worst& worst) {
  if (a.shape() != b.shape()) {
    std::printf("%s: shapes %s and %s differ\n", name.c_str(), shape_str(a.shape()).c_str(),
                shape_str(b.shape()).c_str());
    return false;
  }
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  if (std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0) {
    ++identical;
    return true;
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = std::isnan(x[i]) != std::isnan(y[i]) ? INFINITY : std::fabs(double(x[i]) - double(y[i]));
    if (d > worst.diff || std::isnan(d)) worst = {std::isnan(d) ? INFINITY : d, name};
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: checkpoint_diff A B [TOLERANCE]\n");
    return 2;
  }
  try {
    const double tolerance = argc == 4 ? std::atof(argv[3]) : 0.0;
    const CheckpointData a = load_checkpoint(checkpoint_path(argv[1]));
    const CheckpointData b = load_checkpoint(checkpoint_path(argv[2]));
    if (a.step != b.step) {
      std::printf("steps differ: %lld and %lld\n", static_cast<long long>(a.step), static_cast<long long>(b.step));
      return 1;
    }
    int identical = 0, total = 0;
    Worst worst;
    bool same_shapes = true;
    for (const auto& [name, t] : a.model) {
      ++total;
      const auto other = b.model.find(name);
      if (other == b.model.end()) {
        std::printf("%s: missing in %s\n", name.c_str(), argv[2]);
        return 1;
      }
      same_shapes = compare("model." + name, t, other->second, identical, worst) && same_shapes;
    }
    if (a.optimizer.size() != b.optimizer.size()) {
      std::printf("optimizer states differ in number: %zu and %zu\n", a.optimizer.size(), b.optimizer.size());
      return 1;
    }
    for (std::size_t i = 0; i < a.optimizer.size(); ++i) {
      ++total;
      same_shapes = compare("optim." + a.optimizer[i].first, a.optimizer[i].second.to(DType::Float32),
                            b.optimizer[i].second.to(DType::Float32), identical, worst) && same_shapes;
    }
    std::printf("%d/%d tensors bitwise equal; largest difference %.3g%s%s\n", identical, total, worst.diff,
                worst.name.empty() ? "" : " in ", worst.name.c_str());
    return same_shapes && worst.diff <= tolerance ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_diff: %s\n", e.what());
    return 2;
  }
}
