import Histogram

/// Latency samples in nanoseconds per access: the mean and standard deviation exactly
/// (Welford's method), percentiles from an HdrHistogram at picosecond resolution, and the
/// windows of `WindowStatistic`.
public struct LatencyStatistics: Sendable {
    public private(set) var count = 0
    private var runningMean = 0.0
    private var squares = 0.0
    public private(set) var minimum = Double.infinity
    public private(set) var maximum = 0.0
    private var histogram = Histogram<UInt64>(highestTrackableValue: 1_000_000_000, numberOfSignificantValueDigits: .three)
    public private(set) var windows: WindowStatistic

    /// Samples cut into windows of `windowSeconds` each.
    public init(windowSeconds: Double = 0.5) {
        histogram.autoResize = true
        windows = WindowStatistic(seconds: windowSeconds)
    }

    /// Adds one timed sample: `nanoseconds` for `loads` dependent loads.
    public mutating func record(nanoseconds: UInt64, loads: Int) {
        record(Double(nanoseconds) / Double(loads))
        windows.add(nanoseconds: nanoseconds, loads: UInt64(loads))
    }

    /// Ends the sampling: a last window shorter than half the window length counts only when
    /// it is the only one.
    public mutating func finish() { windows.finish() }

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
        guard count > 0 else {
            self = other
            return
        }
        let total = count + other.count
        let delta = other.runningMean - runningMean
        squares += other.squares + delta * delta * Double(count) * Double(other.count) / Double(total)
        runningMean += delta * Double(other.count) / Double(total)
        count = total
        minimum = min(minimum, other.minimum)
        maximum = max(maximum, other.maximum)
        histogram.add(other.histogram)
        windows.merge(other.windows)
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
                       p99: percentile(99), p999: percentile(99.9), max: maximum,
                       windows: windows.count, windowSeconds: windows.seconds, bestWindow: windows.best,
                       medianWindow: windows.median)
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
    /// multichase's statistic: windows measured, their length, and the lowest and the median
    /// of the windows' ns per access (nil without samples).
    public var windows = 0
    public var windowSeconds = 0.5
    public var bestWindow: Double?
    public var medianWindow: Double?
}

/// The run cut into windows of fixed time, each read as its loads' average ns per access, as
/// multichase reports (its default is the best of 0.5 s windows). Unlike the per-sample
/// deviation, which is the spread of short batch means, the windows show drift across the run.
public struct WindowStatistic: Sendable, Equatable {
    public struct Window: Sendable, Equatable {
        public var nanoseconds: UInt64
        public var loads: UInt64
        public var nanosecondsPerLoad: Double { loads == 0 ? 0 : Double(nanoseconds) / Double(loads) }
    }

    public let seconds: Double
    /// Closed windows, in time order.
    public private(set) var closed: [Window] = []
    private var open = Window(nanoseconds: 0, loads: 0)
    private var finished = false

    public init(seconds: Double) {
        precondition(seconds > 0)
        self.seconds = seconds
    }

    public mutating func add(nanoseconds: UInt64, loads: UInt64) {
        open.nanoseconds += nanoseconds
        open.loads += loads
        if Double(open.nanoseconds) >= seconds * 1e9 {
            closed.append(open)
            open = Window(nanoseconds: 0, loads: 0)
        }
    }

    public mutating func finish() {
        guard !finished else { return }
        finished = true
        // The samples add up to a little less than the run (the clock reads between them), so
        // the last window is kept from half its length; shorter, only when it is the only one.
        if open.loads > 0 && (closed.isEmpty || Double(open.nanoseconds) >= seconds * 0.5e9) { closed.append(open) }
        open = Window(nanoseconds: 0, loads: 0)
    }

    /// Threads' windows, index by index (all start together): window k of the merge is every
    /// thread's window k, time and loads summed, so its ns per access is weighted by loads.
    /// Windows only some threads reached are dropped.
    public mutating func merge(_ other: WindowStatistic) {
        let count = min(closed.count, other.closed.count)
        closed = (0..<count).map {
            Window(nanoseconds: closed[$0].nanoseconds + other.closed[$0].nanoseconds,
                   loads: closed[$0].loads + other.closed[$0].loads)
        }
    }

    public var count: Int { closed.count }
    public var best: Double? { closed.map(\.nanosecondsPerLoad).min() }
    public var median: Double? { closed.map(\.nanosecondsPerLoad).median }
}

extension Array where Element == Double {
    /// The middle value, or the mean of the two middle ones; nil for none.
    var median: Double? {
        guard !isEmpty else { return nil }
        let sorted = self.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
