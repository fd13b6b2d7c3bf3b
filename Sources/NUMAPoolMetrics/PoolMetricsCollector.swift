import ServiceLifecycle

/// Collects `PoolMetrics` on an interval, as a swift-service-lifecycle `Service`: run it in the
/// service's `ServiceGroup`; on graceful shutdown it collects once more and returns.
public struct PoolMetricsCollector: Service {
    /// What it collects.
    public let metrics: PoolMetrics
    /// The time between two collections.
    public let interval: Duration

    /// Collects `metrics` every `interval` (10 s by default, a usual scrape interval).
    public init(metrics: PoolMetrics, interval: Duration = .seconds(10)) {
        precondition(interval > .zero, "the collection interval must be positive")
        self.metrics = metrics
        self.interval = interval
    }

    /// Collects until the task is cancelled or a graceful shutdown begins, then once more.
    public func run() async throws {
        let metrics = self.metrics, interval = self.interval
        // Sleeping is all that throws, and only when the loop is cancelled.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                metrics.collect()
                try await Task.sleep(for: interval)
            }
        }
        metrics.collect()
    }
}
