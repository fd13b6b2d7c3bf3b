import NUMA

extension InterleaveWeights {
    /// Weights as flags and records write them: `0:3,2:1`, in node order.
    public static func text(_ weights: [Int: Int]) -> String {
        weights.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    }

    /// Parses `0:3,2:1` (node:weight pairs) or `0,2` (nodes alone, the kernel's weights):
    /// the nodes, and the weights when given. Nil for text of neither form or mixed forms.
    public static func parse(_ text: String) -> (nodes: NodeSet, weights: [Int: Int]?)? {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        guard items.contains(where: { $0.contains(":") }) else {
            return (try? NodeSet(parsing: text, all: NodeSet())).map { ($0, nil) }
        }
        var weights: [Int: Int] = [:]
        for item in items {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let node = Int(parts[0]), node >= 0, node <= IDSetLimit.maximumID,
                  let weight = Int(parts[1]), weights[node] == nil else { return nil }
            weights[node] = weight
        }
        return (NodeSet(weights.keys), weights)
    }
}

extension PlacementOptions {
    /// Runs `body` with the interleave weights the options ask for set, and puts back the
    /// weights those nodes had, whether `body` returns or throws. Without weights it runs
    /// `body` alone. Setting weights needs root.
    public func withInterleaveWeights<T>(_ body: () throws -> T) throws -> T {
        guard let interleaveWeights else { return try body() }
        let saved: InterleaveWeights.Saved
        do {
            saved = try InterleaveWeights.set(interleaveWeights)
        } catch {
            throw MembenchError.from(error, setting: .weightedInterleave)
        }
        let result: T
        do {
            result = try body()
        } catch {
            try? InterleaveWeights.restore(saved)
            throw error
        }
        do {
            try InterleaveWeights.restore(saved)
        } catch {
            throw MembenchError.refused("cannot restore the interleave weights \(InterleaveWeights.text(saved.weights)): \(error.message)")
        }
        return result
    }
}
