import Foundation
import Testing
@testable import NUMA

/// The topology against sysfs, read here on its own. Its agreement with `numactl --hardware`
/// is checked where numactl's output is parsed once: `scripts/numa-vm --check-cli`, on this
/// host by the test command and in every guest.
@Suite("TopologyAgreement: the topology matches sysfs")
struct TopologyAgreement {
    let topology = Topology.reload()

    @Test("nodes, CPUs and distances match /sys/devices/system/node")
    func sysfs() throws {
        let ids = NodeSysfs.nodeIDs()
        try #require(!ids.isEmpty, "this kernel has a node directory")
        #expect(topology.nodes.map(\.id) == ids)
        for node in topology.nodes {
            let cpulist = NodeSysfs.text(node.id, "cpulist")
            let expected = cpulist.isEmpty ? CPUSet() : try CPUSet(parsing: cpulist)
            #expect(node.cpus == expected, "node \(node.id) CPUs")
            let row = NodeSysfs.text(node.id, "distance").split(separator: " ").compactMap { Int($0) }
            #expect(node.distances == row, "node \(node.id) distances")
            let meminfo = NodeSysfs.text(node.id, "meminfo")
            let totalKB = meminfo.split(separator: "\n").first { $0.contains("MemTotal:") }
                .flatMap { $0.split(separator: " ").dropLast().last }.flatMap { UInt64($0) } ?? 0
            #expect(node.memoryTotal == totalKB * 1024, "node \(node.id) MemTotal")
            for cpu in node.cpus { #expect(topology.node(ofCPU: cpu) == node.id) }
        }
    }

    @Test("the allowed sets match /proc/self/status")
    func allowed() throws {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        func field(_ name: String) -> String? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
        let cpus = try CPUSet(parsing: try #require(field("Cpus_allowed_list")))
        #expect(topology.allowedCPUs == cpus)
        let mems = try NodeSet(parsing: try #require(field("Mems_allowed_list")))
        #expect(topology.allowedNodes == mems.intersection(topology.nodeIDs))
    }

    @Test("the last-level cache is known and plausible")
    func cache() throws {
        let cache = try #require(topology.lastLevelCache)
        #expect(cache.level >= 1 && cache.level <= 5)
        #expect(cache.size >= 64 << 10 && cache.size <= 4 << 30)
        #expect(cache.instances >= 1)
    }

    @Test("the current CPU is an allowed CPU on its node")
    func currentCPU() {
        let (cpu, node) = Topology.currentCPU()
        #expect(topology.node(ofCPU: cpu) == node)
    }

    @Test("memory tiers match /sys/devices/virtual/memory_tiering, and each node's tier its tier's list")
    func tiers() throws {
        let root = "/sys/devices/virtual/memory_tiering"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("memory_tier") }
        var expected: [MemoryTier] = []
        for name in names {
            let list = try String(contentsOfFile: "\(root)/\(name)/nodelist", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            expected.append(MemoryTier(id: try #require(Int(name.dropFirst("memory_tier".count))), nodes: try NodeSet(parsing: list)))
        }
        #expect(topology.tiers == expected.sorted { $0.id < $1.id })
        for node in topology.nodes {
            #expect(node.tier == expected.first { $0.nodes.contains(node.id) }?.id, "node \(node.id)")
        }
    }

    @Test("firmware access figures match each node's accessN/initiators, absent ones nil")
    func firmware() throws {
        for node in topology.nodes {
            let base = "\(NodeSysfs.root)/node\(node.id)"
            let classes = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
                .filter { $0.hasPrefix("access") }.compactMap { Int($0.dropFirst("access".count)) }.sorted()
            #expect(node.firmware.map(\.accessClass) == classes, "node \(node.id)")
            for access in node.firmware {
                let directory = "\(base)/access\(access.accessClass)/initiators"
                func value(_ name: String) -> Int? {
                    (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                }
                #expect(access.readLatency == value("read_latency") && access.writeLatency == value("write_latency"))
                #expect(access.readBandwidth == value("read_bandwidth") && access.writeBandwidth == value("write_bandwidth"))
                let links = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                    .filter { $0.hasPrefix("node") }.compactMap { Int($0.dropFirst(4)) }
                #expect(access.initiators == NodeSet(links))
            }
        }
    }

    @Test("interleave weights match /sys/kernel/mm/mempolicy/weighted_interleave, nil without it")
    func weights() throws {
        let directory = "/sys/kernel/mm/mempolicy/weighted_interleave"
        guard FileManager.default.fileExists(atPath: directory) else {
            #expect(InterleaveWeights.current() == nil)
            #expect(!InterleaveWeights.isSupported)
            return
        }
        func read() throws -> [Int: Int] {
            var weights: [Int: Int] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasPrefix("node") {
                let text = try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)
                weights[try #require(Int(name.dropFirst(4)))] = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return weights
        }
        // In the tiered guest other suites set weights meanwhile: compare a read that the
        // files did not change around.
        let expected = try read()
        let current = InterleaveWeights.current()
        if try read() == expected { #expect(current == expected) }
        #expect(Set((current ?? [:]).keys) == Set(expected.keys))
        #expect(Set(expected.keys).isSuperset(of: topology.nodesWithMemory.ids))
    }

    @Test("the topology round-trips through JSON")
    func codable() throws {
        let data = try JSONEncoder().encode(topology)
        #expect(try JSONDecoder().decode(Topology.self, from: data) == topology)
    }

    @Test("topology JSON written before tiers were read still decodes, with no tiers or firmware figures")
    func decodesWithoutTiers() throws {
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(topology)) as? [String: Any])
        object["tiers"] = nil
        let nodes = try #require(object["nodes"] as? [[String: Any]])
        object["nodes"] = nodes.map { node in
            var node = node
            for key in ["tier", "firmware", "memoryAttributes"] { node[key] = nil }
            return node
        }
        let decoded = try JSONDecoder().decode(Topology.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(decoded.tiers.isEmpty)
        #expect(decoded.nodes.allSatisfy { $0.tier == nil && $0.firmware.isEmpty && $0.memoryAttributes.isEmpty })
        #expect(decoded.nodes.map(\.id) == topology.nodes.map(\.id))
        #expect(decoded.nodes.map(\.cpus) == topology.nodes.map(\.cpus))
        #expect(decoded.nodes.map(\.distances) == topology.nodes.map(\.distances))
        #expect(decoded.nodes.map(\.memoryAvailable) == topology.nodes.map(\.memoryAvailable))
        #expect(decoded.cpuToNode == topology.cpuToNode && decoded.allowedCPUs == topology.allowedCPUs)
    }
}
