import Foundation
import NUMA
import NUMAPool
import Synchronization

/// The allocators `membench churn` watches.
public enum ChurnAllocator: String, Sendable, CaseIterable {
    /// `NUMAHeap`, with its purger.
    case heap
    /// A `LocalPool` of one block size (the largest of `--sizes`).
    case local
    /// The process's malloc: glibc's, or one put in front with `LD_PRELOAD`.
    case malloc
}

/// What the threads do in a phase of `membench churn`.
public enum ChurnPhase: String, Sendable, CaseIterable {
    /// Allocate up to the working set, then hold it.
    case grow
    /// Free a block and allocate another, at random, within the working set.
    case hold
    /// Free all but `keep` of the working set, then hold the rest.
    case shrink
    /// No allocator call at all: the threads wait on a semaphore.
    case idle
    /// Allocate up to the working set again.
    case back
}

/// Parameters of a churn run.
public struct ChurnOptions: Sendable {
    public var allocator: ChurnAllocator = .heap
    public var threads = 2
    /// Bytes all threads hold at the top, together.
    public var workingSet = 256 << 20
    /// The share of the working set kept through the idle phase.
    public var keep = 0.1
    public var sizes: AllocSizes = .service
    /// Seconds of each phase, in order; the idle phase outlasts the heap's default decay time.
    public var phases: [(ChurnPhase, Double)] = [(.grow, 2), (.hold, 2), (.shrink, 1), (.idle, 14), (.back, 2)]
    /// Seconds between samples.
    public var interval = 0.5
    /// The heap's decay time.
    public var decay = 10.0

    public init() {}
}

/// One sample: the time since the start, the phase, the process's resident bytes, and per
/// node what the allocator reports (nil where it reports nothing: malloc, or the pool's
/// cached and returned bytes).
public struct ChurnSample: Sendable {
    public var seconds: Double
    public var phase: ChurnPhase
    public var rssBytes: Int
    /// Bytes the threads hold by their own count.
    public var heldBytes: Int
    /// CPU seconds the heap's purger thread has used so far (the heap only).
    public var purgerSeconds: Double?
    public var nodes: [ChurnNodeSample]
}

public struct ChurnNodeSample: Sendable {
    public var node: Int
    public var inUse: Int?
    public var cached: Int?
    public var free: Int?
    public var returned: Int?
    /// Resident bytes of the allocator's memory on the node (the heap's arenas, mincore(2)).
    public var resident: Int?
}

extension ChurnOptions {
    /// Checks the options against the machine; nothing runs.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ChurnOptions {
        guard threads >= 1 && threads <= topology.allowedCPUs.count else {
            throw .invalid(.threads, "must be between 1 and the \(topology.allowedCPUs.count) allowed CPUs, got \(threads)")
        }
        guard workingSet >= 1 << 20 else { throw .invalid(.workingSet, "must be at least 1MiB, got \(ByteSize.format(workingSet))") }
        let available = topology.bindableNodes.ids.reduce(UInt64(0)) { $0 + (topology.node($1)?.memoryAvailable ?? 0) }
        guard UInt64(workingSet) * 2 <= available else {
            throw .unavailable(.workingSet, "\(ByteSize.format(workingSet)) needs twice that available, and the nodes have \(available >> 20) MiB")
        }
        guard keep >= 0 && keep <= 1 else { throw .invalid(.keep, "must be between 0 and 1, got \(keep)") }
        guard !phases.isEmpty, phases.allSatisfy({ $0.1 > 0 && $0.1 <= 3600 }) else {
            throw .invalid(.phases, "every phase needs a time between 0 and 3600 seconds")
        }
        guard interval >= 0.01 && interval <= 60 else { throw .invalid(.interval, "must be between 10ms and 60s, got \(interval)") }
        guard decay >= 0 && decay <= 3600 else { throw .invalid(.decay, "must be between 0 and 3600 seconds, got \(decay)") }
        if allocator == .local, case .fixed = sizes {} else if allocator == .local {
            throw .invalid(.sizes, "the local pool serves one block size: give a fixed size")
        }
        guard sizes.largest * threads * 4 <= workingSet else {
            throw .invalid(.workingSet, "\(ByteSize.format(workingSet)) is too small for \(threads) threads of blocks up to \(ByteSize.format(sizes.largest))")
        }
        return self
    }

    /// `grow=2,hold=2,shrink=1,idle=14,back=2`: phases in order with their seconds.
    public static func parsePhases(_ text: String) throws(MembenchError) -> [(ChurnPhase, Double)] {
        var phases: [(ChurnPhase, Double)] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=")
            guard parts.count == 2, let phase = ChurnPhase(rawValue: String(parts[0])), let seconds = Double(parts[1]) else {
                throw .invalid(.phases, "expected phase=seconds pairs (phases: \(ChurnPhase.allCases.map(\.rawValue).joined(separator: ", "))), got '\(item)'")
            }
            phases.append((phase, seconds))
        }
        return phases
    }
}

