import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where `--csv` rows go, checked before a run starts.
///
/// - A regular file (or a path where one can be created) is appended to: the file is opened
///   with `O_APPEND` and locked with flock(2) while its header is checked (or written, when it
///   is empty) and the batch goes out in one write(2). Runs that append to one file at once
///   each add their rows whole, and a new file gets one header, whichever run comes first. A
///   write that fails (a full disk) is undone by truncating the file back to its length before
///   it, so the file is never left with half a row.
/// - A character device or a pipe (`/dev/null`, a FIFO) takes the header and the rows as a
///   stream. It is opened here, before the run: a FIFO that no process reads is refused
///   (opening it would wait for a reader), and the run then writes to what it opened.
/// - This process's standard output or error, whatever it is (`--csv /dev/stdout` into a pipe,
///   a terminal or a file that `>` made), takes them as a stream too, written to descriptor 1
///   or 2 after what the command printed there.
public struct CSVDestination: Sendable {
    public let path: String
    /// The open stream, or nil for a file appended to.
    let stream: Stream?

    /// A descriptor the rows go to as a stream, closed at the end unless it is standard
    /// output or error.
    final class Stream: Sendable {
        let descriptor: Int32
        init(descriptor: Int32) { self.descriptor = descriptor }
        deinit { if descriptor > STDERR_FILENO { close(descriptor) } }
    }

    /// Checks `path`: it must name a regular file that can be read and written, a device or a
    /// pipe that can be written, or a new file in a directory that can be written. A symbolic
    /// link is followed (a dangling one names the file to create).
    public init(path: String) throws(MembenchError) {
        self.path = path
        guard !path.isEmpty else { throw .invalid(.csv, "the path is empty") }
        var info = stat()
        if stat(path, &info) == 0 {
            for standard in [STDOUT_FILENO, STDERR_FILENO] {
                var own = stat()
                if fstat(standard, &own) == 0 && own.st_dev == info.st_dev && own.st_ino == info.st_ino {
                    stream = Stream(descriptor: standard)
                    return
                }
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: throw .invalid(.csv, "\(path) is a directory")
            case S_IFSOCK: throw .invalid(.csv, "\(path) is a socket, not a file")
            case S_IFCHR, S_IFIFO:
                guard access(path, W_OK) == 0 else { throw Self.refusal(path, "cannot be written", errno) }
                // O_NONBLOCK: a FIFO without a reader fails (ENXIO) rather than waiting for one.
                let descriptor = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                guard descriptor >= 0 else {
                    let code = errno
                    if code == ENXIO { throw .unavailable(.csv, "\(path) is a FIFO that no process reads") }
                    throw Self.refusal(path, "cannot be opened", code)
                }
                _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
                stream = Stream(descriptor: descriptor)
            default:
                guard access(path, R_OK | W_OK) == 0 else { throw Self.refusal(path, "cannot be read and written", errno) }
                stream = nil
            }
            return
        }
        let missing = errno
        guard missing == ENOENT else { throw Self.refusal(path, "cannot be opened", missing) }
        // A new file: its directory (through a dangling link, the link's target's) must take it.
        var target = path
        var link = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink(path, &link, link.count - 1)
        if length > 0 {
            let name = String(decoding: link[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            target = name.hasPrefix("/") ? name : Self.directory(of: path) + "/" + name
        }
        let parent = Self.directory(of: target)
        var parentInfo = stat()
        guard stat(parent, &parentInfo) == 0 else { throw Self.refusal(path, "cannot be created", errno) }
        guard parentInfo.st_mode & S_IFMT == S_IFDIR else { throw Self.refusal(path, "cannot be created", ENOTDIR) }
        guard access(parent, W_OK | X_OK) == 0 else { throw Self.refusal(path, "cannot be created", errno) }
        stream = nil
    }

    /// The directory part of `path`: "." for a bare name, "/" for a name in the root.
    /// (NSString's deletingLastPathComponent traps on a bare name in Foundation of Swift 6.3.)
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = path[..<slash]
        return directory.isEmpty ? "/" : String(directory)
    }

    static func refusal(_ path: String, _ what: String, _ code: Int32) -> MembenchError {
        .unavailable(.csv, "\(path) \(what) (\(String(cString: strerror(code))))")
    }

    /// Appends `records`, with the header when the file is new or empty. Refuses a file whose
    /// header differs or whose last row is incomplete, leaving it as it is.
    public func append(_ records: [Record]) throws(MembenchError) {
        guard let first = records.first else { return }
        let header = try RecordWriter.csvText([first.header]) + "\n"
        let rows = try RecordWriter.csvText(records.map(\.values)) + "\n"
        if let stream {
            if let error = StandardStreams.writeAll(stream.descriptor, header + rows) { throw fault(error) }
            return
        }
        let descriptor = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw fault(errno) }
        defer { close(descriptor) }  // also lets go of the lock
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else { throw fault(errno) }
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw fault(errno) }
        let length = off_t(info.st_size)
        var text = rows
        if length == 0 {
            text = header + rows
        } else {
            let existing = try read(descriptor, prefix: header.utf8.count)
            guard existing == Array(header.utf8) else {
                throw .output(path: path, reason: "its header differs from this command's columns; use a new file")
            }
            var last: UInt8 = 0
            guard pread(descriptor, &last, 1, length - 1) == 1 else { throw fault(errno) }
            guard last == UInt8(ascii: "\n") else {
                throw .output(path: path, reason: "its last row is incomplete; repair it or use a new file")
            }
        }
        if let error = StandardStreams.writeAll(descriptor, text) {
            // Whatever part of the batch went out comes off again: the file is as it was.
            _ = ftruncate(descriptor, length)
            throw fault(error)
        }
    }

    /// The first `count` bytes of the file (fewer if it is shorter).
    private func read(_ descriptor: Int32, prefix count: Int) throws(MembenchError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + filled, count - filled, off_t(filled)) }
            if got < 0 {
                if errno == EINTR { continue }
                throw fault(errno)
            }
            if got == 0 { break }
            filled += got
        }
        return Array(bytes[0..<filled])
    }

    private func fault(_ code: Int32) -> MembenchError { .output(path: path, reason: String(cString: strerror(code))) }
}
