// attnlab's own random numbers: the same seed gives the same numbers on every
// platform and compiler (the standard library's distributions do not promise
// that). xoshiro256** makes the bits; splitmix64 spreads the seed.
#pragma once
#include <array>
#include <cstdint>

namespace attn {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { seed_with(seed); }
  void seed_with(uint64_t seed);

  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits, the precision of a float.
  float uniform();
  // Standard normal by Box-Muller, computed in double then rounded.
  float normal();
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n);

  // The whole state, for checkpoints that must resume exactly.
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

// The generator used by rand/randn/dropout when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace attn
