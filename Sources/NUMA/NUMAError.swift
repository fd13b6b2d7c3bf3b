#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the NUMA layer: which operation failed, the errno behind it, and a
/// sentence a person can act on.
public struct NUMAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The C call or the step that failed, such as `mbind` or `move_pages`.
    public let operation: String
    /// The errno value: from the failing call, or the closest one for a refused argument
    /// (`EINVAL`, `ENODEV`, `ENOMEM`, `EPERM`).
    public let errno: Int32
    /// A readable reason.
    public let message: String

    /// An error of `operation` with `errno`; without a `message`, the message is strerror(3)'s
    /// text for `errno`.
    public init(operation: String, errno: Int32, message: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.message = message ?? String(cString: strerror(errno))
    }

    /// The operation and the message, as in `mbind: node 3 does not exist (nodes: 0-1)`.
    public var description: String { "\(operation): \(message)" }
}

/// Calls a C function that signals failure with -1 and errno, retrying on EINTR, and turns
/// the failure into a `NUMAError`. errno is read right after the call, in this frame.
@inline(never)
@discardableResult
func systemCall<T: BinaryInteger>(_ operation: String, _ body: () -> T) throws(NUMAError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw NUMAError(operation: operation, errno: code)
    }
}
