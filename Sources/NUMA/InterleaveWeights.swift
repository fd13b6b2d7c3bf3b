#if canImport(Glibc)
import Glibc
#endif

/// The kernel's weights for weighted interleave (`MPOL_WEIGHTED_INTERLEAVE`, Linux 6.9):
/// `/sys/kernel/mm/mempolicy/weighted_interleave/nodeN`, one small integer per node. A page
/// sequence interleaved over nodes A and B with weights 3 and 1 puts three pages on A for each
/// one on B. The weights are system-wide; changing them needs root.
public enum InterleaveWeights {
    static let directory = "/sys/kernel/mm/mempolicy/weighted_interleave"

    /// The largest weight the kernel takes.
    public static let maximum = 255

    /// Whether this kernel has weighted interleave (its weights directory exists).
    public static var isSupported: Bool { access(directory, F_OK) == 0 }

    /// Whether this process may write the weights (root, as a rule).
    public static var isWritable: Bool {
        SysFS.entries(directory, prefix: "node").first.map { access("\(directory)/node\($0)", W_OK) == 0 } ?? false
    }

    /// The weight of every node, or nil when the kernel has no weighted interleave.
    public static func current() -> [Int: Int]? {
        guard isSupported else { return nil }
        var weights: [Int: Int] = [:]
        for node in SysFS.entries(directory, prefix: "node") {
            if let weight = SysFS.read("\(directory)/node\(node)").flatMap({ Int($0) }) { weights[node] = weight }
        }
        return weights
    }

    /// The error for a kernel without weighted interleave, naming the version it needs.
    public static func unsupported(operation: String) -> NUMAError {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return NUMAError(operation: operation, errno: EOPNOTSUPP,
                         message: "weighted interleave needs Linux 6.9 or later; this kernel is \(release)")
    }

    /// Weights saved by `set`, for `restore`: those of the nodes written, and whether the
    /// kernel chose the weights itself before (its `auto` mode, Linux 6.16; nil before it).
    public struct Saved: Sendable, Equatable {
        /// The weight each written node had before, by node.
        public let weights: [Int: Int]
        /// Whether the kernel's `auto` mode was on before; nil on a kernel without it.
        public let automatic: Bool?
    }

    /// The file of the kernel's `auto` mode, which some kernels build as `__auto_type`.
    static var automaticPath: String? {
        ["auto", "__auto_type"].map { "\(directory)/\($0)" }.first { access($0, F_OK) == 0 }
    }

    /// Whether the kernel picks the weights itself (from the firmware's bandwidth), or nil on
    /// a kernel without that mode. Writing a node's weight turns it off.
    public static var isAutomatic: Bool? {
        automaticPath.flatMap { SysFS.read($0) }.flatMap { $0 == "true" ? true : $0 == "false" ? false : nil }
    }

    /// The nodes of `weights` whose weight differs from the kernel's now: what `set` would write.
    public static func changes(_ weights: [Int: Int]) -> [Int: Int] {
        let now = current() ?? [:]
        return weights.filter { now[$0.key] != $0.value }
    }

    /// Whether the kernel could turn its `auto` mode back on once a weight is written: it needs
    /// the firmware's bandwidth of some node as seen from CPUs (access class 1, ACPI HMAT or
    /// CXL CDAT), and refuses `auto` with ENODEV without it, until the next boot.
    public static var canRestoreAutomatic: Bool {
        Topology.current.nodes.contains { node in
            node.firmware.contains { $0.accessClass == 1 && $0.readBandwidth != nil }
        }
    }

    /// Writes the weights of `weights` (node: 1...255) that differ from the kernel's and returns
    /// what they replace, for `restore`; a weight already set is not written (a write turns the
    /// kernel's `auto` mode off). Nodes not named keep their weights. Needs root. On a failure
    /// part way, what was written is put back before the error is thrown.
    @discardableResult
    public static func set(_ weights: [Int: Int]) throws(NUMAError) -> Saved {
        guard let before = current() else { throw unsupported(operation: "weighted_interleave") }
        try check(weights)
        for node in weights.keys.sorted() where before[node] == nil {
            throw NUMAError(operation: "weighted_interleave", errno: ENODEV,
                            message: "node \(node) has no interleave weight (nodes: \(NodeSet(Array(before.keys))))")
        }
        let automatic = isAutomatic
        var written: [Int: Int] = [:]
        for (node, weight) in weights.sorted(by: { $0.key < $1.key }) where before[node] != weight {
            do {
                try write(String(weight), to: "\(directory)/node\(node)")
            } catch {
                // What was written goes back; the error says what could not.
                var left: String?
                do {
                    left = try restore(Saved(weights: written, automatic: automatic))?.message
                } catch let failure {
                    left = "the weights written before it were not all put back: \(failure.message)"
                }
                guard let left else { throw error }
                throw NUMAError(operation: error.operation, errno: error.errno, message: "\(error.message); \(left)")
            }
            written[node] = before[node]
        }
        return Saved(weights: written, automatic: automatic)
    }

