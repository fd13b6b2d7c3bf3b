import CMemoryKernels
import Foundation
@testable import MembenchKit
import NUMA
import Testing
import TestSupport

@Suite("Bandwidth kernels")
struct BandwidthKernelTests {
    /// Three 64-byte aligned arrays of `bytes` each, filled with 1, 2, 3, ... per 64-bit word.
    static func arrays(_ bytes: Int) -> [UnsafeMutableRawPointer] {
        (0..<3).map { _ in
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            let words = p.bindMemory(to: UInt64.self, capacity: bytes / 8)
            for i in 0..<bytes / 8 { words[i] = UInt64(i + 1) }
            return p
        }
    }

    @Test("a kernel's arrays fit the buffer, in whole blocks, and never a power of two apart",
          arguments: BandwidthKernel.allCases)
    func layout(kernel: BandwidthKernel) {
        // Laid end to end, a copy's arrays were 256 MiB apart in a 512 MiB buffer: the lines it
        // touched at once shared their low address bits, and it read 0.72x likwid-bench.
        for size in [BandwidthKernel.minimumSize, 1 << 20, 3 << 20, 512 << 20, 1 << 30] {
            let (offsets, length) = kernel.layout(size: size)
            #expect(offsets.count == kernel.arrays && offsets.first == 0)
            #expect(length > 0 && length % 256 == 0)
            #expect((offsets.last ?? 0) + length <= size, "\(kernel) at \(size): arrays overrun the buffer")
            for (a, b) in zip(offsets, offsets.dropFirst()) {
                let distance = b - a
                #expect(distance >= length, "\(kernel) at \(size): arrays overlap")
                #expect(distance & (distance - 1) != 0, "\(kernel) at \(size): arrays \(distance) bytes apart, a power of two")
            }
        }
    }

    @Test("each kernel reads and writes what it says", arguments: [256, 4096, 1 << 20])
    func kernels(bytes: Int) {
        let a = Self.arrays(bytes)
        defer { a.forEach { $0.deallocate() } }
        let n = bytes / 8
        #expect(CMemoryKernels_read(a[0], bytes) == UInt64(8 * n - 28), "read reaches the last line: the sum of its words n-7...n")

        _ = CMemoryKernels_write(a[0], bytes, 7)
        #expect(UnsafeBufferPointer(start: a[0].assumingMemoryBound(to: UInt64.self), count: n).allSatisfy { $0 == 7 })
        _ = CMemoryKernels_copy(a[0], a[1], bytes)
        #expect(memcmp(a[0], a[1], bytes) == 0, "copy makes a equal to b")

        let y = a[1].bindMemory(to: Double.self, capacity: n), z = a[2].bindMemory(to: Double.self, capacity: n)
        for i in 0..<n {
            y[i] = Double(i)
            z[i] = 0.5 * Double(i)
        }
        _ = CMemoryKernels_triad(a[0], a[1], a[2], bytes)
        let x = a[0].bindMemory(to: Double.self, capacity: n)
        #expect((0..<n).allSatisfy { x[$0] == Double($0) + 3 * 0.5 * Double($0) }, "triad: a = b + 3c")

        if CMemoryKernels_has_nontemporal() != 0 {
            _ = CMemoryKernels_write_nontemporal(a[0], bytes, 9)
            #expect(UnsafeBufferPointer(start: a[0].assumingMemoryBound(to: UInt64.self), count: n).allSatisfy { $0 == 9 })
        }
    }
}

@Suite("membench bandwidth", .serialized)
struct BandwidthCLITests {
    static let quick = ["--size", "4MiB", "--duration", "0.1"]

