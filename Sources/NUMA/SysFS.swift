#if canImport(Glibc)
import Glibc
#endif

/// Small readers for sysfs and procfs text files.
enum SysFS {
    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: "\n ")
    }

    /// `/proc/meminfo` (or a node's `meminfo`, whose lines start "Node N", or a process's
    /// `status`) as bytes by key: figures in kB are multiplied out.
    static func meminfo(_ path: String = "/proc/meminfo") -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for line in (read(path) ?? "").split(separator: "\n") {
            var fields = line.split(omittingEmptySubsequences: true) { $0 == " " || $0 == "\t" }
            if fields.first == "Node" { fields.removeFirst(2) }
            guard fields.count >= 2, let value = UInt64(fields[1]) else { continue }
            let key = String(fields[0].dropLast())
            result[key] = fields.count > 2 && fields[2] == "kB" ? value * 1024 : value
        }
        return result
    }

    /// The numbers N of the entries named `prefix`N in `directory`, ascending; empty when the
    /// directory cannot be read.
    static func entries(_ directory: String, prefix: String) -> [Int] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var ids: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(prefix), let id = Int(name.dropFirst(prefix.count)) { ids.append(id) }
        }
        return ids.sorted()
    }
}

extension String {
    /// The string without the characters of `set` at either end.
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        return String(drop(while: { chars.contains($0) }).reversed().drop(while: { chars.contains($0) }).reversed())
    }
}
