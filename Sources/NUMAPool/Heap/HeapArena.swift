import CNuma
import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// One node's memory for `NUMAHeap`: a region bound to the node, cut into chunks of
/// `HeapArena.chunkBytes` (256 KiB).
///
/// - A chunk serves one size class at a time: its blocks lie at multiples of the class's size
///   from the chunk's start. When a class takes a chunk, every block of it is marked free (the
///   class's marker in its first word) and the class goes into `cacheOffsetOfChunk`, the
///   word per chunk that `deallocate` reads to find a block's class (as the offset of the
///   class's cache in a thread's heap cache: class × `NUMAHeap.classStride`) from its address.
/// - Blocks given back wait in their chunk's free list (linked through each block's second
///   word); blocks never handed out are taken in address order (`carved`).
/// - A chunk whose every block is back is free: it waits for reuse, and after the heap's decay
///   time (or at `trim()`) its pages go back to the kernel (`MADV_DONTNEED`). When a class or a
///   large run takes it again, its pages come back on this node, since the region is bound to it.
/// - An allocation over `SizeClasses.largest` takes a run of whole chunks of its own.
///
/// Everything but `cacheOffsetOfChunk` and the constants is guarded by one lock.
final class HeapArena: @unchecked Sendable {
    // @unchecked: `cacheOffsetOfChunk` is written under the lock, before any block of the chunk is
    // handed out, and read without it only for blocks a caller was handed (so after that
    // write); the rest is immutable or behind `state`.
    static var chunkShift: Int { NUMAHeap.chunkShift }
    static var chunkBytes: Int { 1 << chunkShift }

    let node: Int
    let base: UInt
    let chunkCount: Int
    private let region: MemoryRegion
    /// The topology the arena was made with: the memory policy is applied again under the
    /// arena's lock, where `Topology.current`, which takes a lock made earlier, must not be read.
    private let topology: Topology
    /// The class of each chunk, 0 when it holds no class (free, or part of a large run).
    let cacheOffsetOfChunk: UnsafeMutablePointer<UInt16>
    private let state: Locked<State>

    enum Kind: Equatable {
        /// Past the frontier: never used.
        case unused
        case free(since: ContinuousClock.Instant, returned: Bool)
        case small
        case largeHead(chunks: Int, bytes: Int)
        case largeTail
    }

    struct Chunk {
        var kind = Kind.unused
        /// Blocks out of the chunk: in thread caches or held by callers.
        var used = 0
        /// Blocks handed out at least once, in address order.
        var carved = 0
        /// The first block of the free list, 0 for none.
        var freeHead: UInt = 0
        var freeCount = 0
        /// Whether it is in its class's list of chunks with blocks to give.
        var listed = false
        /// Since when free blocks wait whose inner pages were not given back (classes of two
        /// pages or more), nil when none.
        var dirtySince: ContinuousClock.Instant?
        /// For classes of two pages or more (at most 32 blocks a chunk): the free blocks whose
        /// pages after the first went back to the kernel.
        var purged: UInt64 = 0
        /// For smaller classes: the chunk's pages (64 of 4 KiB) that hold only free blocks and
        /// went back to the kernel, `MarkerPages` mapped in their place. The blocks that touch
        /// them are free and in no list; they come back when the chunk runs out of others.
        var markerPages: UInt64 = 0
        /// Mappings of marker pages in the chunk.
        var markerMaps = 0
    }

    struct State {
        var chunks: [Chunk]
        /// Chunks at or past it were never used.
        var frontier = 0
        /// Free chunks below the frontier, the most recently freed last.
        var freeChunks: [Int] = []
        /// By class, chunks with blocks to give (free-listed or not yet carved).
        var available: [[Int]]
        var counters: HeapNodeStatistics
        /// Mappings of marker pages in the arena, at most `markerMapLimit` (each splits the
        /// region's mapping, of which a process may have 65,530).
        var markerMaps = 0
    }

    static let markerMapLimit = 4096

