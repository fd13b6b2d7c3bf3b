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

/// Times batches of `loads` dependent loads from `start`, each batch one sample of
/// `statistics`, until `length` is reached: a duration from the first sample, or a number of
/// samples. Each sample reads the clock before and after its batch. About every 250 ms `tick`
/// gets the fraction done. Returns where the chase stopped and the first and last clock readings.
func timedChase(from start: UnsafeRawPointer, loads: Int, length: RunLength, into statistics: inout LatencyStatistics,
                tick: ((Double) -> Void)? = nil) -> (pointer: UnsafeRawPointer, began: UInt64, ended: UInt64) {
    var pointer = start
    let began = monotonicNanoseconds()
    let deadline = length.seconds.map { began + UInt64($0 * 1e9) } ?? .max
    let target = length.samples ?? .max
    var now = began
    var nextTick = began + 250_000_000
    while statistics.count < target && now < deadline {
        let t0 = monotonicNanoseconds()
        pointer = chase(from: pointer, loads: loads)
        now = monotonicNanoseconds()
        statistics.record(nanoseconds: now - t0, loads: loads)
        if now >= nextTick, let tick {
            nextTick = now + 250_000_000
            tick(length.samples.map { Double(statistics.count) / Double($0) } ?? Double(now - began) / Double(deadline - began))
        }
    }
    return (pointer, began, now)
}
