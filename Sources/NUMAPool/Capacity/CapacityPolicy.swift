/// One window of a pool partition's life, as a capacity policy sees it. Amounts are in the
/// partition's `IdleUnit`.
public struct CapacityWindow: Sendable, Equatable {
    /// When the window ended, from any fixed start.
    public var end: Duration
    /// The p99 of request duration over the window, if the application measures it.
    public var p99: Duration?
    /// Gets in the window.
    public var gets: UInt64
    /// Gets that idle memory could not serve (fresh allocations).
    public var misses: UInt64
    /// The capacity one miss stands for: 1 for objects, a block's bytes for a pool of blocks,
    /// 0 where a miss has no fixed size (the heap).
    public var unitsPerMiss: Int
    /// The least the partition kept idle at any time in the window: what sat unused throughout.
    public var idleLowWater: Int
    /// What came home from threads on other nodes in the window.
    public var remoteReturns: Int

    /// A window ending at `end`.
    public init(end: Duration, p99: Duration? = nil, gets: UInt64 = 0, misses: UInt64 = 0, unitsPerMiss: Int = 1,
                idleLowWater: Int = 0, remoteReturns: Int = 0) {
        self.end = end
        self.p99 = p99
        self.gets = gets
        self.misses = misses
        self.unitsPerMiss = unitsPerMiss
        self.idleLowWater = idleLowWater
        self.remoteReturns = remoteReturns
    }
}

/// What a policy decided after a window: the capacity, and why.
public struct CapacityDecision: Sendable, Equatable {
    /// Why the capacity is what it is.
    public enum Reason: String, Sendable {
        /// Nothing called for a change.
        case hold
        /// It grew.
        case grow
        /// It shrank.
        case shrink
        /// A change was due, but the last one is too recent.
        case cooldown
        /// A shrink was due, but p99 is over the SLO.
        case sloVeto = "slo-veto"
        /// A shrink was due, but the capacity is at its minimum.
        case atMinimum = "at-minimum"
    }

    /// The capacity from now on.
    public var capacity: Int
    /// Why.
    public var reason: Reason

    /// A decision.
    public init(capacity: Int, reason: Reason) {
        self.capacity = capacity
        self.reason = reason
    }
}

/// A rule that sizes one partition's idle capacity from a sequence of windows. It is a pure
/// function of the windows and its parameters: `decide` only updates the policy's own streaks.
public protocol CapacityPolicy: Sendable {
    /// The capacity after `window`, given the capacity during it.
    mutating func decide(after window: CapacityWindow, capacity: Int) -> CapacityDecision
}

extension CapacityPolicy {
    /// The decisions `self` makes over `windows`, starting at `capacity`.
    public func replay(_ windows: [CapacityWindow], from capacity: Int) -> [CapacityDecision] {
        var policy = self
        var capacity = capacity
        return windows.map { window in
            let decision = policy.decide(after: window, capacity: capacity)
            capacity = decision.capacity
            return decision
        }
    }
}

/// The reference study's rule, as written: grow when the p99 of request duration has been over
/// `upFactor` × the SLO for `windows` windows in a row, shrink when it has been under
/// `downFactor` × the SLO as long; each change by `step`, never below `minimum`, and none within
/// `cooldown` of the last. It looks at p99 only, so it also grows when a slow dependency, not the
/// pool, makes requests slow.
public struct SLORule: CapacityPolicy {
    /// The p99 target.
    public var slo: Duration
    /// Over this × `slo`, a window counts towards growing (1.3).
    public var upFactor: Double
    /// Under this × `slo`, a window counts towards shrinking (0.7).
    public var downFactor: Double
    /// Windows in a row that must agree (5).
    public var windows: Int
    /// The least capacity.
    public var minimum: Int
    /// The change each decision makes (3).
    public var step: Int
    /// The least time between two changes (300 s).
    public var cooldown: Duration
    private var over = 0, under = 0
    private var lastChange: Duration?

    /// The study's rule with its defaults, for `slo` and `minimum`.
    public init(slo: Duration, minimum: Int, upFactor: Double = 1.3, downFactor: Double = 0.7, windows: Int = 5,
                step: Int = 3, cooldown: Duration = .seconds(300)) {
        self.slo = slo
        self.minimum = minimum
        self.upFactor = upFactor
        self.downFactor = downFactor
        self.windows = windows
        self.step = step
        self.cooldown = cooldown
    }

