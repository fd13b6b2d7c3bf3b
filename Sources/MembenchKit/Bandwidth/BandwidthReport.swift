import NUMA

/// The bandwidth matrix's cells, every one checked before the first runs.
public struct ResolvedBandwidthMatrix: Sendable {
    public let options: BandwidthOptions
    public let cpuNodes: [Int]
    public let memoryNodes: [Int]
    /// cells[row][column]: the CPU node's CPUs (or `threads` of them), memory bound to the
    /// memory node.
    public let cells: [[ResolvedBandwidth]]
}

extension BandwidthOptions {
    /// Checks the options for every cell of the matrix; nothing runs.
    public func resolveMatrix(topology: Topology = .current) throws(MembenchError) -> ResolvedBandwidthMatrix {
        if placement.memoryPolicy != nil || placement.cpunodebind != nil || placement.physcpubind != nil {
            throw .invalid(.matrix, "sets CPUs and memory itself; leave out the placement flags")
        }
        let grid = try NodeGrid.make(topology: topology) { cpuNode, memoryNode throws(MembenchError) -> ResolvedBandwidth in
            var cell = self
            cell.placement = PlacementOptions(membind: [memoryNode], cpunodebind: [cpuNode])
            cell.threads = threads.map { min($0, topology.allowedCPUs(on: [cpuNode]).count) }
            return try cell.resolve(topology: topology)
        }
        return ResolvedBandwidthMatrix(options: self, cpuNodes: grid.cpuNodes, memoryNodes: grid.memoryNodes, cells: grid.cells)
    }
}

/// Every CPU node against every memory node: the threads of a CPU node's allowed CPUs
/// streaming memory bound to a memory node, as Intel MLC's bandwidth matrix.
public struct BandwidthMatrix: Sendable {
    public var cpuNodes: [Int]
    public var memoryNodes: [Int]
    /// cells[row][column]: one result per kernel, CPU node row, memory node column.
    public var cells: [[[BandwidthResult]]]

    public static func run(_ resolved: ResolvedBandwidthMatrix, topology: Topology = .current,
                           progress: (@Sendable (Double) -> Void)? = nil) throws(MembenchError) -> BandwidthMatrix {
        let results = try NodeGrid.run(resolved.cells, progress: progress) { cell, cellProgress throws(MembenchError) in
            try BandwidthRunner.run(cell, topology: topology, progress: cellProgress)
        }
        return BandwidthMatrix(cpuNodes: resolved.cpuNodes, memoryNodes: resolved.memoryNodes, cells: results)
    }

    /// One table per kernel (GB/s), then the kernel's distances.
    public func render(topology: Topology = .current) -> String {
        var text = ""
        let kernels = cells.first?.first?.map(\.kernel) ?? []
        for (k, kernel) in kernels.enumerated() {
            let threads = cells.first?.first?[k].threads.count ?? 0
            var table = TextTable(["cpu node \\ memory node"] + memoryNodes.map { "node \($0)" })
            for (r, cpuNode) in cpuNodes.enumerated() {
                table.add(["node \(cpuNode)"] + cells[r].map { Format.fixed($0[k].bytesPerSecond / 1e9, 2) })
            }
            text += "\(kernel.rawValue) bandwidth (GB/s, \(threads) thread(s) per CPU node)\n" + table.render() + "\n"
        }
        var distance = TextTable(["distance"] + memoryNodes.map { "node \($0)" })
        for cpuNode in cpuNodes {
            distance.add(["node \(cpuNode)"] + memoryNodes.map { topology.distance(from: cpuNode, to: $0).map(String.init) ?? "" })
        }
        return text + "kernel distances\n" + distance.render()
            + FirmwareTable.render(cpuNodes: cpuNodes, memoryNodes: memoryNodes, topology: topology,
                                   title: "firmware read bandwidth (GB/s, ACPI HMAT: the kernel's MB/s over 1000)") {
                $0.readBandwidth.map { Format.fixed(Double($0) / 1000, 2) }
            }
    }

    public func records(options: BandwidthOptions, topology: Topology = .current) -> [Record] {
        var records: [Record] = []
        for (r, cpuNode) in cpuNodes.enumerated() {
            for (c, memoryNode) in memoryNodes.enumerated() {
                for result in cells[r][c] {
                    let firmware = topology.firmwareAccess(from: cpuNode, to: memoryNode)
                    records += BandwidthReport.records([result], options: options, command: "bandwidth-matrix",
                                                       cpuNode: cpuNode, memoryNode: memoryNode, firmware: firmware)
                        .filter { $0["scope"] == .string("total") }
                }
            }
        }
        return records
    }
}

