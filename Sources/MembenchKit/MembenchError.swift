import NUMA
import NUMAPool

/// Why membench will not run, in one line.
public enum MembenchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Bad input: a malformed or impossible value, or flags that conflict. Exit code 64.
    case usage(flag: String, reason: String)
    /// Well-formed input the machine cannot serve: a node not allowed or without memory, a
    /// size beyond free memory, no huge pages. Exit code 1.
    case refused(String)
    /// An output file could not be written. Exit code 1, after the table was printed.
    case output(path: String, reason: String)

    public var description: String {
        switch self {
        case .usage(let flag, let reason): "\(flag): \(reason)"
        case .refused(let reason): reason
        case .output(let path, let reason): "cannot write \(path): \(reason)"
        }
    }

    /// The process exit code: 64 (EX_USAGE) for usage errors, 1 otherwise.
    public var exitCode: Int32 {
        if case .usage = self { return 64 }
        return 1
    }

    /// A NUMA-layer error met while setting up a run, worded for the flag that caused it.
    static func from(_ error: NUMAError, flag: String) -> MembenchError {
        switch error.errno {
        case 19 /* ENODEV */, 22 /* EINVAL */: .usage(flag: flag, reason: error.message)
        default: .refused("\(flag): \(error.message)")
        }
    }

    static func from(_ error: PoolError) -> MembenchError {
        .refused(error.description)
    }
}