    /// Counts the window towards growing or shrinking, and changes the capacity when `windows`
    /// in a row agree and the cooldown has passed. A window without p99 breaks both streaks.
    public mutating func decide(after window: CapacityWindow, capacity: Int) -> CapacityDecision {
        let ratio = window.p99.map { $0 / slo }
        if let ratio, ratio > upFactor {
            over += 1
            under = 0
        } else if let ratio, ratio < downFactor {
            under += 1
            over = 0
        } else {
            over = 0
            under = 0
        }
        guard over >= windows || under >= windows else { return CapacityDecision(capacity: capacity, reason: .hold) }
        if let lastChange, window.end - lastChange < cooldown {
            return CapacityDecision(capacity: capacity, reason: .cooldown)
        }
        let growing = over >= windows
        over = 0
        under = 0
        if growing {
            lastChange = window.end
            return CapacityDecision(capacity: capacity + step, reason: .grow)
        }
        guard capacity > minimum else { return CapacityDecision(capacity: capacity, reason: .atMinimum) }
        lastChange = window.end
        return CapacityDecision(capacity: max(minimum, capacity - step), reason: .shrink)
    }
}

/// Sizes a partition from its own demand, as the allocators' thread caches do:
/// - **grows fast** when the pool runs short: after `growAfter` windows in a row whose share of
///   misses in gets is over `missThreshold`, the capacity becomes `growFactor` × what it was, or
///   what it was plus what the window's misses stand for (`unitsPerMiss`) if that is more, at
///   most `maximum`, at most once per `cooldown`;
/// - **shrinks slowly** when memory sits unused: after `shrinkAfter` windows in a row in which
///   the idle low-water mark (less what came home from other nodes in the window, which is in
///   transit rather than unused) stayed above zero, it gives back `shrinkFraction` of the least
///   of those unused amounts, never going below `minimum`;
/// - an optional **SLO guard** vetoes a shrink while p99 is over `slo`.
/// A slow dependency (p99 up, no misses) moves it neither way.
public struct DemandController: CapacityPolicy {
    /// The least capacity.
    public var minimum: Int
    /// The most capacity.
    public var maximum: Int
    /// Over this share of misses in gets, a window counts as short (0.02).
    public var missThreshold: Double
    /// Short windows in a row before growing (2).
    public var growAfter: Int
    /// The factor of a growth (2).
    public var growFactor: Double
    /// The least time between two growths (30 s).
    public var cooldown: Duration
    /// Windows in a row with memory unused before shrinking (5).
    public var shrinkAfter: Int
    /// The share of the unused amount a shrink gives back (0.25).
    public var shrinkFraction: Double
    /// The SLO guard: no shrink while p99 is over it.
    public var slo: Duration?
    private var short = 0, unused = 0
    /// The least unused amount over the current streak of unused windows.
    private var unusedLow = Int.max
    private var lastGrowth: Duration?

    /// A controller between `minimum` and `maximum`, with an optional SLO guard.
    public init(minimum: Int, maximum: Int, slo: Duration? = nil, missThreshold: Double = 0.02, growAfter: Int = 2,
                growFactor: Double = 2, cooldown: Duration = .seconds(30), shrinkAfter: Int = 5,
                shrinkFraction: Double = 0.25) {
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.slo = slo
        self.missThreshold = missThreshold
        self.growAfter = growAfter
        self.growFactor = growFactor
        self.cooldown = cooldown
        self.shrinkAfter = shrinkAfter
        self.shrinkFraction = shrinkFraction
    }

    /// Counts the window as short, unused or neither, and grows or shrinks as described above.
    public mutating func decide(after window: CapacityWindow, capacity: Int) -> CapacityDecision {
        let isShort = window.misses > 0 && window.gets > 0 && Double(window.misses) / Double(window.gets) > missThreshold
        let idle = max(0, window.idleLowWater - window.remoteReturns)
        if isShort {
            short += 1
            unused = 0
        } else {
            short = 0
            unused = idle > 0 ? unused + 1 : 0
        }
        unusedLow = unused == 0 ? .max : min(unusedLow, idle)
        if short >= growAfter {
            if let lastGrowth, window.end - lastGrowth < cooldown {
                return CapacityDecision(capacity: capacity, reason: .cooldown)
            }
            short = 0
            let missed = Int(clamping: window.misses).multipliedReportingOverflow(by: window.unitsPerMiss)
            let grown = min(maximum, max(Int((Double(capacity) * growFactor).rounded(.up)),
                                         missed.overflow ? maximum : capacity + missed.partialValue))
            guard grown > capacity else { return CapacityDecision(capacity: capacity, reason: .hold) }
            lastGrowth = window.end
            return CapacityDecision(capacity: grown, reason: .grow)
        }
        guard unused >= shrinkAfter else { return CapacityDecision(capacity: capacity, reason: .hold) }
        if let slo, let p99 = window.p99, p99 > slo { return CapacityDecision(capacity: capacity, reason: .sloVeto) }
        let low = unusedLow
        unused = 0
        unusedLow = .max
        guard capacity > minimum else { return CapacityDecision(capacity: capacity, reason: .atMinimum) }
        let shrunk = max(minimum, capacity - max(1, Int(Double(min(low, capacity)) * shrinkFraction)))
        return CapacityDecision(capacity: shrunk, reason: .shrink)
    }
}
