// Counter-based normal draws for the flow's hot loops (prior draws, interpolant noise): out[i] depends only on
// (seed, i), so the result is the same for any split across threads, and a 64-bit seed drawn from the caller's
// seeded stream keeps runs reproducible and resumable (the stream's state is all there is to checkpoint).
// The uniforms are the splitmix64 sequence started at `seed` (Steele, Lea & Flood 2014); pairs of them become two
// normals by the Box–Muller transform, computed in double and rounded to float once.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/parallel.h"

namespace wsf {

inline uint64_t splitmix64_at(uint64_t seed, uint64_t k) {
  uint64_t z = seed + k * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// out[0..n) = mean + stddev·N(0, 1); pair j (elements 2j, 2j+1) from the (2j+1)-th and (2j+2)-th splitmix64 outputs.
inline void fill_normal_counter(float* out, int64_t n, uint64_t seed, double mean, double stddev) {
  if (n <= 0) return;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  constexpr double k2m53 = 1.0 / 9007199254740992.0;
  const int64_t pairs = (n + 1) / 2;
  parallel_for(pairs, 2048, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const double u1 = static_cast<double>((splitmix64_at(seed, 2 * static_cast<uint64_t>(j) + 1) >> 11) + 1) * k2m53;
      const double u2 = static_cast<double>(splitmix64_at(seed, 2 * static_cast<uint64_t>(j) + 2) >> 11) * k2m53;
      const double r = std::sqrt(-2.0 * std::log(u1));
      const double a = kTwoPi * u2;
      out[2 * j] = static_cast<float>(mean + stddev * r * std::cos(a));
      if (2 * j + 1 < n) out[2 * j + 1] = static_cast<float>(mean + stddev * r * std::sin(a));
    }
  });
}

}  // namespace wsf