    init(node: Int, capacity: Int, strict: Bool, topology: Topology) throws(NUMAError) {
        self.node = node
        self.topology = topology
        let chunks = max(1, capacity >> Self.chunkShift)
        region = try MemoryRegion(size: chunks << Self.chunkShift, policy: strict ? .bind([node]) : .preferred(node),
                                  pages: .base, topology: topology)
        base = UInt(bitPattern: region.baseAddress)
        chunkCount = chunks
        cacheOffsetOfChunk = .allocate(capacity: chunks)
        cacheOffsetOfChunk.initialize(repeating: 0, count: chunks)
        var counters = HeapNodeStatistics()
        counters.bytesInUseByClass = [Int](repeating: 0, count: SizeClasses.count + 1)
        state = Locked(State(chunks: [Chunk](repeating: Chunk(), count: chunks),
                             available: [[Int]](repeating: [], count: SizeClasses.count + 1), counters: counters))
    }

    deinit { cacheOffsetOfChunk.deallocate() }

    /// The class of chunk `index`, 0 for none.
    func sizeClass(ofChunk index: Int) -> Int { Int(cacheOffsetOfChunk[index]) / NUMAHeap.classStride }

    private func setClass(_ sizeClass: Int, ofChunk index: Int) {
        cacheOffsetOfChunk[index] = UInt16(sizeClass * NUMAHeap.classStride)
    }

    var capacity: Int { chunkCount << Self.chunkShift }

    func contains(_ address: UInt) -> Bool { address &- base < UInt(capacity) }

    func chunkIndex(_ address: UInt) -> Int { Int((address &- base) >> UInt(Self.chunkShift)) }

    func chunkStart(_ index: Int) -> UInt { base + UInt(index << Self.chunkShift) }

    // MARK: Chunks

    /// A free chunk for a class or a run: the most recently freed, or the next never used.
    private func takeChunks(_ state: inout State, count: Int) -> Int? {
        if count == 1, let index = state.freeChunks.popLast() {
            reuse(&state, index)
            return index
        }
        if count > 1 {
            // A run of free chunks below the frontier, else at the frontier.
            var start = 0
            while start + count <= state.frontier {
                var length = 0
                while length < count, case .free = state.chunks[start + length].kind { length += 1 }
                if length == count {
                    let run = start..<(start + count)
                    state.freeChunks.removeAll { run.contains($0) }
                    for index in run { reuse(&state, index) }
                    return start
                }
                start += length + 1
            }
        }
        guard state.frontier + count <= chunkCount else { return nil }
        defer { state.frontier += count }
        return state.frontier
    }

    private func reuse(_ state: inout State, _ index: Int) {
        if case .free(_, true) = state.chunks[index].kind { state.counters.bytesReturned -= Self.chunkBytes }
        state.chunks[index] = Chunk()
    }

    /// Gives a chunk back to the free chunks.
    private func freeChunk(_ state: inout State, _ index: Int, now: ContinuousClock.Instant) {
        if state.chunks[index].markerPages != 0 {
            // Memory again in place of the marker pages, to be given back with the chunk.
            let pages = state.chunks[index].markerPages
            if restore(pages: pages, ofChunk: index) {
                state.counters.bytesReturned -= pages.nonzeroBitCount * PagePlacement.basePageSize
                state.markerMaps -= state.chunks[index].markerMaps
                state.chunks[index].markerPages = 0
                state.chunks[index].markerMaps = 0
            }
        }
        if state.chunks[index].purged != 0, case .small = state.chunks[index].kind {
            let size = SizeClasses.sizes[sizeClass(ofChunk: index)]
            state.counters.bytesReturned -= state.chunks[index].purged.nonzeroBitCount * Self.innerPages(size: size)
        }
        setClass(0, ofChunk: index)
        state.chunks[index] = Chunk(kind: .free(since: now, returned: false))
        state.freeChunks.append(index)
    }

    // MARK: Small blocks

