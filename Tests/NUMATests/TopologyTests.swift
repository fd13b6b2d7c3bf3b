import Foundation
import Testing
@testable import NUMA

@Suite("TopologyAgreement: the topology matches sysfs and numactl")
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

    @Test("nodes, CPUs, sizes and distances match numactl --hardware")
    func numactl() throws {
        let path = try #require(numactlPath, "numactl is installed by the test command")
        let result = try #require(runProgram(path, ["--hardware"]))
        #expect(result.status == 0)
        let hardware = NumactlHardware(result.output)
        #expect(hardware.nodes == topology.nodes.map(\.id))
        for node in topology.nodes {
            #expect(hardware.cpus[node.id] == node.cpus.ids, "node \(node.id) CPUs")
            #expect(hardware.sizeMB[node.id] == Int(node.memoryTotal >> 20), "node \(node.id) size")
            #expect(hardware.distances[node.id] == node.distances, "node \(node.id) distances")
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

    @Test("the topology round-trips through JSON")
    func codable() throws {
        let data = try JSONEncoder().encode(topology)
        #expect(try JSONDecoder().decode(Topology.self, from: data) == topology)
    }
}
