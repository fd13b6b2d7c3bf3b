import Atomics
import Metrics
import NUMA

/// Counts, for one request in `every`, whether a request's context and buffers lie on the node
/// of the CPU that serves it (`getcpu`), as `numaservice_placement_total{object,locality}`.
final class PlacementCounter: Sendable {
    enum Object: String, CaseIterable, Sendable {
        case context, buffer
    }

    enum Locality: String, CaseIterable, Sendable {
        /// On the node of the CPU that served the request.
        case local
        /// On another node.
        case remote
        /// Not placed (not faulted in) or not readable.
        case unknown
    }

    private let every: Int
    /// A counter of calls per object: a request counts its context and its buffer, so one
    /// shared counter would sample only one of the two.
    private let turns: [Object: ManagedAtomic<Int>] = Dictionary(uniqueKeysWithValues: Object.allCases.map { ($0, ManagedAtomic(0)) })
    private let counters: [Object: [Locality: Counter]]

    init(every: Int, topology: Topology, factory: any MetricsFactory) {
        self.every = every
        var counters: [Object: [Locality: Counter]] = [:]
        for object in Object.allCases {
            for locality in Locality.allCases {
                counters[object, default: [:]][locality] = Counter(
                    label: "numaservice_placement_total",
                    dimensions: [("object", object.rawValue), ("locality", locality.rawValue)], factory: factory)
            }
        }
        self.counters = counters
    }

    /// Counts `object` when this call is one of the sampled ones; `node` gives the node of its memory.
    func count(_ object: Object, node: () -> Int?) {
        guard turns[object]!.loadThenWrappingIncrement(ordering: .relaxed) % every == 0 else { return }
        let serving = Topology.currentCPU().node
        let locality: Locality = switch node() {
        case .none: .unknown
        case .some(let home) where home == serving: .local
        case .some: .remote
        }
        counters[object]![locality]!.increment()
    }

    /// The node of the page at `address` (`move_pages`), or nil when it has none.
    static func pageNode(of address: UnsafeRawPointer) -> Int? {
        guard let placement = try? PagePlacement(address: address, length: 1),
              let node = placement.nodes.first, node >= 0 else { return nil }
        return Int(node)
    }
}
