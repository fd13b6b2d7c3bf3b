import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Standard output and standard error, written with write(2) so that a failure is an error to
/// report, never a trap, and a closed descriptor is never taken by a file the run opens.
public enum StandardStreams {
    // nonisolated(unsafe): set once by `prepare()` on the main thread before any other thread
    // starts, then only read.
    nonisolated(unsafe) private static var outputClosed = false

    /// Call first, before anything opens a file: SIGPIPE is ignored (a write to a pipe nobody
    /// reads fails with EPIPE, which is reported), and a closed standard descriptor is held
    /// open on /dev/null, so that a file opened later (a CSV) cannot take its number. A closed
    /// standard output is remembered: writing to it fails as EBADF would.
    public static func prepare() {
        signal(SIGPIPE, SIG_IGN)
        for descriptor in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            if descriptor == STDOUT_FILENO { outputClosed = true }
            let null = open("/dev/null", O_RDWR)
            if null >= 0 && null != descriptor {
                dup2(null, descriptor)
                close(null)
            }
        }
    }

    /// Writes `text` to standard output. Throws `.output` naming standard output when it is
    /// closed or a write fails (a full device, a closed pipe).
    public static func write(_ text: String) throws(MembenchError) {
        guard !outputClosed else { throw .output(path: "standard output", reason: String(cString: strerror(EBADF))) }
        if let error = writeAll(STDOUT_FILENO, text) {
            throw .output(path: "standard output", reason: String(cString: strerror(error)))
        }
    }

    /// Writes `text` to standard error if it can; a failure there has nowhere to be reported.
    public static func report(_ text: String) {
        _ = writeAll(STDERR_FILENO, text)
    }

    /// write(2) until every byte is out, retrying on EINTR; returns the errno of a failure.
    static func writeAll(_ descriptor: Int32, _ text: String) -> Int32? {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBytes { buffer -> Int32? in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
    }
}
