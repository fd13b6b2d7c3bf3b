import Foundation
import NUMA
@testable import NUMAPool
import Testing

final class Buffer {
    var bytes: [UInt8] = []
    var owner = ""
}

struct Counter {
    var value = 0
    var valid = true
}

@Suite("ObjectPool")
struct ObjectPoolTests {
    static func pool(_ strategy: Strategy, validate: (@Sendable (borrowing Buffer) -> Bool)? = nil) throws -> ObjectPool<Buffer> {
        try ObjectPool(backing: strategy.make(blockSize: 16, capacity: 1 << 20),
                       factory: { Buffer() }, reset: { $0.bytes.removeAll(); $0.owner = "" }, validate: validate)
    }

    @Test("state set before a return is never seen by the next lease", arguments: Strategy.allCases)
    func reset(strategy: Strategy) throws {
        let pool = try Self.pool(strategy)
        do {
            let lease = try pool.lease()
            lease.value.bytes = [1, 2, 3]
            lease.value.owner = "first"
            lease.release()
        }
        let next = try pool.lease()
        #expect(next.value.bytes.isEmpty)
        #expect(next.value.owner == "")
        let stats = pool.statistics()
        #expect(stats.hits == 1 && stats.misses == 1 && stats.gets == 2 && stats.puts == 1)
    }

    @Test("a lease's home node is its block's in the backing pool", arguments: Strategy.allCases)
    func homeNode(strategy: Strategy) throws {
        let backing = try strategy.make(blockSize: 16, capacity: 1 << 20)
        let pool = try ObjectPool(backing: backing, factory: { Counter() }, reset: { $0.value = 0 })
        let lease = try pool.lease()
        lease.value.value = 1
        let found = pool.homeNode(of: lease)
        let home = try #require(found)
        #expect(Topology.current.bindableNodes.contains(home))
        #expect(backing.homeNode(of: UnsafeRawPointer(lease.slot)) == home)
    }

    @Test("dropping a lease returns the object; withObject lends for a scope")
    func scoped() throws {
        let pool = try Self.pool(.local)
        do { _ = try pool.lease() }
        #expect(pool.idleCount == 1)
        let count = try pool.withObject { buffer in
            buffer.bytes.append(9)
            return buffer.bytes.count
        }
        #expect(count == 1)
        #expect(pool.idleCount == 1)
        #expect(try pool.withObject { $0.bytes.count } == 0)
    }

    @Test("a class object still referenced on return is dropped untouched and counted as escaped", arguments: Strategy.allCases)
    func escape(strategy: Strategy) throws {
        let resets = Locked(0)
        let pool = try ObjectPool(backing: strategy.make(blockSize: 16, capacity: 1 << 20),
                                  factory: { Buffer() },
                                  reset: { buffer in
                                      resets.withLock { $0 += 1 }
                                      buffer.bytes.removeAll()
                                      buffer.owner = ""
                                  })
        var kept: Buffer?
        do {
            let lease = try pool.lease()
            lease.value.bytes = [1, 2, 3]
            lease.value.owner = "holder"
            kept = lease.value
        }
        // The holder's object was not reset under it, and the pool let it go.
        #expect(kept?.bytes == [1, 2, 3])
        #expect(kept?.owner == "holder")
        #expect(resets.withLock { $0 } == 0)
        #expect(pool.statistics().escaped == 1)
        #expect(pool.idleCount == 0)
        let fresh = try pool.lease()
        #expect(fresh.value !== kept)
        #expect(isKnownUniquelyReferenced(&kept), "the pool holds no reference to the escaped object")
    }

    @Test("validation rejects objects before reuse and counts them")
    func validation() throws {
        let backing = try LocalPool(blockSize: 16, capacityPerNode: 1 << 20)
        let pool = try ObjectPool(backing: backing, factory: { Counter() }, reset: { $0.value = 0 },
                                  validate: { $0.valid })
        do {
            let lease = try pool.lease()
            lease.value.valid = false
        }
        do {
            let lease = try pool.lease()
            #expect(lease.value.valid)
        }
        let stats = pool.statistics()
        #expect(stats.rejected == 1)
        #expect(stats.misses == 2)
    }

