import NUMA
import Testing

extension Trait where Self == ConditionTrait {
    /// Skips a suite on a one-node host. Every suite that needs several nodes lives in the
    /// MultiNodeTests target, and the emulated-NUMA guests (scripts/numa-vm) select that target
    /// by its name, so a suite renamed or added there cannot drop out of them.
    package static var multiNode: Self {
        .enabled(if: Topology.current.nodeCount > 1, "needs two or more NUMA nodes")
    }

    /// Skips a suite where a CPU node has no memory of its own (topology `cpuonly`): pools and
    /// membench place memory on the node their thread runs on.
    package static var everyCPUNodeHasMemory: Self {
        .enabled(if: Topology.current.nodes.filter(\.hasCPUs).allSatisfy(\.hasMemory), "a CPU node has no memory")
    }
}

/// The node of the page holding `address`, read back with move_pages(2).
package func nodeOfPage(_ address: UnsafeRawPointer) throws -> Int? {
    try PagePlacement(address: address, length: 1).nodes.first.flatMap { $0 >= 0 ? Int($0) : nil }
}
