/// How the chase walks its buffer.
public enum ChasePattern: String, Sendable, Codable, CaseIterable {
    /// A random cycle: groups of `tlbLocality` bytes in random order, slots within a group in
    /// random order, so that prefetchers cannot follow it.
    case chase
    /// Slots in address order, for the prefetch-friendly best case.
    case sequential
}

/// A deterministic generator (SplitMix64), so that a run can be repeated with its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A draw in `0..<bound` by Lemire's nearly divisionless method. Written out, as the
    /// shuffle below is, so that a seed names one chain whatever the standard library's
    /// `next(upperBound:)` and `shuffle(using:)` do in other versions (the reference chase in
    /// benchmarks/ follows these steps).
    public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }

    /// Shuffles `items` in place: from the front, each position swapped with a later one (or
    /// itself) drawn by `next(below:)`.
    public mutating func shuffle<T>(_ items: inout [T]) {
        var amount = items.count, index = 0
        while amount > 1 {
            let other = index + Int(next(below: UInt64(amount)))
            amount -= 1
            items.swapAt(index, other)
            index += 1
        }
    }
}

/// Where each slot of a chain sits inside its stride.
///
/// With `.random` (the default), slot `x` sits at a multiple of 8 bytes inside its stride,
/// from a table of at least 64 entries: slot `x` takes entry `x mod count`. The entries are
/// the stride's positions in a random order, each used equally often (as far as the count
/// allows), and thread `t` reads them shifted by `t` positions, so the chain uses every cache
/// set evenly and threads of one run never share an offset where the stride has room for them
/// (multichase's "mixer", balanced). With `.zero`, every slot sits at offset 0 of its stride,
/// which at a stride of 256 B uses a quarter of the cache sets.
public struct SlotLayout: Sendable, Equatable {
    public enum Offsets: String, Sendable, Codable, CaseIterable {
        case random, zero
    }

    public let stride: Int
    public let offsets: Offsets
    /// Byte offset of slot `x` inside its stride: `table[x & (table.count - 1)]`.
    let table: [Int]

    /// The layout of thread `thread` (from 0) of `threads`; every thread of a run passes the
    /// same seed, so that their offsets come from the same permutations.
    public init(stride: Int, offsets: Offsets = .random, thread: Int = 0, threads: Int = 1, seed: UInt64 = 0) {
        precondition(stride >= MemoryLayout<UInt>.size && thread >= 0 && threads >= 1)
        self.stride = stride
        self.offsets = offsets
        let positions = stride / MemoryLayout<UInt>.size
        guard offsets == .random, positions > 1 else {
            table = [0]
            return
        }
        // A power of two (the lookup masks), at least 64, and room for every position up to 4096.
        var count = 64
        while count < threads || count < min(positions, 1 << 12) { count <<= 1 }
        var generator = SplitMix64(seed: seed ^ 0x6D69_7865_72)  // its own stream, not the chain's
        var order = Array(0..<positions)
        generator.shuffle(&order)
        var classes = Array(0..<count)
        generator.shuffle(&classes)
        table = classes.map { order[($0 + thread) % positions] * MemoryLayout<UInt>.size }
    }

    @inline(__always)
    public func offset(ofSlot x: Int) -> Int { table[x & (table.count - 1)] }
}

/// A pointer-chasing cycle written into memory: each slot's first word holds the address of the
/// next slot, and following it from `start` visits every slot once before coming back.
public struct Chain: Sendable {
    /// The address of the first slot, where the walk starts (an integer, so that a chain is
    /// `Sendable`).
    public let startAddress: UInt
    /// Slots in the cycle.
    public let slots: Int
    /// The first slot, as the pointer the chase starts from.
    public var start: UnsafeRawPointer { UnsafeRawPointer(bitPattern: startAddress)! }

    /// The visiting order of `n` items as one random cycle (Sattolo's shuffle): the successor of
    /// item i is `next[i]`, and the walk from 0 through `next` meets every item once.
    public static func sattoloOrder(_ n: Int, using generator: inout SplitMix64) -> [UInt32] {
        precondition(n > 0 && n <= Int(UInt32.max))
        var next = (0..<UInt32(n)).map { $0 }
        var i = n - 1
        while i > 0 {
            let j = Int(generator.next(below: UInt64(i)))  // j < i: Sattolo, not Fisher–Yates
            next.swapAt(i, j)
            i -= 1
        }
        // `next` is now a single n-cycle as a permutation; walk it into a visiting order.
        var order = [UInt32](repeating: 0, count: n)
        var item: UInt32 = 0
        for k in 0..<n {
            order[k] = item
            item = next[Int(item)]
        }
        return order
    }

    /// Writes the chain into `groups`, each `groupBytes` long, with one slot every
    /// `layout.stride` bytes, at the layout's offset inside its stride. Slot `x` is slot `k` of
    /// `groups[g]` with `x = g * slotsPerGroup + k`.
    ///
    /// With `.chase`, the groups are visited in random order and the slots of each group in
    /// random order before the walk moves on, which bounds TLB misses to one group at a time
    /// (multichase's TLB locality). A single group covering the whole buffer is fully random.
    /// With `.sequential`, groups and slots go in address order.
    public static func build(groups: [UnsafeMutableRawPointer], groupBytes: Int, layout: SlotLayout,
                             pattern: ChasePattern, seed: UInt64) -> Chain {
        let stride = layout.stride
        precondition(!groups.isEmpty && groupBytes >= stride)
        let slotsPerGroup = groupBytes / stride
        var generator = SplitMix64(seed: seed)
        let groupOrder: [Int] = pattern == .chase
            ? (groups.count > 1 ? sattoloOrder(groups.count, using: &generator).map { Int($0) } : [0])
            : groups.indices.sorted { UInt(bitPattern: groups[$0]) < UInt(bitPattern: groups[$1]) }
        let identity = (0..<UInt32(slotsPerGroup)).map { $0 }
        var first: UnsafeMutableRawPointer?
        var previous: UnsafeMutableRawPointer?
        for g in groupOrder {
            let slotOrder = pattern == .chase ? sattoloOrder(slotsPerGroup, using: &generator) : identity
            for s in slotOrder {
                let k = Int(s)
                let slot = groups[g] + k * stride + layout.offset(ofSlot: g * slotsPerGroup + k)
                if let previous { previous.storeBytes(of: UInt(bitPattern: slot), as: UInt.self) } else { first = slot }
                previous = slot
            }
        }
        previous!.storeBytes(of: UInt(bitPattern: first!), as: UInt.self)
        return Chain(startAddress: UInt(bitPattern: first!), slots: slotsPerGroup * groups.count)
    }
}
