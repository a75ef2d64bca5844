// Kernel lab: accuracy of the CPU fast exp/erf (core/fastmath_cpu.h) against libm over the float range.
// Build and run: g++ -O2 -std=c++17 -I.. fastmath_check.cc -o /tmp/fastmath_check && /tmp/fastmath_check
// Seen on the 2-core build machine: erf max abs err ≈ 4e-7 on [−6, 6]; exp max rel err vs expf(float x) ≈ 2e-7.
#include <cmath>
#include <cstdio>

#include "core/fastmath_cpu.h"

int main() {
  double erf_err = 0, exp_err = 0;
  for (double x = -6; x <= 6; x += 1e-5) erf_err = std::fmax(erf_err, std::fabs(wsf::fast_erff(float(x)) - std::erf(double(float(x)))));
  for (double x = -87; x <= 88; x += 1e-4) {
    const double ref = std::exp(double(float(x)));
    exp_err = std::fmax(exp_err, std::fabs(wsf::fast_expf(float(x)) - ref) / ref);
  }
  std::printf("erf max abs err %.3e; exp max rel err %.3e\n", erf_err, exp_err);
  return (erf_err < 1e-6 && exp_err < 1e-6) ? 0 : 1;
}
