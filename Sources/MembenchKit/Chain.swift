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
}

/// A pointer-chasing cycle written into memory: each slot's first word holds the address of the
/// next slot, and following it from `start` visits every slot once before coming back.
public struct Chain: Sendable {
    /// Where the walk starts.
    public let startAddress: UInt
    /// Slots in the cycle.
    public let slots: Int
    /// The address of every slot, in the order the walk visits them.
    public var start: UnsafeRawPointer { UnsafeRawPointer(bitPattern: startAddress)! }

    /// The visiting order of `n` items as one random cycle (Sattolo's shuffle): the successor of
    /// item i is `next[i]`, and the walk from 0 through `next` meets every item once.
    public static func sattoloOrder<G: RandomNumberGenerator>(_ n: Int, using generator: inout G) -> [UInt32] {
        precondition(n > 0 && n <= Int(UInt32.max))
        var next = (0..<UInt32(n)).map { $0 }
        var i = n - 1
        while i > 0 {
            let j = Int(generator.next(upperBound: UInt64(i)))  // j < i: Sattolo, not Fisher–Yates
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

    /// Writes the chain into `groups`, each `groupBytes` long, with one slot every `stride` bytes.
    ///
    /// With `.chase`, the groups are visited in random order and the slots of each group in
    /// random order before the walk moves on, which bounds TLB misses to one group at a time
    /// (multichase's TLB locality). A single group covering the whole buffer is fully random.
    /// With `.sequential`, groups and slots go in address order.
    public static func build(groups: [UnsafeMutableRawPointer], groupBytes: Int, stride: Int,
                             pattern: ChasePattern, seed: UInt64) -> Chain {
        precondition(!groups.isEmpty && stride >= MemoryLayout<UInt>.size && groupBytes >= stride)
        let slotsPerGroup = groupBytes / stride
        var generator = SplitMix64(seed: seed)
        let groupOrder: [UInt32] = pattern == .chase && groups.count > 1
            ? sattoloOrder(groups.count, using: &generator)
            : (0..<UInt32(groups.count)).map { $0 }
        let sortedGroups = groups.sorted { UInt(bitPattern: $0) < UInt(bitPattern: $1) }
        let identity = (0..<UInt32(slotsPerGroup)).map { $0 }
        var first: UnsafeMutableRawPointer?
        var previous: UnsafeMutableRawPointer?
        for g in groupOrder {
            let base = pattern == .chase ? groups[Int(g)] : sortedGroups[Int(g)]
            let slotOrder = pattern == .chase ? sattoloOrder(slotsPerGroup, using: &generator) : identity
            for s in slotOrder {
                let slot = base + Int(s) * stride
                if let previous { previous.storeBytes(of: UInt(bitPattern: slot), as: UInt.self) } else { first = slot }
                previous = slot
            }
        }
        previous!.storeBytes(of: UInt(bitPattern: first!), as: UInt.self)
        return Chain(startAddress: UInt(bitPattern: first!), slots: slotsPerGroup * groups.count)
    }
}