    @Test("a type larger than the blocks is refused")
    func tooLarge() throws {
        let backing = try GlobalPool(blockSize: 16, capacity: 1 << 16)
        #expect(throws: PoolError.self) {
            try ObjectPool(backing: backing, factory: { (0, 0, 0) as (Int, Int, Int) }, reset: { $0 = (0, 0, 0) })
        }
    }

    @Test("shared between threads, every lease is exclusive", arguments: Strategy.allCases)
    func threads(strategy: Strategy) throws {
        let pool = try Self.pool(strategy)
        let workers = try (0..<4).map { index in
            try PinnedThread(cpus: Topology.current.allowedCPUs) { () throws -> Int in
                var mismatches = 0
                for round in 0..<500 {
                    let tag = "\(index)-\(round)"
                    try pool.withObject { buffer in
                        if !buffer.owner.isEmpty { mismatches += 1 }
                        buffer.owner = tag
                        buffer.bytes.append(UInt8(truncatingIfNeeded: round))
                        if buffer.owner != tag || buffer.bytes.count != 1 { mismatches += 1 }
                    }
                }
                return mismatches
            }
        }
        for worker in workers { #expect(try worker.join() == 0) }
        let stats = pool.statistics()
        #expect(stats.gets == 2000 && stats.puts == 2000)
        #expect(stats.escaped == 0)
    }
}

@Suite("ObjectPool misuse does not compile")
struct MisuseCompileTests {
    /// Compiles `body` against the built NUMAPool module with swiftc, as far as SIL, where the
    /// ownership checks run.
    static func compile(_ body: String) throws -> (status: Int32, output: String) {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let buildDirectory = executable.deletingLastPathComponent()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("misuse-\(UUID().uuidString).swift")
        try ("import NUMAPool\n\n" + body).write(to: source, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: source) }
        let swiftc = ["/opt/swift/usr/bin/swiftc", "/usr/bin/swiftc"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "swiftc"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: swiftc)
        // Every C module the package and its dependencies build: their generated module maps
        // in the build directory, plus the system-library maps of the shim.
        let built = ((try? FileManager.default.contentsOfDirectory(atPath: buildDirectory.path)) ?? [])
            .filter { $0.hasSuffix(".build") }
            .map { buildDirectory.appendingPathComponent($0).appendingPathComponent("module.modulemap").path }
            .filter { FileManager.default.fileExists(atPath: $0) }
        // C modules of dependencies that ship their own map (swift-atomics' _AtomicsShims).
        let checkouts = buildDirectory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("checkouts")
        let shipped = (FileManager.default.enumerator(atPath: checkouts.path)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix("include/module.modulemap") && !$0.contains("/Tests/") }
            .map { checkouts.appendingPathComponent($0).path }
        let maps = built + shipped
            + ["CNuma/system/module.modulemap", "CNuma/hwloc/module.modulemap"].map { root.appendingPathComponent($0).path }
        process.arguments = [
            "-emit-sil", "-o", "/dev/null", "-swift-version", "6", source.path,
            "-I", buildDirectory.appendingPathComponent("Modules").path,
            "-Xcc", "-I\(root.appendingPathComponent("CNuma/include").path)",
        ] + maps.flatMap { ["-Xcc", "-fmodule-map-file=\($0)"] }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let prelude = """
        func use(_ pool: ObjectPool<[Int]>) throws {
            let lease = try pool.lease()
            lease.value.append(1)

        """

    @Test("a correct use compiles (the check itself works)")
    func control() throws {
        let result = try Self.compile(Self.prelude + "    lease.release()\n}\n")
        #expect(result.status == 0, "\(result.output)")
    }

    @Test("use after release does not compile")
    func useAfterRelease() throws {
        let result = try Self.compile(Self.prelude + "    lease.release()\n    print(lease.value)\n}\n")
        #expect(result.status != 0)
        #expect(result.output.contains("used after consume"), "\(result.output)")
    }

    @Test("double release does not compile")
    func doubleRelease() throws {
        let result = try Self.compile(Self.prelude + "    lease.release()\n    lease.release()\n}\n")
        #expect(result.status != 0)
        #expect(result.output.contains("consumed more than once"), "\(result.output)")
    }

    @Test("copying a lease does not compile")
    func copy() throws {
        let result = try Self.compile(Self.prelude + "    let other = lease\n    lease.release()\n    other.release()\n}\n")
        #expect(result.status != 0)
        #expect(result.output.contains("consume"), "\(result.output)")
    }
}
