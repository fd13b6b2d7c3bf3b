import NUMA

/// Which of a set of per-node arenas serves a thread, and where one falls back: what
/// `LocalPool` and `NUMAHeap` share.
struct ArenaRouting: Sendable {
    /// The arena index for each CPU id: its node's, or the first in that node's fallback order.
    let arenaOfCPU: [Int]
    /// For each arena, the other arenas in fallback order (`Topology.fallbackOrder`: the
    /// fastest memory tier first, then by distance).
    let fallbackOrder: [[Int]]

    /// Routing for arenas on `arenaNodes`, in that order.
    init(arenaNodes: [Int], topology: Topology) {
        func nearest(to node: Int) -> [Int] {
            topology.fallbackOrder(arenaNodes, from: node).compactMap { arenaNodes.firstIndex(of: $0) }
        }
        arenaOfCPU = topology.cpuToNode.map { node in node < 0 ? 0 : nearest(to: node).first ?? 0 }
        fallbackOrder = arenaNodes.map { node in nearest(to: node).filter { arenaNodes[$0] != node } }
    }

    /// The arena of the node the calling thread runs on (getcpu(3)).
    func currentArena() -> Int {
        let cpu = Topology.currentCPU().cpu
        return cpu >= 0 && cpu < arenaOfCPU.count ? arenaOfCPU[cpu] : 0
    }
}

/// Blocks of other arenas that a thread's cache collects before it sends them home, in plain
/// memory after the cache: per arena a count, then per arena `batch` blocks. `LocalPool`'s
/// caches and the heap's keep them the same way.
struct HomeBatches {
    /// Blocks an arena's batch holds before it goes home.
    static let batch = 32

    let memory: UnsafeMutableRawPointer
    let arenas: Int

    /// Bytes of the batches of `arenas` arenas.
    static func bytes(arenas: Int) -> Int { arenas * 8 + arenas * batch * 8 }

    /// Binds zeroed `memory` to the batches' types.
    static func bind(_ memory: UnsafeMutableRawPointer, arenas: Int) {
        memory.bindMemory(to: Int.self, capacity: arenas)
        (memory + arenas * 8).bindMemory(to: UnsafeMutableRawPointer.self, capacity: arenas * batch)
    }

    /// How many blocks wait for `arena`.
    func count(_ arena: Int) -> UnsafeMutablePointer<Int> { (memory + arena * 8).assumingMemoryBound(to: Int.self) }

    /// The blocks waiting for `arena`.
    func blocks(_ arena: Int) -> UnsafeMutablePointer<UnsafeMutableRawPointer> {
        (memory + arenas * 8 + arena * Self.batch * 8).assumingMemoryBound(to: UnsafeMutableRawPointer.self)
    }

    /// Adds `block` to `arena`'s batch; true when the batch is full and must go home.
    func add(_ block: UnsafeMutableRawPointer, to arena: Int) -> Bool {
        let count = count(arena)
        blocks(arena)[count.pointee] = block
        count.pointee += 1
        return count.pointee == Self.batch
    }

    /// Takes `arena`'s batch out (the caller gives it to the arena).
    func take(_ arena: Int) -> UnsafeBufferPointer<UnsafeMutableRawPointer> {
        let count = count(arena)
        defer { count.pointee = 0 }
        return UnsafeBufferPointer(start: blocks(arena), count: count.pointee)
    }

    /// Blocks waiting for any arena. A plain loop: it runs in a fork child (see `writeOff`).
    var held: Int {
        var held = 0
        var arena = 0
        while arena < arenas {
            held += count(arena).pointee
            arena += 1
        }
        return held
    }
}
