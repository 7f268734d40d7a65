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
    /// For latencies: the distribution, as `[lower, upper, count]` bins (`BenchStatistics.histogram`).
    public var histogram: [[Double]]?
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

/// The reference figures: a score of 1000 means "as fast as the reference". CPU, memory, loopback and disk
/// figures are the medians of three full `vigil bench` runs (release build, 2026-11-28) on the project's
/// build VM: 2 vCPUs of an AMD EPYC at 2445 MHz, Debian 12 (BENCHMARKS.md has the runs). The peer figures
/// are a 1 GbE link's; the GPU figures are NVIDIA's published numbers for the A100 40 GB PCIe (so a measured
/// A100 scores somewhat under 1000).
public enum BenchReference {
    public static let machine = "the project's 2-vCPU EPYC build VM (full runs; GPU: an A100 40 GB PCIe's published figures)"
    public static let values: [String: Double] = [
        "compute.fp_single": 6.3,              // GFLOP/s
        "compute.fp_all": 9.9,                 // GFLOP/s
        "compute.hash_single": 9.2,            // GB/s
        "compute.hash_all": 20.4,              // GB/s
        "memory.copy": 17.9,                   // GB/s
        "memory.scale": 16.9,
        "memory.add": 18.0,
        "memory.triad": 17.8,
        "memory.latency": 339,                 // ns per dependent load
        "network.loopback_throughput": 23.1,   // Gbit/s
        "network.loopback_rtt": 33.8,          // µs
        "network.peer_throughput": 1.0,        // Gbit/s: 1 GbE
        "network.peer_rtt": 200,               // µs: a LAN round trip
        "disk.seq_write": 262,                 // MB/s
        "disk.seq_read": 2490,                 // MB/s
        "disk.fsync": 0.143,                   // ms
        "gpu.memory_bandwidth": 1555,          // GB/s
        "gpu.fp32_fma": 19_500,                // GFLOP/s
        "gpu.host_to_device": 25,              // GB/s: PCIe 4.0 ×16
        "gpu.device_to_host": 25,
    ]
}
