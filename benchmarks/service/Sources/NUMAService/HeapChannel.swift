import HummingbirdCore
import Logging
import NIOCore

/// Hummingbird's HTTP/1.1 child channel with `ChannelOptions.allocator` set first, so that the
/// socket's reads, and so request bodies, land in the given allocator's memory.
struct AllocatingHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let allocator: ByteBufferAllocator

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.setOption(ChannelOptions.allocator, value: allocator).flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with `allocator` on every accepted channel.
    static func http1(allocator: ByteBufferAllocator) -> HTTPServerBuilder {
        .init { responder in
            AllocatingHTTP1Channel(base: HTTP1Channel(responder: responder), allocator: allocator)
        }
    }
}
