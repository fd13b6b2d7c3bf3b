import Histogram
import NIOConcurrencyHelpers

/// Request durations of the current window in an HdrHistogram (microseconds, to a minute): what
/// the capacity controllers read as p99.
public final class RequestDurations: Sendable {
    private let histogram = NIOLockedValueBox(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .two))

    public init() {}

    public func record(_ duration: Duration) {
        let microseconds = UInt64(max(0, duration / .microseconds(1)))
        histogram.withLockedValue { _ = $0.record(min(microseconds, 60_000_000)) }
    }

    /// The window's p99, and a new window; nil when no request ended in it.
    public func takeP99() -> Duration? {
        histogram.withLockedValue { histogram in
            guard histogram.totalCount > 0 else { return nil }
            let p99 = histogram.valueAtPercentile(99)
            histogram.reset()
            return .microseconds(Int64(p99))
        }
    }
}
