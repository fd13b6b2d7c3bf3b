#if canImport(Glibc)
import Glibc
#endif

/// Anonymous memory that this value owns: mmap(2) on creation, mbind(2) to a policy, and
/// munmap(2) in `deinit`. It cannot be copied, so it is freed exactly once.
///
/// The bytes are reached through `withUnsafeMutableBytes`; what threads do with them is up to
/// the caller.
public struct MemoryRegion: ~Copyable, @unchecked Sendable {
    // @unchecked: the mapping is owned by this one value (it cannot be copied) and its
    // address never changes; sharing the bytes across threads is the caller's concern.

    /// The first usable byte, aligned to the page mode's granule.
    public let baseAddress: UnsafeMutableRawPointer
    /// Usable bytes: the requested size rounded up to whole pages.
    public let size: Int
    /// The page mode it was mapped with.
    public let pageMode: PageMode
    /// The policy applied with mbind(2), or nil when the thread's policy governs.
    public let policy: MemoryPolicy?
    private let mapping: UnsafeMutableRawPointer
    private let mappingLength: Int

    /// Maps `size` bytes with `pages` and applies `policy` before any page is touched.
    ///
    /// Throws when the size is not positive, exceeds the memory of the nodes it may use, the
    /// policy names a bad node, or mmap(2), madvise(2) or mbind(2) fail.
    public init(size: Int, policy: MemoryPolicy? = nil, pages: PageMode = .base,
                topology: Topology = .current) throws(NUMAError) {
        guard size > 0 else {
            throw NUMAError(operation: "mmap", errno: EINVAL, message: "size must be positive, got \(size)")
        }
        if let policy { try policy.validate(in: topology, operation: "mbind") }
        let limitNodes = policy.map { $0 == .local ? topology.allowedNodes : $0.nodes } ?? topology.allowedNodes
        let capacity = limitNodes.reduce(UInt64(0)) { $0 + (topology.node($1)?.memoryTotal ?? 0) }
        guard UInt64(size) <= capacity else {
            throw NUMAError(operation: "mmap", errno: ENOMEM,
                            message: "size \(size) bytes exceeds the \(capacity) bytes of memory on nodes \(limitNodes)")
        }
        let granule = pages.placementGranule
        let rounded = (size + granule - 1) / granule * granule
        var flags = MAP_PRIVATE | MAP_ANONYMOUS
        var length = rounded
        if let huge = pages.hugetlbSize {
            let needed = rounded / huge
            let free = pages.freeHugePages ?? 0
            guard free >= needed else {
                throw NUMAError(operation: "mmap", errno: ENOMEM,
                                message: "\(needed) free \(pages.rawValue) huge pages needed, \(free) free (see /proc/sys/vm/nr_hugepages)")
            }
            flags |= MAP_HUGETLB | Int32((huge == 1 << 30 ? 30 : 21) << MAP_HUGE_SHIFT)
        } else if pages == .transparentHuge {
            length += granule
        }
        let raw = mmap(nil, length, PROT_READ | PROT_WRITE, flags, -1, 0)
        guard let raw, raw != MAP_FAILED else {
            throw NUMAError(operation: "mmap", errno: Glibc.errno)
        }
        let aligned = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: raw) + granule - 1) & ~(granule - 1))!
        let base = pages.hugetlbSize == nil ? aligned : raw
        do {
            switch pages {
            case .base: try systemCall("madvise") { madvise(base, rounded, MADV_NOHUGEPAGE) }
            case .transparentHuge: try systemCall("madvise") { madvise(base, rounded, MADV_HUGEPAGE) }
            case .huge2M, .huge1G: break
            }
            try policy?.apply(to: base, length: rounded)
        } catch {
            munmap(raw, length)
            throw error
        }
        mapping = raw
        mappingLength = length
        baseAddress = base
        self.size = rounded
        pageMode = pages
        self.policy = policy
    }

    deinit {
        munmap(mapping, mappingLength)
    }

    /// Touches every page from the calling thread, so first-touch placement happens here and
    /// now rather than during later use.
    public func faultIn() {
        faultIn(offset: 0, length: size)
    }

    /// Touches the pages of `[offset, offset + length)` from the calling thread:
    /// `MADV_POPULATE_WRITE` (Linux 5.14) where the kernel has it, one write per page otherwise.
    public func faultIn(offset: Int, length: Int) {
        let step = PagePlacement.basePageSize
        let start = offset & ~(step - 1)
        let end = min(size, offset + length)
        guard end > start else { return }
        Self.faultIn(address: baseAddress + start, length: end - start)
    }

    /// Touches the pages of `[address, address + length)`, page-aligned memory of a mapping,
    /// from the calling thread, as `faultIn(offset:length:)` does.
    public static func faultIn(address: UnsafeMutableRawPointer, length: Int) {
        guard length > 0 else { return }
        if madvise(address, length, MADV_POPULATE_WRITE) == 0 { return }
        let step = PagePlacement.basePageSize
        var page = 0
        while page < length {
            let pointer = (address + page).assumingMemoryBound(to: UInt8.self)
            pointer.pointee = pointer.pointee
            page += step
        }
    }

    /// Gives the pages of `[offset, offset + length)` back to the kernel (`MADV_DONTNEED`);
    /// they read as zero and are placed again by the policy when next touched.
    public func release(offset: Int, length: Int) {
        let step = PagePlacement.basePageSize
        let start = (offset + step - 1) & ~(step - 1)
        let end = min(size, offset + length) & ~(step - 1)
        if end > start { madvise(baseAddress + start, end - start, MADV_DONTNEED) }
    }

    /// Whether `pointer` lies inside the region.
    public func contains(_ pointer: UnsafeRawPointer) -> Bool {
        let address = Int(bitPattern: pointer), base = Int(bitPattern: baseAddress)
        return address >= base && address < base + size
    }

    /// Calls `body` with the region's bytes, writable; the buffer must not escape `body`.
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: baseAddress, count: size))
    }

    /// Calls `body` with the region's bytes, read-only; the buffer must not escape `body`.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: baseAddress, count: size))
    }

    /// The node of every base page (move_pages(2) with NULL nodes).
    public func pageNodes() throws(NUMAError) -> PagePlacement {
        try PagePlacement(address: baseAddress, length: size)
    }

    /// Pages per node.
    public func nodeHistogram() throws(NUMAError) -> [Int: Int] {
        try pageNodes().histogram
    }

    /// Moves the pages to `nodes` and keeps them there: mbind(2) with `MPOL_BIND` and
    /// `MPOL_MF_MOVE`.
    public func migrate(to nodes: NodeSet) throws(NUMAError) {
        try MemoryPolicy.bind(nodes).apply(to: baseAddress, length: size, move: true)
    }
}
