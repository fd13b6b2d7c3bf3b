// Built with the package's "NIO" trait; without it this module is empty, and a user of the
// pools alone never builds swift-nio.
#if NIO
import Atomics
#if canImport(Glibc)
import Glibc
#endif
public import NUMAPool
@_spi(CustomByteBufferAllocator) public import NIOCore

/// swift-nio `ByteBuffer`s whose bytes come from a `NUMAHeap`.
///
/// NIO's custom allocator (`ByteBufferAllocator(allocate:reallocate:deallocate:copy:)`, SPI
/// `CustomByteBufferAllocator`, swift-nio 2.101 and later) takes C function pointers, which carry
/// no context: the heap is therefore one per process, installed once by `install(_:placement:)`.
/// Set the allocator it returns on accepted channels (`ChannelOptions.allocator`) so that request
/// bodies are read into the heap, and build replies with it.
///
/// - `deallocate` gets no size: the heap finds it from the address.
/// - `reallocate` keeps the block when its size class already holds the new size; otherwise
///   it moves the bytes to a new block (on the calling thread's node, or the next node in turn).
/// - When the heap cannot serve a size (an arena full under `.strict`), the bytes come from
///   `malloc` and are counted in `fallbacks`; freeing tells the two apart by address, so such
///   a buffer goes back to `free`.
public enum NUMAByteBufferAllocator {
    /// Where a buffer's bytes go.
    public enum Placement: Sendable, Equatable {
        /// The heap's arena on the node of the thread that allocates (`NUMAHeap.allocate(byteCount:)`).
        case local
        /// The heap's arenas in turn, spread evenly over the nodes whatever the caller's pattern
        /// (`NUMAHeap.allocate(byteCount:on:)`, which takes the arena's lock every time): memory
        /// spread over the nodes, as a global pool's.
        case spread
    }

    /// The installed heap, its placement, and the counts of the callbacks.
    final class Installed: Sendable {
        let heap: NUMAHeap
        let placement: Placement
        let nodes: [Int]
        let turn = ManagedAtomic<Int>(0)
        let fallbacks = ManagedAtomic<Int>(0)

        init(heap: NUMAHeap, placement: Placement) {
            self.heap = heap
            self.placement = placement
            nodes = heap.nodes
        }
    }

    /// Set once; the callbacks read it. A buffer may outlive any scope, so the heap is never
    /// uninstalled.
    static let installed = ManagedAtomicLazyReference<Installed>()

    /// Makes `heap` the process's ByteBuffer heap and returns the allocator that uses it.
    /// Installing the same heap again returns the same allocator (its placement must match);
    /// another heap throws `PoolError.invalidArgument`, since the callbacks cannot tell heaps
    /// apart.
    public static func install(_ heap: NUMAHeap, placement: Placement = .local) throws(PoolError) -> ByteBufferAllocator {
        let current = installed.storeIfNilThenLoad(Installed(heap: heap, placement: placement))
        guard current.heap === heap, current.placement == placement else {
            throw .invalidArgument("the process's ByteBuffer heap is already \(current.heap.name) (\(current.placement)); "
                                   + "NIO's allocator callbacks carry no context, so a process has one")
        }
        return allocator
    }

    /// The installed heap, if any.
    public static var heap: NUMAHeap? { installed.load()?.heap }

    /// Allocations the heap could not serve, which came from `malloc` instead.
    public static var fallbacks: Int { installed.load()?.fallbacks.load(ordering: .relaxed) ?? 0 }

    static let allocator = ByteBufferAllocator(
        allocate: { size in NUMAByteBufferAllocator.allocate(size) },
        reallocate: { pointer, oldSize, newSize in NUMAByteBufferAllocator.reallocate(pointer, oldSize, newSize) },
        deallocate: { pointer in NUMAByteBufferAllocator.deallocate(pointer) },
        copy: { destination, source, count in destination.copyMemory(from: source, byteCount: count) }
    )

    static func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        let byteCount = max(size, 1)
        guard let state = installed.load() else { return malloc(byteCount) }
        do throws(PoolError) {
            switch state.placement {
            case .local:
                return try state.heap.allocate(byteCount: byteCount)
            case .spread:
                // The turns are hashed (Fibonacci hashing) so that a caller that allocates
                // twice per request does not take the same node every time.
                let turn = UInt64(UInt(bitPattern: state.turn.loadThenWrappingIncrement(ordering: .relaxed)))
                let node = state.nodes[Int(((turn &* 0x9E37_79B9_7F4A_7C15) >> 32) % UInt64(state.nodes.count))]
                return try state.heap.allocate(byteCount: byteCount, on: node)
            }
        } catch {
            state.fallbacks.wrappingIncrement(ordering: .relaxed)
            return malloc(byteCount)
        }
    }

    static func reallocate(_ pointer: UnsafeMutableRawPointer?, _ oldSize: Int, _ newSize: Int) -> UnsafeMutableRawPointer? {
        guard let pointer else { return allocate(newSize) }
        guard let state = installed.load(), state.heap.homeNode(of: pointer) != nil else {
            return realloc(pointer, max(newSize, 1))
        }
        if newSize <= state.heap.usableSize(of: pointer) { return pointer }
        guard let moved = allocate(newSize) else { return nil }
        moved.copyMemory(from: pointer, byteCount: min(oldSize, newSize))
        state.heap.deallocate(pointer)
        return moved
    }

    static func deallocate(_ pointer: UnsafeMutableRawPointer) {
        if let state = installed.load(), state.heap.homeNode(of: pointer) != nil {
            state.heap.deallocate(pointer)
        } else {
            free(pointer)
        }
    }
}
#endif
