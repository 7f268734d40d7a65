import Foundation

public enum BenchSuite: String, CaseIterable, Codable, Sendable {
    case compute, memory, network, disk, gpu
}

/// One benchmark's figures.
public struct BenchResult: Codable, Sendable, Equatable {
    /// `suite.name`, for example `memory.triad`.
    public var name: String
    public var suite: BenchSuite
    public var value: Double
    public var unit: String
    public var higherIsBetter: Bool
    /// For latencies: the distribution's median and 99th percentile, in `unit`.
    public var p50: Double?
    public var p99: Double?
    /// What the value is compared with for efficiency, and where that figure comes from.
    public var peak: Double?
    public var peakSource: String?
    /// value / peak (or peak / value for latencies), 0…1.
    public var efficiency: Double?
    /// 1000 = the documented reference machine (`BenchReference`).
    public var score: Double
    /// What one unit of work costs at the configured rates, for example per GFLOP or per GB.
    public var cost: Double?
    public var costUnit: String?
    /// What was measured, in words (sizes, threads, repetitions).
    public var detail: String
    /// Set when the benchmark could not run here (no GPU, no peer): the result has no figures.
    public var skipped: String?

    public init(name: String, suite: BenchSuite, value: Double, unit: String, higherIsBetter: Bool, detail: String) {
        self.name = name
        self.suite = suite
        self.value = value
        self.unit = unit
        self.higherIsBetter = higherIsBetter
        self.detail = detail
        score = 0
    }

    public static func skipped(_ name: String, suite: BenchSuite, reason: String) -> BenchResult {
        var result = BenchResult(name: name, suite: suite, value: 0, unit: "", higherIsBetter: true, detail: "")
        result.skipped = reason
        return result
    }
}

/// One `vigil bench` run: when, where, how, and its results.
public struct BenchRun: Codable, Sendable, Equatable {
    public var id: String
    public var time: Int64
    public var quick: Bool
    public var facts: HostFacts
    public var results: [BenchResult]
}

/// The reference machine's figures: a score of 1000 means "as fast as it". The reference is the project's
/// build VM (2 cores of a virtualised x86-64 server, Debian 12, release build), measured with `vigil bench`.
public enum BenchReference {
    public static let machine = "the project's 2-core Debian 12 build VM (release build, full run)"
    public static let values: [String: Double] = [
        "compute.fp_single": 9.0,          // GFLOP/s
        "compute.fp_all": 16.0,            // GFLOP/s
        "compute.hash_single": 9.0,        // GB/s
        "compute.hash_all": 16.0,          // GB/s
        "memory.copy": 10.0,               // GB/s
        "memory.scale": 10.0,
        "memory.add": 11.0,
        "memory.triad": 11.0,
        "memory.latency": 100.0,           // ns per dependent load
        "network.loopback_throughput": 20.0,  // Gbit/s
        "network.loopback_rtt": 30.0,      // µs
        "network.peer_throughput": 1.0,    // Gbit/s: a 1 GbE link
        "network.peer_rtt": 200.0,         // µs
        "disk.seq_write": 500.0,           // MB/s
        "disk.seq_read": 1000.0,           // MB/s
        "disk.fsync": 2.0,                 // ms
    ]
}