/// Tables and records of `membench bandwidth`. GB are 10^9 bytes, as STREAM and MLC count.
public enum BandwidthReport {
    public static func describe(_ results: [BandwidthResult], options: BandwidthOptions) -> String {
        guard let first = results.first else { return "" }
        let weights = PlacementReport.weightLine(options.placement.effectiveInterleaveWeights, pages: pages(first)).map { $0 + "\n" } ?? ""
        return "size \(ByteSize.format(first.size)) per thread, \(first.threads.count) thread(s), pages \(options.pageMode.rawValue), "
            + "\(TimeSpan.format(options.duration)) per kernel\n"
            + "placement \(options.placement.summary(policyText: first.policyText)); \(first.environment.summary)\n" + weights
    }

    /// One row per kernel (its total over the threads), and the threads' rows under it when
    /// there are several.
    public static func table(_ results: [BandwidthResult]) -> String {
        let peak = results.map(\.bytesPerSecond).max() ?? 0
        var table = TextTable(["kernel", "mix", "thread", "cpu", "node", "GB/s", "pass sd", "pass min", "pass max",
                               "vs peak", "remote", "pages/node"])
        for result in results {
            let total = result.bytesPerSecond
            table.add([result.kernel.rawValue, result.kernel.mix, "total", "", "", Format.fixed(total / 1e9, 2), "", "", "",
                       peak > 0 ? Format.percent(total / peak) : "", Format.percent(result.remoteShare),
                       PlacementReport.text(pages(result))])
            guard result.threads.count > 1 else { continue }
            for thread in result.threads {
                table.add(["", "", String(thread.thread), String(thread.cpu), String(thread.node),
                           Format.fixed(thread.bytesPerSecond / 1e9, 2), Format.fixed(thread.passStandardDeviation / 1e9, 2),
                           Format.fixed(thread.passMin / 1e9, 2), Format.fixed(thread.passMax / 1e9, 2), "",
                           Format.percent(thread.remoteShare), PlacementReport.text(thread.pagesPerNode)])
            }
        }
        return table.render()
            + "GB/s: 10^9 bytes read and written per second, all threads at once; vs peak: against the best kernel here\n"
    }

    static func pages(_ result: BandwidthResult) -> [Int: Int] {
        result.threads.reduce(into: [:]) { pages, thread in pages.merge(thread.pagesPerNode, uniquingKeysWith: +) }
    }

    public static func records(_ results: [BandwidthResult], options: BandwidthOptions, command: String = "bandwidth",
                               cpuNode: Int? = nil, memoryNode: Int? = nil, firmware: FirmwareAccess? = nil) -> [Record] {
        let peak = results.map(\.bytesPerSecond).max() ?? 0
        let placement = options.placement
        return results.flatMap { result -> [Record] in
            let shared: [(name: String, value: RecordValue)] = [
                ("timestamp", .string(result.environment.timestamp)),
                ("command", .string(command)),
                ("bandwidth_kernel", .string(result.kernel.rawValue)),
                ("mix", .string(result.kernel.mix)),
                ("size_bytes", .int(result.streamedBytes)),
                ("threads", .int(result.threads.count)),
                ("page_mode", .string(options.pageMode.rawValue)),
                ("policy", .string(result.policyText)),
            ] + placement.recordFields + [
                ("cpu_node", .int(cpuNode)),
                ("memory_node", .int(memoryNode)),
                // The matrix's firmware figure, null elsewhere: one set of columns for the command.
                ("firmware_read_bandwidth_mb_per_s", .int(firmware?.readBandwidth)),
                ("duration_s", .double(options.duration)),
            ]
            func row(_ thread: BandwidthThreadResult?) -> Record {
                let rate = thread?.bytesPerSecond ?? result.bytesPerSecond
                let measured: [(name: String, value: RecordValue)] = [
                    ("scope", .string(thread == nil ? "total" : "thread")),
                    ("thread", .int(thread?.thread)),
                    ("cpu", .int(thread?.cpu)),
                    ("node", .int(thread?.node)),
                    ("passes", .int(thread?.passes ?? result.threads.reduce(0) { $0 + $1.passes })),
                    ("bytes_per_s", .double(rate)),
                    ("gb_per_s", .double(rate / 1e9)),
                    ("pass_mean_gb_per_s", thread.map { .double($0.passMean / 1e9) } ?? .null),
                    ("pass_stddev_gb_per_s", thread.map { .double($0.passStandardDeviation / 1e9) } ?? .null),
                    ("pass_min_gb_per_s", thread.map { .double($0.passMin / 1e9) } ?? .null),
                    ("pass_max_gb_per_s", thread.map { .double($0.passMax / 1e9) } ?? .null),
                    ("vs_peak", thread == nil && peak > 0 ? .double(rate / peak) : .null),
                    ("remote_share", .double(thread?.remoteShare ?? result.remoteShare)),
                    ("pages_per_node", .string(PlacementReport.text(thread?.pagesPerNode ?? pages(result)))),
                ]
                return Record(shared + measured + Record.environmentFields(result.environment))
            }
            return result.threads.map(row) + [row(nil)]
        }
    }
}