    /// Moves up to `count` blocks of `sizeClass` into `out`; returns how many, and how many of
    /// them were never handed out before. Fewer than asked (0) only when the arena has no room.
    func take(_ count: Int, of sizeClass: Int, marker: UInt64,
              into out: UnsafeMutablePointer<UnsafeMutableRawPointer>) -> Int {
        let size = SizeClasses.sizes[sizeClass]
        let perChunk = Self.chunkBytes / size
        return state.withLock { state in
            var taken = 0
            while taken < count {
                var index = state.available[sizeClass].last ?? -1
                if index < 0 {
                    guard let fresh = takeChunks(&state, count: 1) else { break }
                    index = fresh
                    state.chunks[index].kind = .small
                    state.chunks[index].listed = true
                    state.available[sizeClass].append(index)
                    state.counters.bytesInChunks += Self.chunkBytes
                    // Every block carries the marker until it is handed out (see BlockGuard).
                    let start = chunkStart(index)
                    var block = 0
                    while block < perChunk {
                        UnsafeMutableRawPointer(bitPattern: start + UInt(block * size))!.storeBytes(of: marker, as: UInt64.self)
                        block += 1
                    }
                    setClass(sizeClass, ofChunk: index)
                }
                var chunk = state.chunks[index]
                let before = taken
                while taken < count && chunk.freeCount > 0 {
                    let block = UnsafeMutableRawPointer(bitPattern: chunk.freeHead)!
                    chunk.freeHead = block.load(fromByteOffset: 8, as: UInt.self)
                    chunk.freeCount -= 1
                    if chunk.purged != 0 {
                        let bit = UInt64(1) << UInt64((UInt(bitPattern: block) - chunkStart(index)) / UInt(size))
                        if chunk.purged & bit != 0 {
                            chunk.purged &= ~bit
                            state.counters.bytesReturned -= Self.innerPages(size: size)
                        }
                    }
                    out[taken] = block
                    taken += 1
                }
                while taken < count && chunk.carved < perChunk {
                    out[taken] = UnsafeMutableRawPointer(bitPattern: chunkStart(index) + UInt(chunk.carved * size))!
                    chunk.carved += 1
                    taken += 1
                }
                chunk.used += taken - before
                if taken < count && chunk.markerPages != 0 {
                    // The blocks behind marker pages come back: memory again, marked, listed.
                    state.chunks[index] = chunk
                    bringBack(&state, index, size: size, marker: marker)
                    continue
                }
                if chunk.freeCount == 0 && chunk.carved == perChunk {
                    chunk.listed = false
                    state.available[sizeClass].removeLast()
                }
                state.chunks[index] = chunk
            }
            state.counters.bytesOut += taken * size
            state.counters.bytesInUseByClass[sizeClass] += taken * size
            return taken
        }
    }

    /// Gives blocks of this arena back (already marked free). `remote` counts blocks sent home
    /// by a thread on another node.
    func give(_ blocks: UnsafeBufferPointer<UnsafeMutableRawPointer>, remote: Bool) {
        guard !blocks.isEmpty else { return }
        let now = ContinuousClock.now
        state.withLock { state in
            var i = 0
            while i < blocks.count {
                let block = blocks[i]
                i += 1
                let index = chunkIndex(UInt(bitPattern: block))
                let sizeClass = sizeClass(ofChunk: index)
                let size = SizeClasses.sizes[sizeClass]
                state.counters.bytesOut -= size
                state.counters.bytesInUseByClass[sizeClass] -= size
                var chunk = state.chunks[index]
                chunk.used -= 1
                if chunk.used == 0 {
                    if chunk.listed, let at = state.available[sizeClass].lastIndex(of: index) {
                        state.available[sizeClass].remove(at: at)
                    }
                    state.counters.bytesInChunks -= Self.chunkBytes
                    freeChunk(&state, index, now: now)
                    continue
                }
                block.storeBytes(of: chunk.freeHead, toByteOffset: 8, as: UInt.self)
                chunk.freeHead = UInt(bitPattern: block)
                chunk.freeCount += 1
                if chunk.dirtySince == nil { chunk.dirtySince = now }
                if !chunk.listed {
                    chunk.listed = true
                    state.available[sizeClass].append(index)
                }
                state.chunks[index] = chunk
            }
            if remote { state.counters.remoteFrees += UInt64(blocks.count) }
        }
    }

    // MARK: Large runs

