#include "worker-pool.h"

WorkerPool::WorkerPool(size_t n_threads) {
    for (size_t i = 0; i < n_threads; i++) threads_.emplace_back([this] { Loop(); });
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto & t : threads_) t.join();
}

void WorkerPool::Run(size_t n, const std::function<void(size_t)> & fn) {
    uint64_t generation;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        fn_ = &fn;
        n_ = n;
        next_ = 0;
        finished_ = 0;
        error_ = nullptr;
        generation = ++generation_;
    }
    wake_.notify_all();
    Drain(generation);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return finished_ == n_; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
}

// Claims tasks of run `generation` until none are left. Claims happen under the lock, so a
// thread that wakes late never takes a task of a later run with the earlier run's function.
void WorkerPool::Drain(uint64_t generation) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (generation_ == generation && next_ < n_) {
        const size_t i = next_++;
        const std::function<void(size_t)> * fn = fn_;
        lock.unlock();
        std::exception_ptr error;
        try {
            (*fn)(i);
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        if (error && !error_) error_ = error;
        if (++finished_ == n_) done_.notify_one();
    }
}

void WorkerPool::Loop() {
    uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
        }
        Drain(seen);
    }
}
