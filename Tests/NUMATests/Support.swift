import Foundation
@testable import NUMA

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

