import NUMA

/// A comparison resolved once: the strategies, the rounds, and the run each strategy repeats.
public struct ResolvedComparison: Sendable {
    public let strategies: [PoolStrategy]
    public let rounds: Int
    /// The run every strategy makes; only its strategy changes.
    public let run: ResolvedRun
}

extension RunOptions {
    /// Checks the options for a comparison of `strategies` over `rounds`; nothing runs.
    public func resolveComparison(strategies: [PoolStrategy], rounds: Int,
                                  topology: Topology = .current) throws(MembenchError) -> ResolvedComparison {
        try Check.rounds(rounds)
        return ResolvedComparison(strategies: strategies, rounds: rounds, run: try resolve(topology: topology))
    }
}

/// Runs several strategies of one resolved run, in rounds that take turns (`Rounds`), so that
/// drift on a shared host falls on every strategy alike.
public enum Comparison {
    public static func run(_ resolved: ResolvedComparison, topology: Topology = .current,
                           progress: (@Sendable (PoolStrategy, Int, Double) -> Void)? = nil) throws(MembenchError) -> [RunResult] {
        var results: [RunResult] = []
        for (strategy, round) in Rounds.alternating(resolved.strategies, rounds: resolved.rounds) {
            var perRun: LatencyRunner.Progress?
            if let progress { perRun = { fraction in progress(strategy, round, fraction) } }
            var result = try LatencyRunner.run(resolved.run.with(strategy: strategy), topology: topology, progress: perRun)
            result.round = round
            results.append(result)
        }
        return results
    }
}