    @Test("every kernel on every thread: totals are the threads' sum, the best kernel is the peak, pages counted")
    func everyKernel() throws {
        let output = try CLI.run(["bandwidth", "--json"] + Self.quick)
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        let threads = Topology.current.allowedCPUs.count
        let kernels = BandwidthKernel.allCases.filter { $0 != .ntWrite || CMemoryKernels_has_nontemporal() != 0 }
        #expect(records.count == kernels.count * (threads + 1))
        var peaks: [Double] = []
        for kernel in kernels {
            let rows = records.filter { $0["bandwidth_kernel"] as? String == kernel.rawValue }
            let total = try #require(rows.first { $0["scope"] as? String == "total" })
            let perThread = rows.filter { $0["scope"] as? String == "thread" }
            #expect(perThread.count == threads)
            let sum = perThread.compactMap { ($0["bytes_per_s"] as? NSNumber)?.doubleValue }.reduce(0, +)
            let rate = try #require((total["bytes_per_s"] as? NSNumber)?.doubleValue)
            #expect(rate > 0 && abs(rate - sum) <= rate * 1e-9, "\(kernel): total \(rate), threads \(sum)")
            peaks.append(try #require((total["vs_peak"] as? NSNumber)?.doubleValue))
            for row in perThread {
                let pages = ((row["pages_per_node"] as? String) ?? "").split(separator: ";")
                    .compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }.reduce(0, +)
                #expect(pages == (4 << 20) / 4096, "every page of a thread's buffer placed: \(row)")
            }
        }
        #expect(peaks.max() == 1 && peaks.allSatisfy { $0 > 0 && $0 <= 1 })
        let table = try CLI.run(["bandwidth", "--kernels", "read"] + Self.quick)
        #expect(table.stdout.contains("GB/s") && table.stdout.contains("read"), "\(table.stdout)")
    }

    @Test("--kernels picks the kernels, in the order given")
    func someKernels() throws {
        let output = try CLI.run(["bandwidth", "--kernels", "triad,read", "--threads", "1", "--json"] + Self.quick)
        #expect(output.status == 0, "\(output.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [[String: Any]])
        #expect(records.compactMap { $0["bandwidth_kernel"] as? String } == ["triad", "triad", "read", "read"])
    }

    @Test("--matrix: every CPU node against every memory node, with the kernel distances")
    func matrix() throws {
        let csv = CLI.temporaryPath(".csv")
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let output = try CLI.run(["bandwidth", "--matrix", "--csv", csv] + Self.quick)
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("read bandwidth (GB/s") && output.stdout.contains("kernel distances"))
        let topology = Topology.current
        let cpuNodes = topology.nodes.map(\.id).filter { !topology.allowedCPUs(on: [$0]).isEmpty }
        let rows = try CLI.rows(csv)
        #expect(rows.count == cpuNodes.count * topology.bindableNodes.count)
        for row in rows {
            #expect(row["bandwidth_kernel"] == "read" && row["scope"] == "total")
            let remote = row["cpu_node"] != row["memory_node"]
            #expect(Double(row["remote_share"] ?? "") == (remote ? 1 : 0), "\(row)")
            #expect(row["pages_per_node"]?.hasPrefix("\(row["memory_node"] ?? ""):") == true, "\(row)")
        }
    }

    @Test("bad input is one line naming the flag, exit 64", arguments: [
        (["--kernels", "scan"], "--kernels"), (["--kernels", "read,read"], "--kernels"),
        (["--threads", "0"], "--threads"), (["--threads", "100000"], "--threads"),
        (["--size", "100"], "--size"), (["--size", "1QB"], "--size"), (["--duration", "0s"], "--duration"),
        (["--matrix", "--membind", "0"], "--matrix"), (["--membind", "9999"], "--membind"),
        (["--page-size", "3k"], "--page-size"), (["--bogus"], "--bogus"),
    ])
    func usage(arguments: [String], flag: String) throws {
        try CLI.run(["bandwidth"] + arguments).expectOneLineError(status: 64, mentioning: flag)
    }

    @Test("a size beyond the memory there is refused, exit 1")
    func tooLarge() throws {
        try CLI.run(["bandwidth", "--size", "900TiB"]).expectOneLineError(status: 1, mentioning: "--size")
    }
}
