/*
 * hdb_rwlock_bridge.hpp - the writer-preferring reader/writer lock of the C++ engine bridges
 * (hdb_faiss_bridge.cpp, hdb_hnsw_bridge.cpp). C++ only; no C code includes it.
 *
 * std::shared_mutex is a default pthread_rwlock, which glibc makes reader-preferring: under a
 * steady stream of searches an upsert waited for seconds (a test saw one write against
 * millions of searches). This lock queues new readers behind a waiting writer. It has the
 * SharedMutex member functions, so std::unique_lock and std::shared_lock work with it.
 * Not recursive: a thread must not take it shared twice.
 */
#ifndef HDB_RWLOCK_BRIDGE_HPP
#define HDB_RWLOCK_BRIDGE_HPP

#include <pthread.h>

#include <system_error>

namespace hdb_bridge {

class RwLock {
  public:
    /* Throws std::system_error when the lock cannot be created. */
    RwLock() {
        pthread_rwlockattr_t a;
        pthread_rwlockattr_init(&a);
        pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        int rc = pthread_rwlock_init(&rw_, &a);
        pthread_rwlockattr_destroy(&a);
        if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock_init");
    }
    ~RwLock() {
        pthread_rwlock_destroy(&rw_);
    }
    RwLock(const RwLock &) = delete;
    RwLock &operator=(const RwLock &) = delete;
    void lock() {
        check(pthread_rwlock_wrlock(&rw_), "pthread_rwlock_wrlock");
    }
    bool try_lock() {
        return pthread_rwlock_trywrlock(&rw_) == 0;
    }
    void unlock() {
        pthread_rwlock_unlock(&rw_);
    }
    void lock_shared() {
        check(pthread_rwlock_rdlock(&rw_), "pthread_rwlock_rdlock");
    }
    bool try_lock_shared() {
        return pthread_rwlock_tryrdlock(&rw_) == 0;
    }
    void unlock_shared() {
        pthread_rwlock_unlock(&rw_);
    }

  private:
    static void check(int rc, const char *what) {
        if (rc != 0) throw std::system_error(rc, std::generic_category(), what);
    }
    pthread_rwlock_t rw_;
};

} // namespace hdb_bridge

#endif
