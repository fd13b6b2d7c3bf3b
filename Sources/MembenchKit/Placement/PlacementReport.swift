import NUMA

/// Where a thread's chased memory lies, and the share of its accesses that are remote.
///
/// Every slot of the chain is visited once per cycle, so accesses are spread evenly over the
/// slots; the remote-access share is the share of slots whose page lies on a node other than
/// the node of the CPU that chases them. Pages come from move_pages(2) (source `page-placement`).
public struct PlacementReport: Sendable, Codable, Equatable {
    /// The node of every page that holds slots, by the page's address: a page shared by
    /// several groups (blocks smaller than a page), or by several threads, counts once.
    public var pageNodes: [Int: Int]
    /// Slots per node.
    public var slotsPerNode: [Int: Int]
    /// Slots on pages with no node (never touched or not queryable).
    public var unplacedSlots: Int

    public init(pageNodes: [Int: Int] = [:], slotsPerNode: [Int: Int] = [:], unplacedSlots: Int = 0) {
        self.pageNodes = pageNodes
        self.slotsPerNode = slotsPerNode
        self.unplacedSlots = unplacedSlots
    }

    /// Distinct pages per node.
    public var pagesPerNode: [Int: Int] {
        var counts: [Int: Int] = [:]
        for node in pageNodes.values { counts[node, default: 0] += 1 }
        return counts
    }

    /// Queries the pages of every group and counts the chain's slots on each node, each slot
    /// at its own address (`Chain.build`'s numbering and offsets).
    public static func measure(groups: [UnsafeMutableRawPointer], groupBytes: Int, layout: SlotLayout) throws(NUMAError) -> PlacementReport {
        var report = PlacementReport()
        for (index, group) in groups.enumerated() {
            let placement = try PagePlacement(address: group, length: groupBytes)
            report.add(placement, base: UInt(bitPattern: group), groupBytes: groupBytes, layout: layout,
                       firstSlot: index * (groupBytes / layout.stride))
        }
        return report
    }

    /// Adds one group's placement: slot `k` at `base + k * stride + offset(firstSlot + k)`.
    mutating func add(_ placement: PagePlacement, base: UInt, groupBytes: Int, layout: SlotLayout, firstSlot: Int) {
        let page = placement.pageSize
        let firstPage = Int(base) & ~(page - 1)
        var counts = [Int](repeating: 0, count: placement.nodes.count)
        for k in 0..<groupBytes / layout.stride {
            let address = Int(base) + k * layout.stride + layout.offset(ofSlot: firstSlot + k)
            counts[(address - firstPage) / page] += 1
        }
        for (index, node) in placement.nodes.enumerated() where counts[index] > 0 {
            if node >= 0 {
                pageNodes[firstPage + index * page] = Int(node)
                slotsPerNode[Int(node), default: 0] += counts[index]
            } else {
                unplacedSlots += counts[index]
            }
        }
    }

    public var totalSlots: Int { slotsPerNode.values.reduce(0, +) + unplacedSlots }

    /// The share of slots (so of accesses) not on `node`; unplaced slots count as remote.
    public func remoteShare(from node: Int) -> Double {
        let total = totalSlots
        return total == 0 ? 0 : Double(total - slotsPerNode[node, default: 0]) / Double(total)
    }

    public static func + (a: PlacementReport, b: PlacementReport) -> PlacementReport {
        PlacementReport(pageNodes: a.pageNodes.merging(b.pageNodes) { _, latest in latest },
                        slotsPerNode: a.slotsPerNode.merging(b.slotsPerNode, uniquingKeysWith: +),
                        unplacedSlots: a.unplacedSlots + b.unplacedSlots)
    }

    /// Distinct base pages of `[address, address + length)` per node (move_pages(2)), for
    /// buffers that are not a chain: bandwidth's and the loaded run's.
    static func pagesPerNode(_ address: UnsafeRawPointer, length: Int) throws(MembenchError) -> [Int: Int] {
        do {
            var counts: [Int: Int] = [:]
            for node in try PagePlacement(address: address, length: length).nodes where node >= 0 {
                counts[Int(node), default: 0] += 1
            }
            return counts
        } catch {
            throw .refused("\(error)")
        }
    }

    /// The share of `pages` not on `node`; with no page placed, all of it.
    static func remoteShare(of pages: [Int: Int], from node: Int) -> Double {
        let placed = pages.values.reduce(0, +)
        return placed == 0 ? 1 : Double(placed - pages[node, default: 0]) / Double(placed)
    }

    /// `0:512;1:512`, for tables and CSV.
    public var pagesText: String { Self.text(pagesPerNode) }

    /// For a weighted interleave, the share of pages each node's weight asks for beside the
    /// share its pages have: `interleave weights 0:3,2:1 ask for 0:75.0% 2:25.0%; the pages
    /// are 0:74.9% 2:25.1%`. Nil without weights or pages.
    public static func weightLine(_ weights: [Int: Int]?, pages: [Int: Int]) -> String? {
        guard let weights, !weights.isEmpty, case let all = pages.values.reduce(0, +), all > 0 else { return nil }
        let weightSum = Double(weights.values.reduce(0, +))
        func shares(_ values: [Int: Int], of total: Double) -> String {
            values.keys.sorted().map { "\($0):\(Format.percent(Double(values[$0]!) / total))" }.joined(separator: " ")
        }
        return "interleave weights \(InterleaveWeights.text(weights)) ask for \(shares(weights, of: weightSum));"
            + " the pages are \(shares(pages, of: Double(all)))"
    }

    /// Pages per node as `0:512;1:512`.
    public static func text(_ pages: [Int: Int]) -> String {
        pages.keys.sorted().map { "\($0):\(pages[$0]!)" }.joined(separator: ";")
    }
}
