/// How a pool tells a live block of its own from anything else handed back to it, cheaply
/// enough for the fast path.
///
/// - **Where**: the offset from the region's base, multiplied by the modular inverse of the
///   block size's odd factor and rotated right by its power of two, is the block's index when
///   the address is the start of a block, and a number at least as large as the region's block
///   count otherwise (an address inside a block, before the region or past it). One
///   multiplication, one rotation and one comparison check range and alignment together.
/// - **Free or live**: a block given back carries the pool's random marker in its first word,
///   and a block handed out has that word cleared. The marker's low six bits are the block
///   size's power of two, so one register serves the fast path as both the rotation and the
///   marker (a rotation uses only the low six bits of its amount). A block that comes back with the
///   marker is already free (a double free). Blocks that were carved but not yet handed out
///   carry the marker too, and blocks past what was carved are refused by index.
///
/// The marker lives in the caller's memory: a program that writes the exact marker into the
/// first word of a live block it owns would be taken for a double free. The marker is drawn
/// from the system's random source for each pool, and no correct program ever reads it, since
/// it is only ever found in blocks that the program has given back.
@usableFromInline
struct BlockGuard: Sendable {
    /// The inverse, modulo 2^64, of the block size's odd factor.
    @usableFromInline let inverse: UInt64
    /// The block size's power of two (at least 4: sizes are multiples of 16).
    @usableFromInline let shift: UInt64
    /// The word a free block carries first.
    @usableFromInline let marker: UInt64
    let blockSize: Int

    init(blockSize: Int) {
        precondition(blockSize > 0 && blockSize % 16 == 0)
        self.blockSize = blockSize
        let shift = UInt64(blockSize.trailingZeroBitCount)
        let odd = UInt64(blockSize) >> shift
        var inverse = odd  // Newton's iteration: each step doubles the correct low bits (3, 6, ... 96).
        for _ in 0..<5 { inverse = inverse &* (2 &- odd &* inverse) }
        self.inverse = inverse
        self.shift = shift
        var random = SystemRandomNumberGenerator()
        var marker: UInt64 = 0
        while marker < 1 << 32 { marker = random.next() }  // never a small number a program might store
        self.marker = marker & ~63 | shift
    }

    /// The index of the block at `address` in a region starting at `base`, or a number at
    /// least the region's block count when `address` is not the start of one of its blocks.
    /// Only the low six bits of `shift` count (so the marker may stand in for it).
    @inlinable @inline(__always)
    static func index(of address: UInt, base: UInt, inverse: UInt64, shift: UInt64) -> UInt64 {
        let product = UInt64(address &- base) &* inverse
        return product.rotatedRight(by: shift)
    }

    @inline(__always)
    func index(of address: UnsafeRawPointer, base: UInt) -> UInt64 {
        Self.index(of: UInt(bitPattern: address), base: base, inverse: inverse, shift: shift)
    }

    /// Whether the first word of `block` is the free marker.
    @inline(__always)
    func isMarkedFree(_ block: UnsafeRawPointer) -> Bool { block.load(as: UInt64.self) == marker }

    @inline(__always)
    func markFree(_ block: UnsafeMutableRawPointer) { block.storeBytes(of: marker, as: UInt64.self) }

    /// Marks `count` consecutive blocks from `start` free (fresh blocks not yet handed out).
    func markFree(run start: UnsafeMutableRawPointer, count: Int) {
        for i in 0..<count { markFree(start + i * blockSize) }
    }

    /// Checks a block given back to a region of `blockCount` blocks at `base`, of which the
    /// first `carved` have been handed out at some time. Stops the program with a message that
    /// names `pool` and the address when it is not a live block; returns its index otherwise.
    func check(_ block: UnsafeRawPointer, base: UInt, blockCount: Int, carved: Int, pool: String) -> Int {
        let index = self.index(of: block, base: base)
        let offset = UInt(bitPattern: block) &- base
        if index >= UInt64(blockCount) {
            if offset < UInt(blockCount * blockSize) {
                let start = base + offset / UInt(blockSize) * UInt(blockSize)
                corruption(pool, block, "points \(offset % UInt(blockSize)) bytes into the block at 0x\(String(start, radix: 16))")
            }
            corruption(pool, block, "is not memory of this pool")
        }
        if index >= UInt64(carved) {
            corruption(pool, block, "is not a block this pool has handed out (never handed out, or given back before a trim)")
        }
        if isMarkedFree(block) { corruption(pool, block, "was already given back (double free)") }
        return Int(index)
    }
}

extension UInt64 {
    /// Rotates right by the low six bits of `amount`: one `ror` on x86-64.
    @inlinable @inline(__always)
    func rotatedRight(by amount: UInt64) -> UInt64 {
        (self &>> (amount & 63)) | (self &<< ((64 &- amount) & 63))
    }
}

/// Stops the program: a pointer handed back to `pool` is not one of its live blocks.
func corruption(_ pool: String, _ block: UnsafeRawPointer, _ reason: String) -> Never {
    fatalError("\(pool): deallocate(0x\(String(UInt(bitPattern: block), radix: 16))) \(reason)")
}