    /// A run of whole chunks for `bytes` (over `SizeClasses.largest`), or nil when the arena has
    /// no such run.
    func takeLarge(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let count = (bytes + Self.chunkBytes - 1) >> Self.chunkShift
        return state.withLock { state in
            guard let start = takeChunks(&state, count: count) else { return nil }
            state.chunks[start].kind = .largeHead(chunks: count, bytes: bytes)
            for index in (start + 1)..<(start + count) { state.chunks[index].kind = .largeTail }
            state.counters.bytesInChunks += count * Self.chunkBytes
            state.counters.bytesOut += count * Self.chunkBytes
            state.counters.bytesInUseByClass[0] += count * Self.chunkBytes
            return UnsafeMutableRawPointer(bitPattern: chunkStart(start))!
        }
    }

    /// What the arena knows of an address in a chunk of no class: the bytes of the large run
    /// that starts there, or why it is not one.
    enum LargeLookup {
        case run(chunks: Int)
        case inside(start: UInt)
        case notHandedOut
    }

    func lookupLarge(_ address: UInt) -> LargeLookup {
        state.withLock { state in
            var index = chunkIndex(address)
            switch state.chunks[index].kind {
            case .largeHead(let chunks, _):
                return address == chunkStart(index) ? .run(chunks: chunks) : .inside(start: chunkStart(index))
            case .largeTail:
                while index > 0, case .largeTail = state.chunks[index].kind { index -= 1 }
                return .inside(start: chunkStart(index))
            default:
                return .notHandedOut
            }
        }
    }

