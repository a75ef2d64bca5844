// Thread pool behind parallel_for: one process-wide pool (the only global besides the device registry), started
// lazily, workers sleep on a condition variable between jobs. A job is split into contiguous chunks handed out
// by an atomic counter, so uneven chunks balance themselves.
#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace wsf {
namespace {

thread_local bool tl_in_pool_job = false;

class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static destruction order
    return *pool;
  }

  int size() const { return size_; }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    stop_workers();
    size_ = std::max(1, n);
    start_workers();
  }

  void run(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one job at a time; concurrent callers queue here
    const int64_t num_chunks = (n + chunk - 1) / chunk;
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      chunk_ = chunk;
      num_chunks_ = num_chunks;
      next_.store(0);
      done_chunks_ = 0;
      ++generation_;
    }
    cv_.notify_all();
    work(&fn, n, chunk, num_chunks);  // the caller works too
    std::unique_lock<std::mutex> lk(mu_);
    // Wait for every chunk and for every worker that took a snapshot of this job, so no worker can touch `fn`
    // (which lives on the caller's stack) or the chunk counter after we return.
    done_cv_.wait(lk, [&] { return done_chunks_ == num_chunks_ && active_ == 0; });
    fn_ = nullptr;
    num_chunks_ = 0;
  }

 private:
  Pool() {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("WSF_NUM_THREADS")) {
      int v = std::atoi(env);
      if (v > 0) n = v;
    }
    size_ = std::max(1, n);
    start_workers();
  }

  void start_workers() {
    quit_ = false;
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { loop(); });
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t, int64_t)>* fn;
      int64_t n, chunk, num_chunks;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
        if (fn_ == nullptr) continue;  // woke after the job finished
        fn = fn_;
        n = n_;
        chunk = chunk_;
        num_chunks = num_chunks_;
        ++active_;
      }
      work(fn, n, chunk, num_chunks);
      {
        std::lock_guard<std::mutex> lk(mu_);
        --active_;
      }
      done_cv_.notify_all();
    }
  }

  void work(const std::function<void(int64_t, int64_t)>* fn, int64_t n, int64_t chunk, int64_t num_chunks) {
    tl_in_pool_job = true;
    int64_t finished = 0;
    for (;;) {
      const int64_t c = next_.fetch_add(1);
      if (c >= num_chunks) break;
      const int64_t b = c * chunk;
      const int64_t e = std::min(n, b + chunk);
      (*fn)(b, e);
      ++finished;
    }
    tl_in_pool_job = false;
    if (finished > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      done_chunks_ += finished;
    }
    done_cv_.notify_all();
  }

  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, num_chunks_ = 0, done_chunks_ = 0, active_ = 0;
  std::atomic<int64_t> next_{0};
  uint64_t generation_ = 0;
  bool quit_ = false;
  int size_ = 1;
};

}  // namespace

int num_threads() { return Pool::get().size(); }
void set_num_threads(int n) { Pool::get().resize(n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  Pool& pool = Pool::get();
  const int threads = pool.size();
  if (threads <= 1 || tl_in_pool_job || n <= grain) {
    fn(0, n);
    return;
  }
  grain = std::max<int64_t>(grain, 1);
  // About 4 chunks per thread for balance, never smaller than the grain.
  int64_t chunk = std::max<int64_t>(grain, (n + 4 * threads - 1) / (4 * threads));
  pool.run(n, chunk, fn);
}

}  // namespace wsf
