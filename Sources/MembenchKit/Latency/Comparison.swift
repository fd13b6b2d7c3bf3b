import NUMA

/// Runs several strategies with identical parameters, in rounds that take turns: round 0 in
/// the order given, round 1 in reverse, and so on, so that drift on a shared host falls on
/// every strategy alike.
public enum Comparison {
    public static func run(_ strategies: [PoolStrategy], run resolved: ResolvedRun, rounds: Int = 1, topology: Topology = .current,
                           progress: (@Sendable (PoolStrategy, Int, Double) -> Void)? = nil) throws(MembenchError) -> [RunResult] {
        guard rounds >= 1 && rounds <= 1000 else { throw .invalid(.rounds, "must be between 1 and 1000, got \(rounds)") }
        var results: [RunResult] = []
        for round in 0..<rounds {
            for strategy in round % 2 == 0 ? strategies : strategies.reversed() {
                var perRun: LatencyRunner.Progress?
                if let progress { perRun = { fraction in progress(strategy, round, fraction) } }
                var result = try LatencyRunner.run(resolved.with(strategy: strategy), topology: topology, progress: perRun)
                result.round = round
                results.append(result)
            }
        }
        return results
    }
}
