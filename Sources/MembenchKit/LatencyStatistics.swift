import Histogram

/// Latency samples in nanoseconds per access: the mean and standard deviation exactly
/// (Welford's method), percentiles from an HdrHistogram at picosecond resolution.
public struct LatencyStatistics: Sendable {
    public private(set) var count = 0
    private var runningMean = 0.0
    private var squares = 0.0
    public private(set) var minimum = Double.infinity
    public private(set) var maximum = 0.0
    private var histogram = Histogram<UInt64>(highestTrackableValue: 1_000_000_000, numberOfSignificantValueDigits: .three)

    public init() {
        histogram.autoResize = true
    }

    /// Adds one sample, in ns per access.
    public mutating func record(_ nanoseconds: Double) {
        count += 1
        let delta = nanoseconds - runningMean
        runningMean += delta / Double(count)
        squares += delta * (nanoseconds - runningMean)
        minimum = min(minimum, nanoseconds)
        maximum = max(maximum, nanoseconds)
        _ = histogram.record(UInt64(max(0, (nanoseconds * 1000).rounded())))
    }

    /// Folds another set of samples in (Chan's parallel update).
    public mutating func merge(_ other: LatencyStatistics) {
        guard other.count > 0 else { return }
        guard count > 0 else { self = other; return }
        let total = count + other.count
        let delta = other.runningMean - runningMean
        squares += other.squares + delta * delta * Double(count) * Double(other.count) / Double(total)
        runningMean += delta * Double(other.count) / Double(total)
        count = total
        minimum = min(minimum, other.minimum)
        maximum = max(maximum, other.maximum)
        histogram.add(other.histogram)
    }

    public var mean: Double { count == 0 ? 0 : runningMean }
    /// The sample standard deviation (n − 1).
    public var standardDeviation: Double { count < 2 ? 0 : (squares / Double(count - 1)).squareRoot() }
    /// The value at `percentile` (0–100), in ns, to the histogram's three significant digits.
    public func percentile(_ percentile: Double) -> Double {
        count == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
    }

    public var summary: LatencySummary {
        LatencySummary(samples: count, mean: mean, standardDeviation: standardDeviation,
                       min: count == 0 ? 0 : minimum, p50: percentile(50), p90: percentile(90),
                       p99: percentile(99), p999: percentile(99.9), max: maximum)
    }

    /// The percentile curve: (percentile, ns) pairs for plotting.
    public func curve() -> [(percentile: Double, nanoseconds: Double)] {
        guard count > 0 else { return [] }
        return [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100].map { ($0, percentile($0)) }
    }
}

/// What a report shows of a set of latency samples, in ns per access.
public struct LatencySummary: Sendable, Codable, Equatable {
    public var samples: Int
    public var mean: Double
    public var standardDeviation: Double
    public var min: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
}
