import Atomics
import CNuma
import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// The pages of a pool's region that hold only free blocks and went back to the kernel, with
/// `MarkerPages` mapped in their place (so a free block there still reads as free, and a double
/// free of one is still caught). The owner keeps this under its lock.
///
/// A free block that touches such a page is held here, out of the owner's free list: handing it
/// out would write to a read-only page. `restore` maps fresh memory back over every released
/// page, under the policy each range had (get_mempolicy(2), then mbind(2)), and returns the held
/// blocks, marked free again, to the owner's free list.
///
/// Only regions of base pages take part: a page of a huge-page region cannot be given back alone.
struct ReleasedPages {
    /// At most this many marker mappings per region, and `processMapLimit` over every pool's
    /// regions together: each splits its region's mapping, and a process may have about 65,000
    /// (vm.max_map_count), malloc's and the threads' stacks included.
    static let mapLimit = 4096
    static let processMapLimit = 16384
    /// Marker mappings of every pool's regions now.
    static let processMaps = ManagedAtomic<Int>(0)
    /// One bit per page of the region: set where marker pages stand.
    private var bits: [UInt64] = []
    /// Each marker mapping: its first page, its pages, and the policy its memory had.
    private var mappings: [(page: Int, count: Int, policy: MemoryPolicy?)] = []
    private(set) var pageCount = 0

    var isEmpty: Bool { pageCount == 0 }

    private func isReleased(_ page: Int) -> Bool {
        page / 64 < bits.count && bits[page / 64] & (1 << UInt64(page % 64)) != 0
    }

    /// Whether the block at `index` touches a released page.
    func holds(block index: Int, blockSize: Int) -> Bool {
        guard pageCount > 0 else { return false }
        let page = PagePlacement.basePageSize
        let first = index * blockSize / page, last = ((index + 1) * blockSize - 1) / page
        for p in first...last where isReleased(p) { return true }
        return false
    }

    /// The number of blocks below which every released page lies: a trim of the region's free
    /// top must keep them (their pages are marker pages, which a fresh block could not be
    /// written to).
    func blocksBelowReleased(blockSize: Int) -> Int {
        guard let last = mappings.map({ $0.page + $0.count }).max() else { return 0 }
        return (last * PagePlacement.basePageSize + blockSize - 1) / blockSize
    }

    /// Gives back the pages among the first `carved` blocks of the region at `base` that only
    /// free blocks touch (`free[i]` for a block in the owner's free list, or one this holds;
    /// pages reaching past `carved` blocks stay), mapping the marker pages at `markers` (a
    /// `MarkerPages` file and the offset of the owner's kind, found before the owner took its
    /// lock: `MarkerPages` has a lock of its own) in their place. Returns the bytes given back;
    /// the owner then drops from its free list every block that `holds`.
    mutating func release(base: UInt, blockSize: Int, free: [Bool], carved: Int,
                          markers: (fd: Int32, offset: Int)) -> Int {
        let page = PagePlacement.basePageSize
        let pages = carved * blockSize / page  // whole pages below the never-carved blocks
        guard pages > 0, mappings.count < Self.mapLimit else { return 0 }
        /// Takes one mapping from the process's budget; false when it is spent.
        func claimMap() -> Bool {
            guard Self.processMaps.wrappingIncrementThenLoad(ordering: .relaxed) <= Self.processMapLimit else {
                Self.processMaps.wrappingDecrement(ordering: .relaxed)
                return false
            }
            return true
        }
        var busy = [Bool](repeating: false, count: pages)
        for index in 0..<carved where !free[index] && !holds(block: index, blockSize: blockSize) {
            let first = index * blockSize / page, last = ((index + 1) * blockSize - 1) / page
            var p = first
            while p <= last && p < pages {
                busy[p] = true
                p += 1
            }
        }
        if bits.count < (pages + 63) / 64 { bits += [UInt64](repeating: 0, count: (pages + 63) / 64 - bits.count) }
        var released = 0
        var p = 0
        while p < pages && mappings.count < Self.mapLimit {
            guard !busy[p] && !isReleased(p) else {
                p += 1
                continue
            }
            var end = p
            while end < pages && end - p < MarkerPages.pagesPerKind && !busy[end] && !isReleased(end) { end += 1 }
            guard claimMap() else { break }
            let address = UnsafeMutableRawPointer(bitPattern: base + UInt(p * page))!
            let policy = try? MemoryPolicy.policy(at: address)
            guard CNuma_map_file_fixed(address, (end - p) * page, markers.fd, markers.offset) == 0 else {
                Self.processMaps.wrappingDecrement(ordering: .relaxed)
                break
            }
            for q in p..<end { bits[q / 64] |= 1 << UInt64(q % 64) }
            mappings.append((p, end - p, policy == .local ? nil : policy))
            released += end - p
            p = end
        }
        pageCount += released
        return released * page
    }

