#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex (pthread_mutex_lock(3)).
///
/// The package uses this rather than `Synchronization.Mutex` because ThreadSanitizer
/// intercepts pthread mutexes, while `Mutex` on Linux locks through a futex in the prebuilt
/// runtime, which ThreadSanitizer cannot see; the pools must be checkable under TSan.
package final class Locked<Value>: @unchecked Sendable {
    // @unchecked: every access to `value` happens between pthread_mutex_lock and
    // pthread_mutex_unlock on `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held.
    @inline(__always)
    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