    /// Refuses a weight outside 1...255 (EINVAL), naming the first such node; reads nothing.
    public static func check(_ weights: [Int: Int]) throws(NUMAError) {
        if let (node, weight) = weights.sorted(by: { $0.key < $1.key }).first(where: { !(1...maximum).contains($0.value) }) {
            throw NUMAError(operation: "weighted_interleave", errno: EINVAL,
                            message: "weight \(weight) for node \(node) is not between 1 and \(maximum)")
        }
    }

    /// Puts back what `set` replaced: the nodes' weights (a failure there is thrown), then the
    /// kernel's `auto` mode where it was on, which any write of a weight turned off. Returns why
    /// `auto` could not be turned back on (a kernel without firmware bandwidth refuses it with
    /// ENODEV), or nil when all is as it was.
    @discardableResult
    public static func restore(_ saved: Saved) throws(NUMAError) -> NUMAError? {
        var failure: NUMAError?
        for (node, weight) in saved.weights.sorted(by: { $0.key < $1.key }) {
            do { try write(String(weight), to: "\(directory)/node\(node)") } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
        guard saved.automatic == true, !saved.weights.isEmpty, let path = automaticPath else { return nil }
        do {
            try write("true", to: path)
        } catch {
            let reason = error.errno == ENODEV ? "the kernel refuses it without firmware bandwidth data (ENODEV)" : error.message
            return NUMAError(operation: "weighted_interleave", errno: error.errno,
                             message: "the kernel's automatic weights stay off until reboot: \(reason)")
        }
        return nil
    }

    private static func write(_ value: String, to path: String) throws(NUMAError) {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else {
            let code = errno
            throw NUMAError(operation: "weighted_interleave", errno: code,
                            message: "cannot write \(path): \(String(cString: strerror(code)))"
                                + (code == EACCES || code == EPERM ? " (setting weights needs root)" : ""))
        }
        defer { close(fd) }
        let text = Array("\(value)\n".utf8)
        guard Glibc.write(fd, text, text.count) == text.count else {
            let code = errno
            throw NUMAError(operation: "weighted_interleave", errno: code,
                            message: "cannot write \(path): \(String(cString: strerror(code)))")
        }
    }
}

extension InterleaveWeights {
    /// An exclusive lock on the weights directory (flock(2)), which processes that change the
    /// weights take for as long as theirs are in force, so that one never restores weights
    /// over another's and the weights left are those from before both. Released at deinit, or
    /// when the process ends.
    public final class Lock: Sendable {
        private let descriptor: Int32

        /// Takes the lock, calling `waiting` first when another process holds it, then waiting
        /// for it. Fails on a kernel without weighted interleave.
        public init(waiting: () -> Void) throws(NUMAError) {
            let fd = open(InterleaveWeights.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                let code = errno
                if code == ENOENT { throw InterleaveWeights.unsupported(operation: "weighted_interleave") }
                throw NUMAError(operation: "flock", errno: code,
                                message: "cannot open \(InterleaveWeights.directory): \(String(cString: strerror(code)))")
            }
            var rc = flock(fd, LOCK_EX | LOCK_NB)
            if rc != 0 && errno == EWOULDBLOCK {
                waiting()
                repeat { rc = flock(fd, LOCK_EX) } while rc != 0 && errno == EINTR
            }
            guard rc == 0 else {
                let code = errno
                close(fd)
                throw NUMAError(operation: "flock", errno: code,
                                message: "cannot lock \(InterleaveWeights.directory): \(String(cString: strerror(code)))")
            }
            descriptor = fd
        }

        deinit { close(descriptor) }
    }
}