    /// Maps fresh memory over every released page, under the policy it had before (mbind(2);
    /// `topology` checks the nodes, so that a caller under a lock need not read
    /// `Topology.current`), and calls `body` with each block that no longer touches a released
    /// page, after writing `marker` into it. Returns the bytes that came back. A mapping the
    /// system refuses stays released, with its blocks held.
    @discardableResult
    mutating func restore(base: UInt, blockSize: Int, topology: Topology, marker: UInt64,
                          _ body: (UnsafeMutableRawPointer) -> Void) -> Int {
        let page = PagePlacement.basePageSize
        let restored = remap(base: base, topology: topology)
        // Every block touching a released page was free when its page went: it is free again.
        var next = 0
        for mapping in restored {
            var index = max(next, mapping.page * page / blockSize)
            let last = ((mapping.page + mapping.count) * page - 1) / blockSize
            while index <= last {
                if !holds(block: index, blockSize: blockSize) {
                    let block = UnsafeMutableRawPointer(bitPattern: base + UInt(index * blockSize))!
                    block.storeBytes(of: marker, as: UInt64.self)
                    body(block)
                }
                index += 1
            }
            next = max(next, last + 1)
        }
        return restored.reduce(0) { $0 + $1.count } * page
    }

    /// Maps fresh memory over every released page (the policy it had, mbind(2)); returns the
    /// mappings that came back. Those the system refuses stay released.
    private mutating func remap(base: UInt, topology: Topology) -> [(page: Int, count: Int, policy: MemoryPolicy?)] {
        guard pageCount > 0 else { return [] }
        let page = PagePlacement.basePageSize
        var restored: [(page: Int, count: Int, policy: MemoryPolicy?)] = []
        var kept: [(page: Int, count: Int, policy: MemoryPolicy?)] = []
        for mapping in mappings.sorted(by: { $0.page < $1.page }) {
            let address = UnsafeMutableRawPointer(bitPattern: base + UInt(mapping.page * page))!
            guard CNuma_map_anonymous_fixed(address, mapping.count * page) == 0 else {
                kept.append(mapping)
                continue
            }
            madvise(address, mapping.count * page, MADV_NOHUGEPAGE)
            try? mapping.policy?.apply(to: address, length: mapping.count * page, topology: topology)
            restored.append(mapping)
            Self.processMaps.wrappingDecrement(ordering: .relaxed)
        }
        mappings = kept
        bits = [UInt64](repeating: 0, count: bits.count)
        for mapping in kept {
            for q in mapping.page..<(mapping.page + mapping.count) { bits[q / 64] |= 1 << UInt64(q % 64) }
        }
        pageCount = kept.reduce(0) { $0 + $1.count }
        return restored
    }

    /// Maps fresh memory over every released page, as `restore` does, without touching it:
    /// for an owner about to give back everything (the blocks there become never handed out).
    /// Returns the bytes no longer released; a mapping the system refuses stays released.
    @discardableResult
    mutating func discard(base: UInt, topology: Topology) -> Int {
        remap(base: base, topology: topology).reduce(0) { $0 + $1.count } * PagePlacement.basePageSize
    }

    /// Gives the process's budget back for every mapping still here: for an owner whose
    /// region is about to be unmapped whole.
    mutating func forget() {
        Self.processMaps.wrappingDecrement(by: mappings.count, ordering: .relaxed)
        mappings = []
        bits = []
        pageCount = 0
    }
}
