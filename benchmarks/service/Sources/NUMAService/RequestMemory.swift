import Atomics
import Metrics
import NIOCore
import NUMA
import NUMAPool
import NUMAPoolMetrics
import NUMAPoolNIO

/// What a request keeps while it is served: the parsed head and a scratch buffer that replies
/// are built from. One per request, from the `ObjectPool` (or from `malloc` as the baseline).
public struct RequestScratch {
    /// The request's number, in arrival order.
    public var id: UInt64 = 0
    /// Header fields the request carried.
    public var headerCount = 0
    /// The body's length, or the reply's.
    public var contentLength = 0
    /// The pattern a reply's bytes repeat.
    public var scratch = InlineArray<256, UInt8>(repeating: 0)

    public init() {}
}

/// Where a request's context and its buffers come from, by `--allocator`:
/// - `malloc`: a Swift allocation per context, NIO's default `ByteBufferAllocator` (the baseline);
/// - `local`: an `ObjectPool` on a `LocalPool` (each node's blocks for its threads) and the
///   `NUMAHeap` on the node of the thread that allocates;
/// - `global`: an `ObjectPool` on a `GlobalPool` spread over the nodes, and the heap's arenas
///   in turn (`NUMAByteBufferAllocator.Placement.spread`).
public final class RequestMemory: Sendable {
    public let allocatorKind: ServiceConfiguration.Allocator
    /// The contexts' pool; nil for `malloc`.
    public let contexts: ObjectPool<RequestScratch>?
    /// The pool behind `contexts`.
    public let backing: (any BlockPool)?
    /// The heap behind `bufferAllocator`; nil for `malloc`, or when it could not be made.
    public let heap: NUMAHeap?
    /// The allocator of request and response bodies: the heap's, or NIO's default.
    public let bufferAllocator: ByteBufferAllocator
    /// Why the heap's allocator is not used, when it is not (logged as a warning).
    public let fallbackReason: String?
    private let placement: PlacementCounter?
    /// Requests whose context the pool could not lend, served from a Swift allocation instead.
    public let leaseFailures = ManagedAtomic<Int>(0)

    /// The block size of the contexts' pool: a `RequestScratch` rounded to a pool block.
    static let contextBlockSize = 512

    public init(configuration: ServiceConfiguration, topology: Topology = .current,
                factory: any MetricsFactory) throws {
        allocatorKind = configuration.allocator
        placement = configuration.placementSample > 0
            ? PlacementCounter(every: configuration.placementSample, topology: topology, factory: factory) : nil
        let nodes = topology.bindableNodes
        switch configuration.allocator {
        case .malloc:
            contexts = nil
            backing = nil
            heap = nil
            bufferAllocator = ByteBufferAllocator()
            fallbackReason = nil
            return
        case .local:
            let pool = try LocalPool(blockSize: Self.contextBlockSize, capacityPerNode: configuration.contextBytesPerNode,
                                     binding: .preferred, name: "contexts-blocks")
            backing = pool
        case .global:
            let pool = try GlobalPool(blockSize: Self.contextBlockSize, capacity: configuration.contextBytesPerNode * nodes.count,
                                      placement: .spread(nodes), name: "contexts-blocks")
            backing = pool
        }
        contexts = try ObjectPool(backing: backing!, maxIdle: 4096, factory: { RequestScratch() },
                                  reset: { $0.id = 0; $0.headerCount = 0; $0.contentLength = 0 })
        var made: NUMAHeap?
        var reason: String?
        do {
            let heap = try NUMAHeap(capacityPerNode: configuration.heapArenaBytes(topology: topology), binding: .preferred,
                                    decay: configuration.decay, purger: configuration.purger, name: "buffers")
            bufferAllocator = try NUMAByteBufferAllocator.install(heap, placement: configuration.allocator == .global ? .spread : .local)
            made = heap
        } catch {
            reason = "\(error)"
            bufferAllocator = ByteBufferAllocator()
        }
        heap = made
        fallbackReason = reason
    }

    /// Each pool's statistics now, by the name it is exported under.
    public func readings() -> [String: PoolReading] {
        var readings: [String: PoolReading] = [:]
        if let contexts { readings["contexts"] = PoolReading(contexts.statistics()) }
        if let backing { readings[backing.name] = PoolReading(backing.statistics()) }
        if let heap { readings[heap.name] = PoolReading(heap.statistics()) }
        return readings
    }

    /// Runs `body` with the request's context: a lease of the pool, or a Swift allocation, given
    /// back when `body` returns.
    public func withContext(_ body: (inout RequestScratch) async throws -> Void) async throws {
        // The reply's head is sent before this runs, so a pool that cannot lend (its memory
        // exhausted) must not fail the reply: such a request takes a Swift allocation, counted.
        if let contexts, let lease = try? contexts.lease() {
            if let placement {
                placement.count(.context) { contexts.homeNode(of: lease) }
            }
            return try await body(&lease.value)
        }
        if contexts != nil { leaseFailures.wrappingIncrement(ordering: .relaxed) }
        let context = UnsafeMutablePointer<RequestScratch>.allocate(capacity: 1)
        context.initialize(to: RequestScratch())
        defer {
            context.deinitialize(count: 1)
            context.deallocate()
        }
        if let placement {
            placement.count(.context) { PlacementCounter.pageNode(of: UnsafeRawPointer(context)) }
        }
        return try await body(&context.pointee)
    }

    /// Counts where a buffer's bytes are against the node of the CPU that runs the request: the
    /// heap's arena for its buffers, the page's node (`move_pages`) for any other.
    public func count(buffer: ByteBuffer) {
        guard let placement else { return }
        let heap = self.heap
        placement.count(.buffer) {
            buffer.withUnsafeReadableBytes { bytes in
                bytes.baseAddress.flatMap { heap?.homeNode(of: $0) ?? PlacementCounter.pageNode(of: $0) }
            }
        }
    }
}
