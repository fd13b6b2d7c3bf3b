import CNuma

/// The heap's size classes: 16, 32, 48 and 64 bytes, then four classes per doubling up to
/// 64 KiB (80, 96, 112, 128, 160, 192, 224, 256, 320, ...), the spacing of jemalloc, Netty and
/// snmalloc. Above 64 bytes a size takes at most 20% more than it asked for (the step over the
/// class); at 64 bytes and below, the 16-byte granule of every block sets the spacing.
///
/// Class 0 is no class; classes 1 to `count` are the sizes, ascending.
enum SizeClasses {
    /// The largest size a class serves; larger allocations take chunks of their own.
    static let largest = 64 << 10

    /// The size of each class, index 0 unused.
    static let sizes: [Int] = {
        var sizes = [0, 16, 32, 48, 64]
        var step = 16
        while sizes.last! < largest {
            for _ in 0..<4 { sizes.append(sizes.last! + step) }
            step *= 2
        }
        return sizes
    }()

    /// Classes 1 to `count`.
    static var count: Int { sizes.count - 1 }

    /// Fills `CNuma_heap_cache_offsets`, the fast path's table, once: for each size, its class's
    /// cache offset in a thread's heap cache (class × `NUMAHeap.classStride`).
    static let tableFilled: Void = {
        var index = 0
        for c in 1...count {
            while index * 16 <= sizes[c] && index < Int(CNUMA_HEAP_CLASS_TABLE) {
                CNuma_heap_cache_offset_set(UInt(index), UInt16(c * NUMAHeap.classStride))
                index += 1
            }
        }
        CNuma_heap_cache_offset_set(0, 0)
    }()

    /// The smallest class that holds `size` bytes aligned to `alignment` (a power of two, at
    /// most a page), or nil when `size` is larger than `largest`. Blocks of a class lie at
    /// multiples of its size from a chunk's start, which is aligned to the chunk, so a class
    /// whose size is a multiple of the alignment gives aligned blocks.
    static func sizeClass(for size: Int, alignment: Int) -> Int? {
        guard size <= largest else { return nil }
        var c = 1
        while c <= count && (sizes[c] < size || sizes[c] % alignment != 0) { c += 1 }
        return c <= count ? c : nil
    }
}
