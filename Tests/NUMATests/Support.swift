import Foundation
@testable import NUMA

/// Runs a program and returns its standard output, or nil when it cannot run.
func runProgram(_ path: String, _ arguments: [String]) -> (status: Int32, output: String)? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// What `numactl --hardware` prints, parsed.
struct NumactlHardware {
    var nodes: [Int] = []
    var cpus: [Int: [Int]] = [:]
    var sizeMB: [Int: Int] = [:]
    var distances: [Int: [Int]] = [:]

    init(_ text: String) {
        var inDistances = false
        for line in text.split(separator: "\n").map(String.init) {
            let fields = line.split(separator: " ").map(String.init)
            if line.hasPrefix("node distances:") { inDistances = true; continue }
            if inDistances {
                if fields.first == "node" { continue }
                if let first = fields.first, first.hasSuffix(":"), let node = Int(first.dropLast()) {
                    distances[node] = fields.dropFirst().compactMap { Int($0) }
                }
                continue
            }
            guard fields.count >= 3, fields[0] == "node", let node = Int(fields[1]) else { continue }
            switch fields[2] {
            case "cpus:":
                nodes.append(node)
                cpus[node] = fields.dropFirst(3).compactMap { Int($0) }
            case "size:": sizeMB[node] = Int(fields[3])
            default: break
            }
        }
    }
}

let numactlPath = ["/usr/bin/numactl", "/bin/numactl"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// sysfs's node directory, read independently of libnuma.
enum NodeSysfs {
    static let root = "/sys/devices/system/node"

    static func nodeIDs() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { $0.hasPrefix("node") ? Int($0.dropFirst(4)) : nil }.sorted()
    }

    static func text(_ node: Int, _ file: String) -> String {
        ((try? String(contentsOfFile: "\(root)/node\(node)/\(file)", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

