import NUMA
import NUMAPool

/// numactl's placement flags. Unset flags inherit the process's own policy and CPU set, so a
/// run under `numactl` behaves as numactl says.
public struct PlacementOptions: Sendable, Codable, Equatable {
    public var membind: NodeSet?
    public var interleave: NodeSet?
    /// Weighted interleave over these nodes (`MPOL_WEIGHTED_INTERLEAVE`).
    public var weightedInterleave: NodeSet?
    /// Interleave weights to set for the run (node: weight) and restore after it; nil keeps
    /// the kernel's (`withInterleaveWeights`).
    public var interleaveWeights: [Int: Int]?
    public var preferred: Int?
    public var localalloc = false
    public var cpunodebind: NodeSet?
    public var physcpubind: CPUSet?

    public init(membind: NodeSet? = nil, interleave: NodeSet? = nil, preferred: Int? = nil, localalloc: Bool = false,
                cpunodebind: NodeSet? = nil, physcpubind: CPUSet? = nil) {
        self.membind = membind
        self.interleave = interleave
        self.preferred = preferred
        self.localalloc = localalloc
        self.cpunodebind = cpunodebind
        self.physcpubind = physcpubind
    }

    /// The memory policy the flags ask for, or nil to inherit.
    public var memoryPolicy: MemoryPolicy? {
        if let membind { return .bind(membind) }
        if let interleave { return .interleave(interleave) }
        if let weightedInterleave { return .weightedInterleave(weightedInterleave) }
        if let preferred { return .preferred(preferred) }
        return localalloc ? .local : nil
    }

    /// The weights a weighted interleave runs with: those the options set, else the kernel's
    /// for the nodes named; nil for other policies. Read inside `withInterleaveWeights`, they
    /// are the weights of the run.
    public var effectiveInterleaveWeights: [Int: Int]? {
        guard let weightedInterleave else { return nil }
        return interleaveWeights ?? InterleaveWeights.current()?.filter { weightedInterleave.contains($0.key) }
    }

    /// The memory settings given, in the order bind, interleave, preferred, local: more than
    /// one is a conflict.
    var memorySettingsGiven: [Setting] {
        [(Setting.bind, membind != nil), (.interleave, interleave != nil), (.weightedInterleave, weightedInterleave != nil),
         (.preferred, preferred != nil), (.localAlloc, localalloc)]
            .filter(\.1).map(\.0)
    }

    /// A short text form for tables and records, e.g. `bind:0 cpus:node0`.
    public var summary: String {
        var parts: [String] = [memoryPolicy?.description ?? "inherit"]
        if let weights = effectiveInterleaveWeights { parts.append("weights:\(InterleaveWeights.text(weights))") }
        if let cpunodebind { parts.append("cpunodebind:\(cpunodebind)") }
        if let physcpubind { parts.append("physcpubind:\(physcpubind)") }
        return parts.joined(separator: " ")
    }
}

extension PlacementOptions {
    /// The flags as a header shows them, with the policy the run ran under (`policyText`) in
    /// place of `inherit` when no memory flag was given.
    func summary(policyText: String) -> String {
        memoryPolicy == nil ? summary.replacingOccurrences(of: "inherit", with: policyText) : summary
    }

    /// The flags as records carry them: each list as given, `null` when absent.
    var recordFields: [(name: String, value: RecordValue)] {
        [
            ("membind", .string(membind?.description)),
            ("interleave", .string(interleave?.description)),
            ("weighted_interleave", .string(weightedInterleave?.description)),
            ("interleave_weights", .string(effectiveInterleaveWeights.map(InterleaveWeights.text))),
            ("preferred", .int(preferred)),
            ("cpunodebind", .string(cpunodebind?.description)),
            ("physcpubind", .string(physcpubind?.description)),
        ]
    }
}

extension Topology {
    /// The nodes with a CPU this process may use, in id order: the rows of the matrices.
    var allowedCPUNodes: [Int] { nodes.map(\.id).filter { !allowedCPUs(on: [$0]).isEmpty } }
}

extension MemoryPolicy {
    /// The setting that asks for this policy, for error messages.
    var setting: Setting {
        switch self {
        case .local: .localAlloc
        case .bind: .bind
        case .preferred: .preferred
        case .interleave: .interleave
        case .weightedInterleave: .weightedInterleave
        }
    }
}
