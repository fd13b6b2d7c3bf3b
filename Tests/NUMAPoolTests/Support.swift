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

/// Anonymous memory resident inside `range`: mincore(2) over the parts of the anonymous
/// mappings of /proc/self/smaps that lie in it. The shared marker pages a trim maps are file
/// pages and count nowhere; a neighbouring mapping that the kernel merged with the range's
/// counts only for its part inside the range.
func anonymousBytes(in range: Range<UInt>) throws -> Int {
    // Read to the end: a file of /proc reports no size.
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/smaps"))
    defer { try? handle.close() }
    let text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
    var total = 0
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 5, let dash = fields[0].firstIndex(of: "-"),
              let start = UInt(fields[0][..<dash], radix: 16),
              let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16) else { continue }
        // Anonymous: no path after the inode.
        guard fields.count == 5 else { continue }
        let lower = max(start, range.lowerBound), upper = min(end, range.upperBound)
        guard lower < upper else { continue }
        let pages = Int(upper - lower) / page
        var vector = [UInt8](repeating: 0, count: pages)
        guard mincore(UnsafeMutableRawPointer(bitPattern: lower), Int(upper - lower), &vector) == 0 else { continue }
        total += vector.count { $0 & 1 != 0 } * page
    }
    return total
}
