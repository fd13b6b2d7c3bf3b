/// Measurements in rounds that take turns (`compare`, `alloc`): every item once per round, odd
/// rounds in reverse order, so that a steady drift of a shared host favours none; and ratios
/// taken within each round, so that drift between rounds cancels.
enum Rounds {
    /// Each item of `order` once per round, round 0 in order, round 1 in reverse, and so on.
    static func alternating<Item>(_ order: [Item], rounds: Int) -> [(item: Item, round: Int)] {
        (0..<rounds).flatMap { round in (round % 2 == 0 ? order : order.reversed()).map { (item: $0, round: round) } }
    }

    /// The median, over `results`, of each one's ratio to its partner in the same round
    /// (`partner(round)`; results without one are left out); nil when none has a partner.
    static func medianRatio<Result>(_ results: [Result], round: (Result) -> Int, partner: (Int) -> Result?,
                                    ratio: (Result, Result) -> Double) -> Double? {
        results.compactMap { result in partner(round(result)).map { ratio(result, $0) } }.median
    }
}