/// Memory coming and going: threads allocate up to a working set, free most of it, go idle
/// with no allocator call at all, then come back. The main thread samples the allocator's
/// figures and the process's resident bytes on an interval.
public enum Churn {
    /// The allocator under test, as the threads and the sampler use it.
    final class Subject: @unchecked Sendable {
        // @unchecked: the heap and the pool are Sendable; malloc is thread-safe.
        let heap: NUMAHeap?
        let pool: LocalPool?
        let blockSize: Int

        init(_ options: ChurnOptions, topology: Topology) throws(MembenchError) {
            blockSize = options.sizes.largest
            do {
                switch options.allocator {
                case .heap:
                    heap = try NUMAHeap(capacityPerNode: max(1 << 30, options.workingSet * 2), binding: .preferred,
                                        decay: .milliseconds(Int(options.decay * 1000)), name: "membench churn", topology: topology)
                    pool = nil
                case .local:
                    heap = nil
                    pool = try LocalPool(blockSize: blockSize, capacityPerNode: options.workingSet * 2, binding: .preferred,
                                         name: "membench churn", topology: topology)
                case .malloc:
                    heap = nil
                    pool = nil
                }
            } catch {
                throw MembenchError.from(error)
            }
        }

        @inline(__always)
        func allocate(_ size: Int) throws(PoolError) -> UnsafeMutableRawPointer {
            if let heap { return try heap.allocate(byteCount: size) }
            if let pool { return try pool.allocate() }
            guard let block = malloc(size) else { throw .invalidArgument("malloc(\(size)) failed") }
            return block
        }

        @inline(__always)
        func deallocate(_ block: UnsafeMutableRawPointer) {
            if let heap { return heap.deallocate(block) }
            if let pool { return pool.deallocate(block) }
            free(block)
        }

        func nodes(topology: Topology) -> [ChurnNodeSample] {
            if let heap {
                return heap.statistics().perNode.sorted { $0.key < $1.key }.map { node, stats in
                    ChurnNodeSample(node: node, inUse: stats.bytesInUse, cached: stats.bytesCached, free: stats.bytesFree,
                                    returned: stats.bytesReturned, resident: stats.bytesResident)
                }
            }
            if let pool {
                return pool.statistics().perNode.sorted { $0.key < $1.key }.map { node, stats in
                    ChurnNodeSample(node: node, inUse: stats.bytesOutstanding, cached: nil,
                                    free: stats.bytesReserved - stats.bytesOutstanding, returned: nil)
                }
            }
            return topology.bindableNodes.ids.map { ChurnNodeSample(node: $0) }
        }
    }

    /// The phase the threads are in, and a semaphore per thread for the idle phase.
    final class Control: Sendable {
        let phase = Atomic<Int>(0)
        let held = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let wake: [DispatchSemaphore]
        init(threads: Int) { wake = (0..<threads).map { _ in DispatchSemaphore(value: 0) } }
    }

