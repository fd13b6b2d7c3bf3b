import NUMA

/// One node's memory for `LocalPool`: a region bound to the node, carved into blocks in chunks.
/// A chunk is faulted in by the thread that grows the arena, which runs on the arena's node.
final class Arena: Sendable {
    let node: Int
    let blockSize: Int
    let capacity: Int
    let chunkBytes: Int
    let base: UInt
    private let region: MemoryRegion
    private let state = Locked(State())

    struct State {
        /// Addresses of returned blocks, ready for reuse.
        var free: [UInt] = []
        /// Bytes carved into blocks so far.
        var carved = 0
        /// Bytes faulted in so far.
        var faulted = 0
        var stats = NodeStatistics()
        var outstanding = 0
        var peakOutstanding = 0
    }

    init(node: Int, blockSize: Int, capacity: Int, strict: Bool, pages: PageMode, topology: Topology) throws(NUMAError) {
        self.node = node
        self.blockSize = blockSize
        region = try MemoryRegion(size: capacity, policy: strict ? .bind([node]) : .preferred(node), pages: pages,
                                  topology: topology)
        self.capacity = region.size / blockSize * blockSize
        base = UInt(bitPattern: region.baseAddress)
        chunkBytes = max(64 << 10, blockSize * 64)
    }

    /// Takes up to `count` blocks into `out`. Returns how many of them are fresh (never
    /// handed out before); they come first in `out`. Returns nil when the arena is full.
    func take(_ count: Int, into out: inout [UnsafeMutableRawPointer]) -> Int? {
        let (fresh, faultRange): (Int?, Range<Int>?) = state.withLock { state in
            var fresh = 0
            var range: Range<Int>?
            let reused = min(count, state.free.count)
            let wanted = count - reused
            if wanted > 0 && state.carved < capacity {
                let bytes = min(capacity - state.carved, max(wanted * blockSize, 0))
                let blocks = bytes / blockSize
                for i in 0..<blocks {
                    out.append(region.baseAddress + state.carved + i * blockSize)
                }
                let end = state.carved + blocks * blockSize
                if end > state.faulted {
                    let target = min(capacity, max(end, state.faulted + chunkBytes))
                    range = state.faulted..<target
                    state.stats.bytesReserved += target - state.faulted
                    state.faulted = target
                }
                state.carved = end
                fresh = blocks
            }
            if reused > 0 {
                for address in state.free.suffix(reused) { out.append(UnsafeMutableRawPointer(bitPattern: address)!) }
                state.free.removeLast(reused)
            }
            let taken = fresh + reused
            guard taken > 0 else {
                state.stats.exhausted += 1
                return (nil, nil)
            }
            state.stats.gets += UInt64(taken)
            state.outstanding += taken
            state.peakOutstanding = max(state.peakOutstanding, state.outstanding)
            return (fresh, range)
        }
        // Faulting runs outside the lock, on the calling thread: the arena's own node.
        if let faultRange { region.faultIn(offset: faultRange.lowerBound, length: faultRange.count) }
        return fresh
    }

    /// Gives blocks back. `remote` marks blocks sent home by a thread on another node.
    func give<C: Collection<UnsafeMutableRawPointer>>(_ blocks: C, remote: Bool) {
        guard !blocks.isEmpty else { return }
        let addresses = blocks.map { UInt(bitPattern: $0) }
        state.withLock { state in
            state.free.append(contentsOf: addresses)
            state.stats.puts += UInt64(addresses.count)
            if remote { state.stats.remoteReturns += UInt64(addresses.count) }
            state.outstanding -= addresses.count
        }
    }

    /// When nothing is handed out, gives every faulted page back to the kernel and starts over.
    func trim() {
        state.withLock { state in
            guard state.outstanding == 0, state.faulted > 0 else { return }
            region.release(offset: 0, length: state.faulted)
            state.stats.bytesReserved -= state.faulted
            state.free.removeAll(keepingCapacity: false)
            state.carved = 0
            state.faulted = 0
        }
    }

    func snapshot() -> (NodeStatistics, peak: Int) {
        state.withLock { state in
            var stats = state.stats
            stats.bytesOutstanding = state.outstanding * blockSize
            return (stats, state.peakOutstanding * blockSize)
        }
    }
}