    /// Gives back the large run at `address`; false when it is not the start of a live run
    /// (the caller stops the program).
    func giveLarge(_ address: UInt) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { state in
            let start = chunkIndex(address)
            guard address == chunkStart(start), case .largeHead(let count, _) = state.chunks[start].kind else { return false }
            for index in start..<(start + count) { freeChunk(&state, index, now: now) }
            state.counters.bytesInChunks -= count * Self.chunkBytes
            state.counters.bytesOut -= count * Self.chunkBytes
            state.counters.bytesInUseByClass[0] -= count * Self.chunkBytes
            return true
        }
    }

    // MARK: Giving memory back

    /// Bytes of a block of `size` after its first page, in whole pages: what can go back to the
    /// kernel while the block is free (its first page keeps the marker and the free list's
    /// link); 0 below two pages.
    static func innerPages(size: Int) -> Int {
        let page = PagePlacement.basePageSize
        return size >= 2 * page && size % page == 0 ? size - page : 0
    }

    /// Maps fresh memory over `pages` of chunk `index` (in place of marker pages), under the
    /// region's policy. False if the system refused (the pages stay as they are).
    private func restore(pages: UInt64, ofChunk index: Int) -> Bool {
        let page = PagePlacement.basePageSize
        for run in Self.runs(pages) {
            let address = UnsafeMutableRawPointer(bitPattern: chunkStart(index) + UInt(run.lowerBound * page))!
            guard CNuma_map_anonymous_fixed(address, run.count * page) == 0 else { return false }
            madvise(address, run.count * page, MADV_NOHUGEPAGE)
            try? region.policy?.apply(to: address, length: run.count * page, topology: topology)
        }
        return true
    }

    /// The runs of set bits of `pages`, as page ranges.
    static func runs(_ pages: UInt64) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var page = 0
        while page < 64 {
            guard pages & (1 << UInt64(page)) != 0 else {
                page += 1
                continue
            }
            let start = page
            while page < 64 && pages & (1 << UInt64(page)) != 0 { page += 1 }
            runs.append(start..<page)
        }
        return runs
    }

    /// The pages of chunk `index` that the block at `offset` of `size` bytes touches.
    private static func pages(ofBlockAt offset: Int, size: Int) -> UInt64 {
        let page = PagePlacement.basePageSize
        let first = offset / page, last = (offset + size - 1) / page
        return (last - first == 63 ? ~0 : (UInt64(1) << UInt64(last - first + 1)) - 1) << UInt64(first)
    }

    /// Brings back the blocks behind chunk `index`'s marker pages: fresh memory over them,
    /// each block marked free and listed.
    private func bringBack(_ state: inout State, _ index: Int, size: Int, marker: UInt64) {
        var chunk = state.chunks[index]
        let pages = chunk.markerPages
        guard restore(pages: pages, ofChunk: index) else {
            // Not even fresh memory: the blocks stay away; the chunk has nothing more to give.
            chunk.markerPages = 0
            state.chunks[index] = chunk
            return
        }
        let start = chunkStart(index)
        for block in 0..<(Self.chunkBytes / size) where Self.pages(ofBlockAt: block * size, size: size) & pages != 0 {
            let address = UnsafeMutableRawPointer(bitPattern: start + UInt(block * size))!
            address.storeBytes(of: marker, as: UInt64.self)
            address.storeBytes(of: chunk.freeHead, toByteOffset: 8, as: UInt.self)
            chunk.freeHead = UInt(bitPattern: address)
            chunk.freeCount += 1
        }
        state.counters.bytesReturned -= pages.nonzeroBitCount * PagePlacement.basePageSize
        state.markerMaps -= chunk.markerMaps
        chunk.markerPages = 0
        chunk.markerMaps = 0
        state.chunks[index] = chunk
    }

    /// Gives back the pages of chunk `index` (of a class under two pages) that hold only free
    /// blocks, mapping `markers`' pages in their place; its free list keeps the free blocks
    /// that touch no such page. Returns the bytes given back.
    private func releasePages(_ state: inout State, _ index: Int, size: Int, markers: MarkerPages, marker: UInt64) -> Int {
        var chunk = state.chunks[index]
        let perChunk = Self.chunkBytes / size
        guard let offset = markers.offset(of: sizeClass(ofChunk: index), marker: marker) else { return 0 }
        var free = [Bool](repeating: false, count: perChunk)
        var block = chunk.freeHead
        while block != 0 {
            free[Int((block - chunkStart(index)) / UInt(size))] = true
            block = UnsafeRawPointer(bitPattern: block)!.load(fromByteOffset: 8, as: UInt.self)
        }
        for i in chunk.carved..<perChunk { free[i] = true }
        var busy: UInt64 = 0
        for i in 0..<perChunk where !free[i] { busy |= Self.pages(ofBlockAt: i * size, size: size) }
        let candidates = ~busy & ~chunk.markerPages
        guard candidates != 0 else { return 0 }
        let page = PagePlacement.basePageSize
        var mapped: UInt64 = 0
        for run in Self.runs(candidates) {
            guard state.markerMaps < Self.markerMapLimit else { break }
            var first = run.lowerBound
            while first < run.upperBound && state.markerMaps < Self.markerMapLimit {
                let count = min(MarkerPages.pagesPerKind, run.upperBound - first)
                let address = UnsafeMutableRawPointer(bitPattern: chunkStart(index) + UInt(first * page))!
                guard CNuma_map_file_fixed(address, count * page, markers.fd, offset) == 0 else { break }
                mapped |= ((count == 64 ? ~0 : (UInt64(1) << UInt64(count)) - 1) << UInt64(first))
                state.markerMaps += 1
                chunk.markerMaps += 1
                first += count
            }
        }
        guard mapped != 0 else { return 0 }
        chunk.markerPages |= mapped
        // The free list keeps the free blocks clear of marker pages (those stay where they are).
        chunk.freeHead = 0
        chunk.freeCount = 0
        for i in stride(from: perChunk - 1, through: 0, by: -1)
        where free[i] && Self.pages(ofBlockAt: i * size, size: size) & chunk.markerPages == 0 {
            let address = UnsafeMutableRawPointer(bitPattern: chunkStart(index) + UInt(i * size))!
            if i >= chunk.carved { address.storeBytes(of: marker, as: UInt64.self) }
            address.storeBytes(of: chunk.freeHead, toByteOffset: 8, as: UInt.self)
            chunk.freeHead = UInt(bitPattern: address)
            chunk.freeCount += 1
        }
        chunk.carved = perChunk
        state.chunks[index] = chunk
        let bytes = mapped.nonzeroBitCount * page
        return bytes
    }

    /// Gives the pages of every free chunk that has been free for `decay` (all of them for
    /// nil) back to the kernel; and, in chunks with free blocks that waited as long, the pages
    /// after the first of free blocks of two pages or more, and the pages of smaller classes
    /// that hold only free blocks (`MarkerPages` mapped in their place, when `markers` is
    /// given). Returns the bytes given back.
    @discardableResult
    func release(freeFor decay: Duration?, markers: MarkerPages? = nil, marker: (Int) -> UInt64 = { _ in 0 }) -> Int {
        let now = ContinuousClock.now
        return state.withLock { state in
            var released = 0
            for index in 0..<state.frontier {
                guard case .small = state.chunks[index].kind, let since = state.chunks[index].dirtySince else { continue }
                if let decay, now - since < decay { continue }
                let size = SizeClasses.sizes[sizeClass(ofChunk: index)]
                let inner = Self.innerPages(size: size)
                if inner == 0 {
                    if let markers {
                        released += releasePages(&state, index, size: size, markers: markers,
                                                 marker: marker(sizeClass(ofChunk: index)))
                    }
                    state.chunks[index].dirtySince = nil
                    continue
                }
                var chunk = state.chunks[index]
                var block = chunk.freeHead
                while block != 0 {
                    let bit = UInt64(1) << UInt64((block - chunkStart(index)) / UInt(size))
                    if chunk.purged & bit == 0 {
                        region.release(offset: Int(block - base) + PagePlacement.basePageSize, length: inner)
                        chunk.purged |= bit
                        released += inner
                    }
                    block = UnsafeRawPointer(bitPattern: block)!.load(fromByteOffset: 8, as: UInt.self)
                }
                chunk.dirtySince = nil
                state.chunks[index] = chunk
            }
            for index in state.freeChunks {
                guard case .free(let since, false) = state.chunks[index].kind else { continue }
                if let decay, now - since < decay { continue }
                region.release(offset: index << Self.chunkShift, length: Self.chunkBytes)
                state.chunks[index].kind = .free(since: since, returned: true)
                released += Self.chunkBytes
            }
            state.counters.bytesReturned += released
            let pages = UInt64(released / PagePlacement.basePageSize)
            if decay == nil { state.counters.pagesTrimmed += pages } else { state.counters.pagesDecayed += pages }
            return released
        }
    }

    func countExhausted() { state.withLock { $0.counters.exhausted += 1 } }

    // MARK: Statistics

    /// This node's figures: what the arena counts, free bytes in its chunks, and the resident
    /// bytes of its region (mincore(2)).
    func snapshot() -> HeapNodeStatistics {
        let counters = state.withLock { state in
            var counters = state.counters
            var free = 0
            for index in 0..<state.frontier {
                let chunk = state.chunks[index]
                switch chunk.kind {
                case .small:
                    let size = SizeClasses.sizes[sizeClass(ofChunk: index)]
                    free += (chunk.freeCount + Self.chunkBytes / size - chunk.carved) * size
                        - chunk.purged.nonzeroBitCount * Self.innerPages(size: size)
                case .free(_, false): free += Self.chunkBytes
                default: break
                }
            }
            counters.bytesFree = free
            counters.frontierBytes = state.frontier << Self.chunkShift
            // Marker pages are the file's, resident once for every mapping: not this arena's.
            counters.bytesResident = residentBytes(length: counters.frontierBytes) { index in state.chunks[index].markerPages }
            return counters
        }
        return counters
    }

    /// Resident bytes of the region's first `length` bytes (mincore(2)), leaving out each
    /// chunk's pages in `excluded`.
    private func residentBytes(length: Int, excluded: (Int) -> UInt64) -> Int {
        guard length > 0 else { return 0 }
        let page = PagePlacement.basePageSize
        var vector = [UInt8](repeating: 0, count: (length + page - 1) / page)
        guard mincore(region.baseAddress, length, &vector) == 0 else { return 0 }
        let pagesPerChunk = Self.chunkBytes / page
        var resident = 0
        for (index, value) in vector.enumerated() where value & 1 != 0 {
            let chunk = index / pagesPerChunk
            if excluded(chunk) & (1 << UInt64(index % pagesPerChunk)) == 0 { resident += 1 }
        }
        return resident * page
    }
}
