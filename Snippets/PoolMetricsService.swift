// Pool health in a service's metrics: PoolMetrics exports every pool's counters and bytes
// through swift-metrics (whatever backend the service bootstrapped, Prometheus included), and
// PoolMetricsCollector takes the snapshots on an interval as a swift-service-lifecycle Service.
// A CapacityDriver sizes an object pool's idle objects per node from its own demand.
import Logging
import NUMAPool
import NUMAPoolMetrics
import ServiceLifecycle

// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry)) would go here.
let requests = try LocalPool(blockSize: 256, capacityPerNode: 64 << 20, name: "requests")
let buffers = try NUMAHeap(capacityPerNode: 256 << 20, name: "buffers")

let metrics = PoolMetrics()
metrics.add(requests)          // numapool_gets_total{pool="requests",node="all"}, ...
metrics.add(buffers)           // numapool_bytes{pool="buffers",node="0",state="resident"}, ...

let block = try requests.allocate()
requests.deallocate(block)
let reading = metrics.collect()["requests"]!
print("requests: gets \(reading.total(.gets)), reuse over the interval as numapool_reuse_ratio")

// Request contexts, their idle count per node sized by the demand controller (the SLO only
// vetoes shrinking); each decision is logged with its inputs and exported as metrics.
struct Context { var id = 0 }
let contexts = try ObjectPool(backing: requests, factory: { Context() }, reset: { $0.id = 0 })
let sizing = CapacityDriver(objects: contexts, name: "contexts",
                            policy: DemandController(minimum: 16, maximum: 4096, slo: .milliseconds(50)),
                            capacity: 256, window: .seconds(10), p99: { nil /* the service's p99 */ })

// In the service: both run beside the server and stop on SIGTERM.
let collector = PoolMetricsCollector(metrics: metrics, interval: .seconds(10))
let group = ServiceGroup(configuration: .init(services: [collector, sizing], gracefulShutdownSignals: [.sigterm],
                                              logger: Logger(label: "pools")))
_ = group  // try await group.run()
