// A small persistent thread pool for the CPU path: parallel_for(n, fn) splits [0, n) into contiguous chunks.
// fn(begin, end) must be safe to run concurrently on disjoint ranges. Work below `grain` items runs inline.
// The pool size defaults to the hardware concurrency; WSF_NUM_THREADS overrides it (1 disables threading).
#pragma once

#include <cstdint>
#include <functional>

namespace wsf {

int num_threads();
void set_num_threads(int n);

// Runs fn over [0, n) in up to num_threads() contiguous chunks of at least `grain` items; blocks until done.
// Calls from inside a running parallel_for run inline (no nested parallelism).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace wsf
