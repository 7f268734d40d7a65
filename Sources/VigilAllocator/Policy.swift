import Foundation
import VigilCore

/// How the allocator orders and places work. Every field comes from `vigil.policy { … }` in the policy
/// script (rules/policy.lua); these defaults serve when there is no script or it never loaded.
public struct Policy: Sendable, Equatable {
    public enum Strategy: String, Sendable, CaseIterable {
        /// First come, first served; a task starts as soon as it fits.
        case immediate
        /// Submissions are gathered for `batchWindow`, then placed together, largest first, packing GPUs.
        case batch
        /// Slurm-style multifactor priority: class, age, fair share, size.
        case priority
    }

    public enum Target: String, Sendable, CaseIterable {
        case performance, cost, balanced
    }

    public struct Weights: Sendable, Equatable {
        public var speed = 0.4
        public var efficiency = 0.4
        public var reliability = 0.2
        public init() {}
    }

    /// Slurm's PriorityWeight* (each factor is in [0,1]; weights ≥ 1000 keep small differences).
    public struct PriorityWeights: Sendable, Equatable {
        public var priorityClass = 10_000.0
        public var age = 1_000.0
        public var fairShare = 2_000.0
        /// Favours tasks that need few GPU-hours (estimated GPUs × duration), which shortens the mean wait.
        public var size = 3_000.0
        public init() {}
    }

    public var strategy = Strategy.priority
    public var target = Target.balanced
    public var weights = Weights()
    public var priorityWeights = PriorityWeights()
    /// Tasks that may share one GPU when their declared memory fits. Default 4.
    public var tasksPerGPU = 4
    public var batchWindow: Int64 = 5_000
    /// EASY backfill: a later task starts early only if it does not delay the head's reserved start.
    public var backfill = true
    /// Fair-share usage half-life. Default 7 days (Slurm's PriorityDecayHalfLife).
    public var fairShareHalfLife: Int64 = 7 * 86_400_000
    /// Age at which the age factor saturates. Default 7 days (Slurm's PriorityMaxAge).
    public var maxAge: Int64 = 7 * 86_400_000
    /// Planned duration of a task with no history, no declared duration and no time limit. Default 1 h.
    public var defaultDuration: Int64 = 3_600_000
    /// GPU-hours at which the size factor halves. Default 1.
    public var sizeScale = 1.0
    /// Tasks (in order) whose placements the score function sees in one pass. Default 64.
    public var scoreWindow = 64

    public init() {}

    /// Strict first-in first-out with no backfill: the baseline `vigil sim` compares against.
    public static var fifo: Policy {
        var policy = Policy()
        policy.strategy = .immediate
        policy.backfill = false
        return policy
    }
}

/// A GPU as the planner sees it: capacity, what others use, and the live figures the score reads.
public struct GPUSlot: Sendable, Equatable {
    public var index: Int
    public var uuid: String
    public var model: String
    public var memoryTotal: Int64
    /// Memory used by processes Vigil did not start (seen through NVML).
    public var foreignMemory: Int64 = 0
    public var utilization = 0.0
    public var temperature = 0.0
    public var clockSM = 0.0
    public var clockSMMax = 0.0
    public var powerWatts = 0.0
    /// XID and uncorrected ECC errors in the last hour.
    public var recentErrors = 0.0
    public var pricePerHour = 0.0
    /// False when NVML says the GPU is lost or unavailable.
    public var healthy = true

    public init(index: Int, uuid: String, model: String, memoryTotal: Int64) {
        self.index = index
        self.uuid = uuid
        self.model = model
        self.memoryTotal = memoryTotal
    }
}

/// The built-in placement score (documented in rules/README.md, "Allocator policy"): used when the
/// policy has no `score` function, when it fails, and for placements outside the score window.
///
///     speed       = (clock_sm_max / fastest clock_sm_max) × (1 − utilization)
///     reliability = max(0, 1 − 0.5 × min(errors, 2) − max(0, temperature − 80) / 20)
///     packing     = memory the ledger holds on the GPU after placement / memory total
///     cheapness   = cheapest price per hour / this GPU's price per hour
///     efficiency  = performance: 1 − packing · cost: (packing + cheapness) / 2 · balanced: packing
///     score       = w.speed × speed + w.efficiency × efficiency + w.reliability × reliability
public enum BuiltinScore {
    public struct Context: Sendable {
        public var fastestClock: Double
        public var cheapestPrice: Double

        public init(gpus: [GPUSlot]) {
            fastestClock = gpus.map(\.clockSMMax).max() ?? 0
            cheapestPrice = gpus.map(\.pricePerHour).filter { $0 > 0 }.min() ?? 0
        }
    }

    public static func score(gpu: GPUSlot, packingAfter: Double, policy: Policy, context: Context) -> Double {
        let speed = (context.fastestClock > 0 ? gpu.clockSMMax / context.fastestClock : 1) * (1 - min(max(gpu.utilization, 0), 1))
        let reliability = max(0, 1 - 0.5 * min(gpu.recentErrors, 2) - max(0, gpu.temperature - 80) / 20)
        let cheapness = gpu.pricePerHour > 0 && context.cheapestPrice > 0 ? context.cheapestPrice / gpu.pricePerHour : 1
        let efficiency: Double = switch policy.target {
        case .performance: 1 - packingAfter
        case .cost: (packingAfter + cheapness) / 2
        case .balanced: packingAfter
        }
        let w = policy.weights
        return w.speed * speed + w.efficiency * efficiency + w.reliability * reliability
    }
}
