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
    private let value: UnsafeMutablePointer<Value>

    package init(_ value: Value) {
        // The mutex and the value share whole cache lines of their own, so that two locks
        // never share a line (no false sharing between, say, the per-node partitions of a pool).
        let valueOffset = (MemoryLayout<pthread_mutex_t>.stride + MemoryLayout<Value>.alignment - 1)
            / MemoryLayout<Value>.alignment * MemoryLayout<Value>.alignment
        let bytes = (valueOffset + MemoryLayout<Value>.size + 63) / 64 * 64
        let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: max(64, MemoryLayout<Value>.alignment))
        mutex = memory.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        self.value = (memory + valueOffset).bindMemory(to: Value.self, capacity: 1)
        self.value.initialize(to: value)
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        value.deinitialize(count: 1)
        mutex.deinitialize(count: 1)
        UnsafeMutableRawPointer(mutex).deallocate()
    }

    /// Runs `body` with the lock held.
    @inline(__always)
    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
