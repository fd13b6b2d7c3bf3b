import CLibNuma
#if canImport(Glibc)
import Glibc
#endif

/// Where the pages of a memory range lie, from move_pages(2) with NULL nodes: a query that
/// moves nothing.
public struct PagePlacement: Sendable, Hashable {
    /// The page size the range was probed with.
    public let pageSize: Int
    /// The node of each page, or a negative errno (`-ENOENT` for a page never touched).
    public let nodes: [Int32]

    /// Probes every `pageSize` bytes of `[address, address + length)` with move_pages(2), in
    /// batches of 65536 pages.
    public init(address: UnsafeRawPointer, length: Int, pageSize: Int = PagePlacement.basePageSize) throws(NUMAError) {
        self.pageSize = pageSize
        let first = Int(bitPattern: address) & ~(pageSize - 1)
        let end = Int(bitPattern: address) + length
        let count = max(0, (end - first + pageSize - 1) / pageSize)
        var status = [Int32](repeating: 0, count: count)
        let chunk = 1 << 16
        var start = 0
        while start < count {
            let n = min(chunk, count - start)
            var pages: [UnsafeMutableRawPointer?] = (0..<n).map {
                UnsafeMutableRawPointer(bitPattern: first + (start + $0) * pageSize)
            }
            _ = try status.withUnsafeMutableBufferPointer { (buffer) throws(NUMAError) in
                try systemCall("move_pages") {
                    move_pages(0, UInt(n), &pages, nil, buffer.baseAddress! + start, 0)
                }
            }
            start += n
        }
        nodes = status
    }

    /// A placement already known, such as one read earlier or one to compute shares from.
    public init(pageSize: Int, nodes: [Int32]) {
        self.pageSize = pageSize
        self.nodes = nodes
    }

    /// The base page size of the system (sysconf(_SC_PAGESIZE)).
    public static let basePageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Pages per node; pages without a node (never touched, or an error) are left out.
    public var histogram: [Int: Int] {
        var result: [Int: Int] = [:]
        for node in nodes where node >= 0 { result[Int(node), default: 0] += 1 }
        return result
    }

    /// Pages with no node: never touched, or not queryable.
    public var unplaced: Int { nodes.count { $0 < 0 } }

    /// The node of the page holding byte `offset` of the range, or nil when it has none.
    public func node(atOffset offset: Int, from address: UnsafeRawPointer) -> Int? {
        let first = Int(bitPattern: address) & ~(pageSize - 1)
        let index = (Int(bitPattern: address) + offset - first) / pageSize
        guard index >= 0, index < nodes.count, nodes[index] >= 0 else { return nil }
        return Int(nodes[index])
    }
}
