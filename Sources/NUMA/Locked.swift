import CNuma
#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex (pthread_mutex_lock(3)) that survives fork(2).
///
/// The mutex is a `CNuma_lock`: every one is taken before a fork and reinitialised in the
/// child, so that a child never finds a lock held by a thread that was not copied. Two rules
/// keep that free of deadlock: a thread that holds two of these locks took them in the order
/// they were made, and no `Locked` is made or ended by a thread that holds one.
///
/// The package uses this rather than `Synchronization.Mutex` because ThreadSanitizer
/// intercepts pthread mutexes, while `Mutex` on Linux locks through a futex in the prebuilt
/// runtime, which ThreadSanitizer cannot see; the pools must be checkable under TSan.
package final class Locked<Value>: @unchecked Sendable {
    // @unchecked: every access to `value` happens between pthread_mutex_lock and
    // pthread_mutex_unlock on `lock`.
    private let lock: UnsafeMutablePointer<CNuma_lock>
    private let value: UnsafeMutablePointer<Value>

    package init(_ value: Value) {
        // The lock and the value share whole cache lines of their own, so that two locks never
        // share a line (no false sharing between, say, the per-node partitions of a pool).
        let valueOffset = (MemoryLayout<CNuma_lock>.stride + MemoryLayout<Value>.alignment - 1)
            / MemoryLayout<Value>.alignment * MemoryLayout<Value>.alignment
        let bytes = (valueOffset + MemoryLayout<Value>.size + 63) / 64 * 64
        let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: max(64, MemoryLayout<Value>.alignment))
        lock = memory.bindMemory(to: CNuma_lock.self, capacity: 1)
        lock.initialize(to: CNuma_lock())
        self.value = (memory + valueOffset).bindMemory(to: Value.self, capacity: 1)
        self.value.initialize(to: value)
        precondition(CNuma_lock_init(lock) == 0, "pthread_mutex_init failed")
    }

    deinit {
        CNuma_lock_destroy(lock)
        value.deinitialize(count: 1)
        lock.deinitialize(count: 1)
        UnsafeMutableRawPointer(lock).deallocate()
    }

    /// Runs `body` with the lock held.
    @inline(__always)
    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(&lock.pointee.mutex)
        defer { pthread_mutex_unlock(&lock.pointee.mutex) }
        return try body(&value.pointee)
    }
}
