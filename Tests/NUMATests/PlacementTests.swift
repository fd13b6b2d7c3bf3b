import Testing
@testable import NUMA

let pageSize = PagePlacement.basePageSize

@Suite("Memory placement on every allowed node", .serialized)
struct PlacementTests {
    static let nodes = Topology.current.bindableNodes.ids

    @Test("a region bound to a node has every page there", arguments: nodes)
    func bound(node: Int) throws {
        let region = try MemoryRegion(size: 64 * pageSize, policy: .bind([node]))
        region.faultIn()
        let placement = try region.pageNodes()
        #expect(placement.nodes.count == 64)
        #expect(placement.histogram == [node: 64])
        #expect(try MemoryPolicy.policy(at: region.baseAddress) == .bind([node]))
    }

    @Test("untouched pages report no node, touched ones do, on the toucher's nearest memory")
    func untouched() throws {
        let cpu = try #require(Topology.current.allowedCPUs.first)
        let thread = try PinnedThread(cpus: [cpu]) { () throws -> (Int, Int, Int?) in
            let region = try MemoryRegion(size: 8 * pageSize)
            let before = try region.pageNodes().unplaced
            region.withUnsafeMutableBytes { $0.storeBytes(of: 1, toByteOffset: 3 * pageSize, as: UInt8.self) }
            let placement = try region.pageNodes()
            return (before, placement.unplaced, placement.node(atOffset: 3 * pageSize + 5, from: region.baseAddress))
        }
        let (before, after, node) = try thread.join()
        #expect(before == 8)
        #expect(after == 7)
        let home = try #require(Topology.current.node(ofCPU: cpu))
        #expect(node == Topology.current.memoryNodes(nearestTo: home).first)
    }

    @Test("an interleaved region spreads its pages evenly over the allowed nodes")
    func interleave() throws {
        let nodes = NodeSet(Self.nodes)
        let pages = 96 * nodes.count
        let region = try MemoryRegion(size: pages * pageSize, policy: .interleave(nodes))
        region.faultIn()
        let histogram = try region.nodeHistogram()
        #expect(Set(histogram.keys) == Set(nodes.ids))
        for node in nodes { #expect(abs(histogram[node, default: 0] - pages / nodes.count) <= 1) }
    }

    @Test("a thread policy governs pages the thread touches, and reads back")
    func threadPolicy() throws {
        let node = try #require(Self.nodes.last)
        let thread = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> (MemoryPolicy, [Int: Int]) in
            try MemoryPolicy.bind([node]).applyToCurrentThread()
            let policy = try MemoryPolicy.currentThread()
            let region = try MemoryRegion(size: 16 * pageSize)
            region.faultIn()
            let histogram = try region.nodeHistogram()
            try MemoryPolicy.resetCurrentThread()
            return (policy, histogram)
        }
        let (policy, histogram) = try thread.join()
        #expect(policy == .bind([node]))
        #expect(histogram == [node: 16])
    }

    @Test("transparent huge page regions are aligned and still placed")
    func thp() throws {
        let node = try #require(Self.nodes.first)
        let region = try MemoryRegion(size: 4 << 20, policy: .bind([node]), pages: .transparentHuge)
        #expect(Int(bitPattern: region.baseAddress) % (2 << 20) == 0)
        region.faultIn()
        #expect(try region.nodeHistogram().keys.sorted() == [node])
    }
}

@Suite("Errors are typed and never trap")
struct ErrorTests {
    @Test("binding to a node that does not exist throws ENODEV")
    func missingNode() {
        let missing = (Topology.current.nodes.map(\.id).max() ?? 0) + 7
        #expect {
            _ = try MemoryRegion(size: pageSize, policy: .bind([missing]))
        } throws: { error in
            (error as? NUMAError)?.errno == 19 && "\(error)".contains("node \(missing) does not exist")
        }
        #expect(throws: NUMAError.self) { try MemoryPolicy.interleave([0, missing]).applyToCurrentThread() }
    }

    @Test("impossible sizes throw", arguments: [0, -1, Int.max / 2])
    func sizes(size: Int) {
        #expect(throws: NUMAError.self) { _ = try MemoryRegion(size: size) }
    }

    @Test("explicit huge pages beyond the pool throw a readable error")
    func hugePages() {
        #expect {
            _ = try MemoryRegion(size: 4 << 30, pages: .huge1G)
        } throws: { error in
            (error as? NUMAError)?.operation == "mmap"
        }
    }

    @Test("a CPU that does not exist or an empty set cannot be pinned to")
    func badCPU() {
        let missing = (Topology.current.allowedCPUs.ids.last ?? 0) + 1000
        #expect(throws: NUMAError.self) { try ThreadAffinity.set([missing]) }
        #expect(throws: NUMAError.self) { try ThreadAffinity.set(CPUSet()) }
        #expect(throws: NUMAError.self) { try PinnedThread(node: 4000) { 0 } }
    }

    @Test("the error names the operation and the reason")
    func describes() {
        let error = NUMAError(operation: "mbind", errno: 22)
        #expect(error.description == "mbind: Invalid argument")
    }
}

@Suite("Thread placement", .serialized)
struct AffinityTests {
    @Test("a thread pinned to each allowed CPU reads back its CPU and node",
          arguments: Topology.current.allowedCPUs.ids)
    func pinnedCPU(cpu: Int) throws {
        let thread = try PinnedThread(cpus: [cpu]) { () throws -> (CPUSet, Int, Int) in
            let (now, node) = Topology.currentCPU()
            return (try ThreadAffinity.current(), now, node)
        }
        let (affinity, now, node) = try thread.join()
        #expect(affinity == [cpu])
        #expect(now == cpu)
        #expect(node == Topology.current.node(ofCPU: cpu))
    }

    @Test("a thread pinned to a node runs on that node's CPUs",
          arguments: Topology.current.nodesWithCPUs.intersection(NodeSet(Topology.current.cpuToNode.filter { $0 >= 0 })).ids)
    func pinnedNode(node: Int) throws {
        let thread = try PinnedThread(node: node) { Topology.currentCPU() }
        let (cpu, seen) = try thread.join()
        #expect(seen == node)
        #expect(Topology.current.node(ofCPU: cpu) == node)
    }

    @Test("a thread's error comes back through join")
    func error() throws {
        struct Failure: Error {}
        let thread = try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> Int in throw Failure() }
        #expect(throws: Failure.self) { try thread.join() }
    }
}
