// Reads the machine's NUMA layout, maps memory bound to one node, checks where its pages
// went, moves them, and runs code on an OS thread pinned to that node's CPUs.
import NUMA

let topology = Topology.current  // read once and cached; Topology.reload() reads it again
print("\(topology.nodeCount) node(s); this process may use nodes \(topology.allowedNodes), CPUs \(topology.allowedCPUs)")

// The highest node with memory that this process may bind to: node 1 on a two-node server.
let nodes = topology.bindableNodes.ids
guard let target = nodes.last else { fatalError("no node with memory that this process may use") }

do {
    // mmap(2), then mbind(2) with MPOL_BIND before any page is touched.
    let region = try MemoryRegion(size: 64 << 20, policy: .bind([target]))
    region.faultIn()                                  // touch every page now, from this thread
    print("pages per node:", try region.nodeHistogram())   // move_pages(2) with NULL nodes
    try region.migrate(to: [nodes[0]])                // mbind(2) with MPOL_MF_MOVE
    print("after migrate:", try region.nodeHistogram())
}  // the region ends here: munmap(2)

// A real OS thread, restricted to the node's CPUs before the body runs.
if topology.allowedCPUs(on: [target]).isEmpty {
    print("node \(target) has no CPU this process may use")
} else {
    let worker = try PinnedThread(node: target) { Topology.currentCPU() }
    print("the pinned thread ran on", try worker.join())
}
