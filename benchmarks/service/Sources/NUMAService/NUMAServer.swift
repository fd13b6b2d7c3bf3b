import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import NUMA
import NUMAPool
import NUMAPoolMetrics
import Prometheus
import ServiceLifecycle

/// The service: Hummingbird on event loops pinned one per CPU, its contexts and buffers from
/// `RequestMemory`, pool health exported to a Prometheus registry served at `/metrics`, and,
/// with a policy, a `CapacityDriver` sizing the contexts' idle objects per node. It runs until
/// SIGTERM or SIGINT, then stops accepting, finishes the requests in flight, stops the
/// collector and the driver, and returns.
public enum NUMAServer {
    /// What a finished run served.
    public struct Summary: Sendable {
        public var begun: UInt64
        public var answered: UInt64
    }

    /// Runs the service. `onRunning` gets the port it listens on.
    public static func run(_ configuration: ServiceConfiguration, logger: Logger,
                           onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws -> Summary {
        try configuration.validate()
        let topology = Topology.current
        let cpus = try configuration.loopCPUs(topology: topology)
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let memory = try RequestMemory(configuration: configuration, topology: topology, factory: factory)
        if let reason = memory.fallbackReason {
            logger.warning("NUMAHeap buffers unavailable (\(reason)); NIO's default allocator serves the buffers")
        }

        let poolMetrics = PoolMetrics(factory: factory)
        if let contexts = memory.contexts { poolMetrics.add(contexts, name: "contexts") }
        if let backing = memory.backing { poolMetrics.add(backing) }
        if let heap = memory.heap { poolMetrics.add(heap) }
        var services: [any Service] = [PoolMetricsCollector(metrics: poolMetrics, interval: configuration.metricsInterval)]

        let durations = RequestDurations()
        if let contexts = memory.contexts {
            let p99: @Sendable () -> Duration? = { durations.takeP99() }
            switch configuration.policy {
            case .none:
                break
            case .slo:
                services.append(CapacityDriver(objects: contexts, name: "contexts",
                                               policy: SLORule(slo: configuration.slo, minimum: 16, cooldown: configuration.cooldown),
                                               capacity: 256, window: configuration.window, p99: p99,
                                               logger: logger, factory: factory))
            case .demand:
                services.append(CapacityDriver(objects: contexts, name: "contexts",
                                               policy: DemandController(minimum: 16, maximum: 4096, slo: configuration.slo,
                                                                        cooldown: configuration.cooldown),
                                               capacity: 256, window: configuration.window, p99: p99,
                                               logger: logger, factory: factory))
            }
        }

        let group: any EventLoopGroup
        let ownGroup: MultiThreadedEventLoopGroup?
        switch configuration.handlers {
        case .concurrency:
            let pinned = MultiThreadedEventLoopGroup(pinnedCPUIDs: cpus)
            group = pinned
            ownGroup = pinned
        case .eventLoops:
            // The singleton group is Swift's global executor (installed by the executable
            // before any task ran); its loops are pinned here, one per CPU.
            group = MultiThreadedEventLoopGroup.singleton
            ownGroup = nil
            let loops = Array(group.makeIterator())
            guard loops.count == cpus.count else {
                throw ServiceError.invalid("the event loop group has \(loops.count) loops for \(cpus.count) CPUs")
            }
            for (loop, cpu) in zip(loops, cpus) {
                try await loop.submit { try ThreadAffinity.set(CPUSet([cpu]), topology: topology) }.get()
            }
        }

        let routes = Routes(memory: memory, limit: configuration.limit, durations: durations, registry: registry,
                            statistics: { memory.readings() })
        let description = "allocator \(configuration.allocator.rawValue), policy \(configuration.policy.rawValue), "
            + "handlers on \(configuration.handlers.rawValue), event loops on CPUs \(cpus.map(String.init).joined(separator: ","))"
        let app = Application(
            router: routes.router(),
            server: .http1(allocator: memory.bufferAllocator),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "numa-service"),
            services: services,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.info("listening on \(configuration.host):\(port) (\(description))")
                onRunning(port)
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger
        )
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch {
            try? await ownGroup?.shutdownGracefully()
            throw error
        }
        try? await ownGroup?.shutdownGracefully()
        memory.heap?.stopPurger()
        return Summary(begun: routes.ids.load(ordering: .relaxed), answered: routes.answered.load(ordering: .relaxed))
    }
}
