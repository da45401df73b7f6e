// A few threads that run the per-sequence work of one step (sampling) side by side. The caller
// runs tasks too, so a pool of n threads gives n + 1 workers; between steps the threads sleep.
#pragma once

#include <cstdint>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

class WorkerPool {
  public:
    explicit WorkerPool(size_t n_threads);
    ~WorkerPool();
    WorkerPool(const WorkerPool &) = delete;
    WorkerPool & operator=(const WorkerPool &) = delete;

    // Calls fn(i) for every i in [0, n) and returns when all calls have. An exception thrown by
    // fn is rethrown here (the first one; the remaining tasks still run).
    void Run(size_t n, const std::function<void(size_t)> & fn);

  private:
    void Loop();
    void Drain(uint64_t generation);

    std::vector<std::thread> threads_;
    std::mutex mutex_;  // guards everything below
    std::condition_variable wake_, done_;
    const std::function<void(size_t)> * fn_ = nullptr;
    size_t n_ = 0;
    size_t next_ = 0;      // next task to claim
    size_t finished_ = 0;  // tasks done
    uint64_t generation_ = 0;
    bool stop_ = false;
    std::exception_ptr error_;
};
