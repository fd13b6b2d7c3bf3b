#if canImport(Glibc)
import Glibc
#endif

/// Follows the chain for `loads` dependent loads (`p = *p`), unrolled by 16, and returns where
/// it stopped. Not inlined, so that the loop's code is the same for every caller and for the
/// reference chase.
@inline(never)
public func chase(from start: UnsafeRawPointer, loads: Int) -> UnsafeRawPointer {
    var p = start
    var blocks = loads >> 4
    while blocks > 0 {
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        p = p.load(as: UnsafeRawPointer.self); p = p.load(as: UnsafeRawPointer.self)
        blocks -= 1
    }
    var rest = loads & 15
    while rest > 0 {
        p = p.load(as: UnsafeRawPointer.self)
        rest -= 1
    }
    return p
}

/// Nanoseconds on the monotonic clock (clock_gettime(2), `CLOCK_MONOTONIC`, served by the vDSO).
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
}

/// Where every chase leaves its last pointer, so the compiler cannot drop the loop.
public final class Sink: @unchecked Sendable {
    // @unchecked: written by one thread each, through its own slot; never read for a result.
    private let slots: UnsafeMutablePointer<UInt>
    private let count: Int
    public init(count: Int) {
        self.count = max(1, count)
        slots = .allocate(capacity: self.count * 8)
        slots.initialize(repeating: 0, count: self.count * 8)
    }
    deinit { slots.deallocate() }
    /// Stores `pointer` in slot `index` (slots sit a cache line apart).
    @inline(never)
    public func keep(_ pointer: UnsafeRawPointer, at index: Int) {
        (slots + (index % count) * 8).pointee = UInt(bitPattern: pointer)
    }
}