    public static func run(_ options: ChurnOptions, topology: Topology = .current,
                           progress: (ChurnSample) -> Void = { _ in }) throws(MembenchError) -> [ChurnSample] {
        let subject = try Subject(options, topology: topology)
        let control = Control(threads: options.threads)
        let cpus = Array(topology.allowedCPUs.ids.prefix(options.threads))
        let start = StartLine(parties: options.threads)
        let share = options.workingSet / options.threads
        let phases = options.phases.map(\.0)
        let workers = try startPinnedThreads(on: cpus, role: "a churn thread", lines: [start]) { index, _ throws -> Void in
            try work(index: index, share: share, keep: options.keep, sizes: options.sizes, phases: phases,
                     subject: subject, control: control, start: start)
        }
        var samples: [ChurnSample] = []
        let began = ContinuousClock.now
        var elapsed = 0.0
        for (index, (phase, seconds)) in options.phases.enumerated() {
            control.phase.store(index, ordering: .releasing)
            if index > 0 && options.phases[index - 1].0 == .idle { for semaphore in control.wake { semaphore.signal() } }
            let end = elapsed + seconds
            while elapsed < end {
                Thread.sleep(forTimeInterval: min(options.interval, end - elapsed))
                elapsed = (ContinuousClock.now - began).inSeconds
                let sample = ChurnSample(seconds: elapsed, phase: phase, rssBytes: residentBytes(),
                                         heldBytes: control.held.load(ordering: .relaxed),
                                         purgerSeconds: subject.heap?.statistics().purgerCPUSeconds,
                                         nodes: subject.nodes(topology: topology))
                samples.append(sample)
                progress(sample)
            }
        }
        control.stop.store(true, ordering: .releasing)
        for semaphore in control.wake { semaphore.signal() }
        _ = try joinAll(workers)
        return samples
    }

    /// One thread's part: its share of the working set through every phase. In the idle phase
    /// it waits on its semaphore and makes no allocator call.
    static func work(index: Int, share: Int, keep: Double, sizes: AllocSizes, phases: [ChurnPhase],
                     subject: Subject, control: Control, start: StartLine) throws {
        let drawn = sizes.draw(count: 4096, seed: UInt64(0xC4) &+ UInt64(index))
        var next = 0
        var blocks: [(UnsafeMutableRawPointer, Int)] = []
        var held = 0
        var generator = SplitMix(seed: UInt64(0xC4) &+ UInt64(index) &* 7)
        defer {
            for (block, _) in blocks { subject.deallocate(block) }
            control.held.subtract(held, ordering: .relaxed)
        }
        func grow(to target: Int) throws {
            while held < target {
                let size = drawn[next & 4095]
                next &+= 1
                blocks.append((try subject.allocate(size), size))
                // Fill it, as a program would, so that its pages are resident.
                memset(blocks[blocks.count - 1].0, 0x5A, size)
                held += size
                control.held.add(size, ordering: .relaxed)
            }
        }
        func shrink(to target: Int) {
            while held > target, let (block, size) = blocks.popLast() {
                subject.deallocate(block)
                held -= size
                control.held.subtract(size, ordering: .relaxed)
            }
        }
        try start.arriveAndWait()
        var current = -1
        while !control.stop.load(ordering: .acquiring) {
            let phaseIndex = control.phase.load(ordering: .acquiring)
            let phase = phases[phaseIndex]
            if phase == .idle {
                current = phaseIndex
                control.wake[index].wait()  // not for ever: the phase after, or the end, signals
                continue
            }
            if phaseIndex != current {
                current = phaseIndex
                switch phase {
                case .grow, .back: try grow(to: share)
                case .shrink:
                    blocks.shuffle(using: &generator)
                    shrink(to: Int(Double(share) * keep))
                case .hold, .idle: break
                }
            }
            if phase == .hold && !blocks.isEmpty {
                let at = Int.random(in: 0..<blocks.count, using: &generator)
                let (block, size) = blocks[at]
                subject.deallocate(block)
                let fresh = drawn[next & 4095]
                next &+= 1
                blocks[at] = (try subject.allocate(fresh), fresh)
                memset(blocks[at].0, 0x5A, fresh)
                held += fresh - size
                control.held.add(fresh - size, ordering: .relaxed)
            } else {
                usleep(1000)
            }
        }
    }

    /// The process's resident bytes (`/proc/self/statm`, second field, in pages).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * PagePlacement.basePageSize
    }
}

extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
