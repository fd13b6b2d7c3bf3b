import Dispatch
import NIOCore
import NUMAPool
import NUMAPoolNIO
import NIOConcurrencyHelpers
import Testing

/// The process's ByteBuffer heap for these tests: strict, one 4 MiB arena per node, so that a
/// larger buffer cannot be served and falls back on malloc.
let testHeap: NUMAHeap = try! NUMAHeap(capacityPerNode: 4 << 20, binding: .strict, purger: false, name: "nio-test")

@Suite("NUMAPoolNIO: ByteBuffers from a NUMAHeap", .serialized)
struct ByteBufferAllocatorTests {
    let allocator = try! NUMAByteBufferAllocator.install(testHeap)

    @Test("a buffer's bytes are the heap's, on its node, and go back when the buffer ends")
    func bytesFromTheHeap() throws {
        let before = testHeap.statistics()
        do {
            var buffer = allocator.buffer(capacity: 1000)
            buffer.writeBytes((0..<1000).map { UInt8(truncatingIfNeeded: $0) })
            try buffer.withUnsafeReadableBytes { bytes in
                let base = try #require(bytes.baseAddress)
                #expect(testHeap.homeNode(of: base) != nil)
                #expect(testHeap.usableSize(of: base) >= 1000)
            }
            #expect(testHeap.statistics().gets > before.gets)
            #expect(buffer.readBytes(length: 1000) == (0..<1000).map { UInt8(truncatingIfNeeded: $0) })
        }
        let after = testHeap.statistics()
        #expect(after.perNode.values.map(\.bytesInUse).reduce(0, +) == before.perNode.values.map(\.bytesInUse).reduce(0, +))
    }

    /// NIO asks for powers of two, which are class sizes (and above 256 KiB whole chunks), so
    /// every growth here moves the bytes to a new block.
    @Test("a buffer that grows keeps its bytes as it moves to larger blocks and into chunks")
    func growth() throws {
        var buffer = allocator.buffer(capacity: 20)
        let first = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        var expected: [UInt8] = []
        for round in 0..<300_000 {
            let byte = UInt8(truncatingIfNeeded: round &* 31)
            buffer.writeInteger(byte)
            expected.append(byte)
        }
        #expect(buffer.readableBytes == 300_000)
        try buffer.withUnsafeReadableBytes { bytes in
            let base = try #require(bytes.baseAddress)
            #expect(UInt(bitPattern: base) != first)
            #expect(testHeap.homeNode(of: base) != nil, "a 300 KB buffer takes whole chunks of the heap")
        }
        #expect(buffer.readBytes(length: 300_000) == expected)
    }

    @Test("what a full strict arena cannot hold comes from malloc, is counted, and is freed by free")
    func fallback() throws {
        let fallbacks = NUMAByteBufferAllocator.fallbacks
        var misses = 0
        do {
            // 1 MiB buffers (four chunks each) into the 4 MiB arena of this node until one does
            // not fit: how many fit first depends on what earlier tests left in the arena and
            // in their threads' caches, but the arena is full by the fifth.
            var buffers: [ByteBuffer] = []
            var homes: [Int?] = []
            while homes.last != .some(nil) && buffers.count < 5 {
                var buffer = allocator.buffer(capacity: 1 << 20)
                buffer.writeRepeatingByte(UInt8(buffers.count), count: 1 << 20)
                homes.append(buffer.withUnsafeReadableBytes { testHeap.homeNode(of: $0.baseAddress!) })
                buffers.append(buffer)
            }
            misses = homes.count { $0 == nil }
            #expect(homes.last == .some(nil), "\(homes)")
            for (index, buffer) in buffers.enumerated() {
                #expect(buffer.readableBytesView.allSatisfy { $0 == UInt8(index) })
            }
        }
        #expect(NUMAByteBufferAllocator.fallbacks == fallbacks + misses)
    }

    /// As on a server: an event loop reads into a buffer, a handler on another thread builds a
    /// reply, and the loop frees both. Under ThreadSanitizer this is the adapter's race check.
    @Test("buffers made on some threads and grown and freed on others keep their bytes")
    func acrossThreads() throws {
        let allocator = self.allocator
        let made = NIOLockedValueBox<[ByteBuffer]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for round in 0..<200 {
                var buffer = allocator.buffer(capacity: 64 + round * 8)
                buffer.writeRepeatingByte(UInt8(truncatingIfNeeded: worker &+ round), count: 64 + round * 8)
                made.withLockedValue { $0.append(buffer) }
            }
        }
        // Each buffer taken out of the shared list, so that it is the only reference and grows
        // in place (NIO's reallocate) rather than being copied.
        let list = NIOLockedValueBox(made.withLockedValue { made in
            defer { made.removeAll() }
            return made
        })
        let total = list.withLockedValue { $0.count }
        #expect(total == 800)
        let intact = NIOLockedValueBox(0)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for index in stride(from: worker, to: total, by: 4) {
                var buffer = list.withLockedValue { list in
                    defer { list[index] = ByteBuffer() }
                    return list[index]
                }
                let first = buffer.getInteger(at: 0, as: UInt8.self)!
                let length = buffer.readableBytes
                buffer.writeRepeatingByte(first, count: 5000)  // grows: reallocate, on another thread
                if buffer.readableBytesView.allSatisfy({ $0 == first }) && buffer.readableBytes == length + 5000 {
                    intact.withLockedValue { $0 += 1 }
                }
            }
        }
        #expect(intact.withLockedValue { $0 } == 800)
    }

    @Test("a second heap cannot be installed: the callbacks carry no context")
    func oneHeap() throws {
        let other = try NUMAHeap(capacityPerNode: 1 << 20, purger: false, name: "other")
        #expect(throws: PoolError.self) { try NUMAByteBufferAllocator.install(other) }
        #expect(throws: PoolError.self) { try NUMAByteBufferAllocator.install(testHeap, placement: .spread) }
        #expect(NUMAByteBufferAllocator.heap === testHeap)
    }
}
