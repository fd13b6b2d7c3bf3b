import Foundation
import NUMA
#if canImport(Glibc)
import Glibc
#endif
@testable import NUMAPool

let page = PagePlacement.basePageSize

/// Every address handed out and not yet returned, across threads.
final class LiveSet: Sendable {
    private let state = Locked<Set<UInt>>([])

    /// False when the address was already live: a block handed out twice.
    func insert(_ block: UnsafeMutableRawPointer) -> Bool {
        state.withLock { $0.insert(UInt(bitPattern: block)).inserted }
    }

    func remove(_ block: UnsafeMutableRawPointer) -> Bool {
        state.withLock { $0.remove(UInt(bitPattern: block)) != nil }
    }

    var count: Int { state.withLock { $0.count } }
}

/// Whether this process runs under ThreadSanitizer (its runtime is linked in).
let underThreadSanitizer = dlsym(nil, "__tsan_init") != nil  // nil: RTLD_DEFAULT

/// A flag that one thread sets and others poll.
final class StopFlag: Sendable {
    private let state = Locked(false)
    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}

/// Anonymous memory resident in the mappings inside `range` (the `Anonymous:` lines of
/// /proc/self/smaps): what a pool holds there, without the shared marker pages a trim maps.
func anonymousBytes(in range: Range<UInt>) throws -> Int {
    // Read to the end: a file of /proc reports no size.
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/smaps"))
    defer { try? handle.close() }
    let text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
    var inside = false
    var total = 0
    for line in text.split(separator: "\n") {
        if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
           let start = UInt(line[..<dash], radix: 16),
           let end = UInt(line[line.index(after: dash)..<space], radix: 16) {
            inside = start < range.upperBound && end > range.lowerBound
        } else if inside, line.hasPrefix("Anonymous:") {
            total += (Int(line.split(separator: " ")[1]) ?? 0) * 1024
        }
    }
    return total
}
