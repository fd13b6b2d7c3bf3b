import Testing
@testable import NUMA

@Suite("Fallback order and weighted interleave")
struct TierTests {
    /// Two DRAM nodes with CPUs in tier 4 and a memory-only node in tier 22 that the distance
    /// table puts nearer to node 0 than node 1 is: the tiered guest's layout.
    static let tiered: Topology = {
        func node(_ id: Int, cpus: CPUSet, distances: [Int], tier: Int?) -> Node {
            Node(id: id, cpus: cpus, memoryTotal: 1 << 30, memoryFree: 1 << 30, memoryAvailable: 1 << 30,
                 distances: distances, tier: tier, firmware: [], memoryAttributes: [])
        }
        return Topology(nodes: [node(0, cpus: [0], distances: [10, 21, 17], tier: 4),
                                node(1, cpus: [1], distances: [21, 10, 28], tier: 4),
                                node(2, cpus: [], distances: [17, 28, 10], tier: 22)],
                        numaAvailable: true, allowedNodes: [0, 1, 2], allowedCPUs: [0, 1], lastLevelCache: nil,
                        packages: 1, cpuToNode: [0, 1], tiers: [MemoryTier(id: 4, nodes: [0, 1]), MemoryTier(id: 22, nodes: [2])])
    }()

    @Test("fallback takes the fastest tier first, then the nearest node within it")
    func tierFirst() {
        #expect(Self.tiered.nearest([1, 2], to: 0) == [2, 1])
        #expect(Self.tiered.fallbackOrder([1, 2], from: 0) == [1, 2])
        #expect(Self.tiered.fallbackOrder([0, 2], from: 1) == [0, 2])
        #expect(Self.tiered.memoryNodes(nearestTo: 0) == [0, 1, 2])
        // A memory-only node falls back on DRAM first too, after its own memory.
        #expect(Self.tiered.fallbackOrder([0, 1], from: 2) == [0, 1])
        #expect(Self.tiered.memoryNodes(nearestTo: 2) == [2, 0, 1])
    }

    @Test("a node's own memory comes first even when another node's tier is faster")
    func ownNodeFirst() {
        // Node 0's DRAM in tier 4, node 2 (HBM, say) in the faster tier 3.
        let nodes = Self.tiered.nodes.map {
            Node(id: $0.id, cpus: $0.cpus, memoryTotal: $0.memoryTotal, memoryFree: $0.memoryFree,
                 memoryAvailable: $0.memoryAvailable, distances: $0.distances, tier: $0.id == 2 ? 3 : 4,
                 firmware: [], memoryAttributes: [])
        }
        let topology = Topology(nodes: nodes, numaAvailable: true, allowedNodes: [0, 1, 2], allowedCPUs: [0, 1],
                                lastLevelCache: nil, packages: 1, cpuToNode: [0, 1],
                                tiers: [MemoryTier(id: 3, nodes: [2]), MemoryTier(id: 4, nodes: [0, 1])])
        #expect(topology.fallbackOrder([0, 1, 2], from: 0) == [0, 2, 1])
        #expect(topology.memoryNodes(nearestTo: 1) == [1, 2, 0])
    }

    @Test("without tiers the fallback order is the distance order")
    func distanceOnly() {
        let flat = Topology(nodes: Self.tiered.nodes.map {
            Node(id: $0.id, cpus: $0.cpus, memoryTotal: $0.memoryTotal, memoryFree: $0.memoryFree,
                 memoryAvailable: $0.memoryAvailable, distances: $0.distances, tier: nil, firmware: [], memoryAttributes: [])
        }, numaAvailable: true, allowedNodes: [0, 1, 2], allowedCPUs: [0, 1], lastLevelCache: nil, packages: 1,
            cpuToNode: [0, 1], tiers: [])
        #expect(flat.fallbackOrder([1, 2], from: 0) == [2, 1])
    }

    @Test("the firmware figures of a pair come from the access class that names the initiator")
    func firmwarePair() {
        let access0 = FirmwareAccess(accessClass: 0, initiators: [0], readLatency: 40, writeLatency: 41,
                                     readBandwidth: 5120, writeBandwidth: 5000)
        let access1 = FirmwareAccess(accessClass: 1, initiators: [0], readLatency: 42, writeLatency: 43,
                                     readBandwidth: 4096, writeBandwidth: 4000)
        let nodes = Self.tiered.nodes.map {
            Node(id: $0.id, cpus: $0.cpus, memoryTotal: $0.memoryTotal, memoryFree: $0.memoryFree,
                 memoryAvailable: $0.memoryAvailable, distances: $0.distances, tier: $0.tier,
                 firmware: $0.id == 2 ? [access0, access1] : [], memoryAttributes: [])
        }
        let topology = Topology(nodes: nodes, numaAvailable: true, allowedNodes: [0, 1, 2], allowedCPUs: [0, 1],
                                lastLevelCache: nil, packages: 1, cpuToNode: [0, 1], tiers: Self.tiered.tiers)
        #expect(topology.firmwareAccess(from: 0, to: 2) == access1)  // CPU initiators first
        #expect(topology.firmwareAccess(from: 1, to: 2) == nil)  // not a best initiator: unknown
        #expect(topology.firmwareAccess(from: 0, to: 1) == nil)
    }

    @Test("weighted interleave over this host's nodes places pages and reads back as itself",
          .enabled(if: InterleaveWeights.isSupported, "needs Linux 6.9 or later"))
    func weightedInterleave() throws {
        let nodes = Topology.current.bindableNodes
        let region = try MemoryRegion(size: 64 * PagePlacement.basePageSize, policy: .weightedInterleave(nodes))
        region.faultIn()
        #expect(Set(try region.nodeHistogram().keys).isSubset(of: Set(nodes.ids)))
        #expect(try MemoryPolicy.policy(at: region.baseAddress) == .weightedInterleave(nodes))
        #expect(MemoryPolicy.weightedInterleave(nodes).description == "weighted-interleave:\(nodes)")
    }

    @Test("a kernel without weighted interleave is named in the error, with the version it needs",
          .enabled(if: !InterleaveWeights.isSupported, "this kernel has weighted interleave"))
    func unsupported() throws {
        #expect(InterleaveWeights.current() == nil)
        #expect { _ = try MemoryRegion(size: PagePlacement.basePageSize, policy: .weightedInterleave([0])) } throws: { error in
            (error as? NUMAError)?.message.hasPrefix("weighted interleave needs Linux 6.9 or later; this kernel is ") == true
        }
        #expect(throws: NUMAError.self) { try InterleaveWeights.set([0: 2]) }
    }
}
