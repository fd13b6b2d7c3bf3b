import CNuma
import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// Read-only pages whose every word is a free marker, in one anonymous file (memfd_create(2)):
/// a heap or pool maps them over pages of its memory that hold only free blocks, in place of
/// memory given back to the kernel. A free block there still reads as free, so the fast paths'
/// double-free check holds for it with no extra instruction, while the memory goes back (the
/// file's few pages per kind are shared by every mapping). A write to such a block, which only
/// a use after free makes, stops the program (SIGSEGV).
///
/// The file has `pagesPerKind` pages for each kind of marker (the heap's size classes, or a
/// pool's one), written the first time the kind is used; a run of more pages takes one mapping
/// per `pagesPerKind`.
final class MarkerPages: @unchecked Sendable {
    // @unchecked: `fd` is immutable; `filled` is behind its lock.
    static let pagesPerKind = 16
    let fd: Int32
    private let filled = Locked<Set<Int>>([])

    /// Room for `kinds` markers. Nil when the system gives no anonymous file: free pages
    /// then stay with their owner.
    init?(kinds: Int) {
        let fd = CNuma_memfd("numa-heap-markers")
        guard fd >= 0 else { return nil }
        let bytes = kinds * Self.pagesPerKind * PagePlacement.basePageSize
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The file offset of the pages of `kind`, written with `marker` on first use; nil if the
    /// write failed.
    func offset(of kind: Int, marker: UInt64) -> Int? {
        let bytes = Self.pagesPerKind * PagePlacement.basePageSize
        let offset = kind * bytes
        let ready = filled.withLock { filled -> Bool in
            if filled.contains(kind) { return true }
            let words = [UInt64](repeating: marker, count: bytes / 8)
            let written = words.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes, off_t(offset)) }
            guard written == bytes else { return false }
            filled.insert(kind)
            return true
        }
        return ready ? offset : nil
    }
}
