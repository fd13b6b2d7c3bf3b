import CNuma
import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// Read-only pages whose every word is a size class's free marker, in one anonymous file
/// (memfd_create(2)) per heap: the heap maps them over pages of a chunk that hold only free
/// blocks, in place of memory given back to the kernel. A free block there still reads as
/// free, so the fast paths' double-free check holds for it with no extra instruction, while
/// the memory goes back (the file's few pages per class are shared by every mapping). A write
/// to such a block, which only a use after free makes, stops the program (SIGSEGV).
///
/// Each class has `pagesPerClass` pages in the file, written the first time it is used; a run
/// of more pages takes one mapping per `pagesPerClass`.
final class MarkerPages: @unchecked Sendable {
    // @unchecked: `fd` is immutable; `filled` is behind its lock.
    static let pagesPerClass = 16
    let fd: Int32
    private let filled = Locked<Set<Int>>([])

    /// Nil when the system gives no anonymous file: the heap then gives back only whole chunks
    /// and the inner pages of large blocks.
    init?() {
        let fd = CNuma_memfd("numa-heap-markers")
        guard fd >= 0 else { return nil }
        let bytes = (SizeClasses.count + 1) * Self.pagesPerClass * PagePlacement.basePageSize
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The file offset of `sizeClass`'s pages, written with `marker` on first use; nil if the
    /// write failed.
    func offset(of sizeClass: Int, marker: UInt64) -> Int? {
        let bytes = Self.pagesPerClass * PagePlacement.basePageSize
        let offset = sizeClass * bytes
        let ready = filled.withLock { filled -> Bool in
            if filled.contains(sizeClass) { return true }
            let words = [UInt64](repeating: marker, count: bytes / 8)
            let written = words.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes, off_t(offset)) }
            guard written == bytes else { return false }
            filled.insert(sizeClass)
            return true
        }
        return ready ? offset : nil
    }
}
