import MembenchKit

extension Setting {
    /// The flag that gives this setting on the command line, as errors name it.
    var flag: String {
        switch self {
        case .size: "--size"
        case .stride: "--stride"
        case .tlbLocality: "--tlb-locality"
        case .loadsPerSample: "--loads-per-sample"
        case .samples: "--samples"
        case .duration: "--duration"
        case .window: "--window"
        case .warmup: "--warmup"
        case .rounds: "--rounds"
        case .allocators: "--allocators"
        case .blockSize: "--block-size"
        case .sizes: "--sizes"
        case .frees: "--frees"
        case .allocator: "--allocator"
        case .workingSet: "--working-set"
        case .keep: "--keep"
        case .phases: "--phases"
        case .interval: "--interval"
        case .decay: "--decay"
        case .policies: "--policy"
        case .rate: "--rate"
        case .serviceTime: "--service-time"
        case .slo: "--slo"
        case .dependency: "--dependency"
        case .batch: "--batch"
        case .capacity: "--capacity"
        case .threads: "--threads"
        case .cpus: "--physcpubind"
        case .cpuNodes: "--cpunodebind"
        case .localAlloc: "--localalloc"
        case .bind: "--membind"
        case .interleave: "--interleave"
        case .weightedInterleave: "--weighted-interleave"
        case .preferred: "--preferred"
        case .pageSize: "--page-size"
        case .delays: "--delays"
        case .loadCPUs: "--load-cpus"
        case .loadThreads: "--load-threads"
        case .loadBind: "--load-membind"
        case .kernels: "--kernels"
        case .matrix: "--matrix"
        case .lines: "--lines"
        case .repeats: "--repeats"
        case .csv: "--csv"
        case .tierCPUNode: "--cpu-node"
        case .tierNodes: "--nodes"
        case .apply: "--apply"
        }
    }
}

extension MembenchError {
    /// The error in one line, each setting named by its flag: `--size: must be at least …`.
    var commandLineMessage: String { message(naming: \.flag) }
}
