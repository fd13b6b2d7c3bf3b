#if canImport(Glibc)
import Glibc
#endif
import NUMA
import NUMAPool

/// A setting of a measurement, as errors name it. The kit words it for itself (`size`); a front
/// end names it its own way (the membench command line names its flag, `--size`).
public enum Setting: String, Sendable, CaseIterable {
    case size, stride
    case tlbLocality = "TLB locality"
    case loadsPerSample = "loads per sample"
    case samples, duration, window, warmup, rounds
    case allocators
    case blockSize = "block size"
    case sizes, frees
    case allocator, workingSet = "working set", keep, phases, interval, decay
    case policies, rate, serviceTime = "service time", slo = "SLO", dependency
    case batch, capacity, threads
    case cpus = "CPU list"
    case cpuNodes = "CPU nodes"
    case localAlloc = "local allocation"
    case bind = "bind nodes"
    case interleave = "interleave nodes"
    case weightedInterleave = "weighted interleave nodes"
    case preferred = "preferred node"
    case pageSize = "page size"
    case delays
    case loadCPUs = "load CPUs"
    case loadThreads = "load threads"
    case loadBind = "load bind nodes"
    case kernels, matrix, lines, repeats
    case tierCPUNode = "measuring CPU node"
    case tierNodes = "nodes to weigh"
    case apply
    case csv = "CSV file"
}

/// Why membench will not run, in one line.
public enum MembenchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Bad input: a malformed or impossible value. Exit code 64.
    case invalid(Setting, String)
    /// Two settings that cannot be given together. Exit code 64.
    case conflicting(Setting, Setting)
    /// A well-formed setting the machine cannot serve: a node not allowed or without memory, a
    /// size beyond free memory, no huge pages. Exit code 1.
    case unavailable(Setting, String)
    /// Anything else the machine cannot do: a thread that does not start, a mapping refused.
    /// Exit code 1.
    case refused(String)
    /// An output file could not be written. Exit code 1, after the table was printed.
    case output(path: String, reason: String)

    /// The error in one line, each setting called what `name` calls it.
    public func message(naming name: (Setting) -> String) -> String {
        switch self {
        case .invalid(let setting, let reason), .unavailable(let setting, let reason): "\(name(setting)): \(reason)"
        case .conflicting(let setting, let other): "\(name(setting)): conflicts with \(name(other)); give one of them"
        case .refused(let reason): reason
        case .output(let path, let reason): "cannot write \(path): \(reason)"
        }
    }

    /// The setting the error is about, if it is about one (the first, for a conflict).
    public var setting: Setting? {
        switch self {
        case .invalid(let setting, _), .unavailable(let setting, _), .conflicting(let setting, _): setting
        case .refused, .output: nil
        }
    }

    /// The error in one line, in the kit's own words (`size: must be at least …`).
    public var description: String { message(naming: \.rawValue) }

    /// The process exit code: 64 (EX_USAGE) for bad input, 1 otherwise.
    public var exitCode: Int32 {
        switch self {
        case .invalid, .conflicting: 64
        case .unavailable, .refused, .output: 1
        }
    }

    /// A NUMA-layer error met while applying `setting`: a node that does not exist is bad
    /// input; one not allowed or without memory is refused.
    static func from(_ error: NUMAError, setting: Setting) -> MembenchError {
        switch error.errno {
        case ENODEV, EINVAL: .invalid(setting, error.message)
        default: .unavailable(setting, error.message)
        }
    }

    static func from(_ error: PoolError) -> MembenchError {
        .refused(error.description)
    }
}
