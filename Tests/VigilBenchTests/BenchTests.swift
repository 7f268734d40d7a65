import Foundation
import Testing
import VigilCollectors
import VigilState
@testable import VigilBench

@Suite("benchmark statistics and scoring")
struct BenchStatisticsTests {
    @Test("quantiles interpolate between ranks; the robust spread ignores an outlier")
    func quantiles() throws {
        let values = [1.0, 2, 3, 4, 100]
        #expect(BenchStatistics.median(values) == 3)
        #expect(BenchStatistics.quantile(0.25, values) == 2)
        #expect(BenchStatistics.quantile(0.99, [1, 2, 3, 4, 5]) == 4.96)
        // |x − 3| = 2 1 0 1 97 → median 1 → × 1.4826
        #expect(abs(try #require(BenchStatistics.robustSpread(values)) - 1.4826) < 1e-12)
        #expect(BenchStatistics.median([]) == nil)
    }

    @Test("a latency histogram: equal bins between the 0.1st and 99.9th percentiles, the rare extremes in the end bins")
    func histogram() throws {
        // 0…999 once each, and one far outlier.
        let values = (0..<1000).map(Double.init) + [1e6]
        let bins = BenchStatistics.histogram(values, bins: 10)
        #expect(bins.count == 10)
        let low = try #require(BenchStatistics.quantile(0.001, values)), high = try #require(BenchStatistics.quantile(0.999, values))
        #expect(bins.first?[0] == low && abs(bins.last![1] - high) < 1e-9)
        #expect(bins.reduce(0) { $0 + $1[2] } == 1001, "every sample is counted")
        #expect(bins.last![2] > bins[5][2], "the outlier lands in the last bin")
        #expect(BenchStatistics.histogram([]).isEmpty)
        #expect(BenchStatistics.histogram([5, 5, 5]) == [[5, 5, 3]])
    }

    @Test("trend: the least-squares slope per run, as a share of the mean")
    func trend() throws {
        // 10, 11, 12, 13, 14: slope 1 per run over a mean of 12.
        #expect(abs(try #require(BenchStatistics.trendPerRun([10, 11, 12, 13, 14])) - 1.0 / 12) < 1e-12)
        #expect(BenchStatistics.trendPerRun([5, 5]) == nil)
    }

    /// Recorded: five full runs of memory.triad on the build VM (GB/s), then candidates.
    static let triadHistory = [15.2, 15.6, 15.4, 15.9, 15.5]

    @Test("regressions: beyond three robust deviations and 5 % of the baseline, in the right direction")
    func regressions() {
        // Median 15.5; |x − 15.5| = .3 .1 .1 .4 0 → MAD .1 → spread .148; threshold max(.445, .775) = .775.
        let regression = BenchStatistics.verdict(value: 14.6, history: Self.triadHistory, higherIsBetter: true)
        #expect(regression.kind == .regression)
        #expect(regression.baseline == 15.5)
        #expect(abs((regression.threshold ?? 0) - 0.775) < 1e-9)
        #expect(BenchStatistics.verdict(value: 14.8, history: Self.triadHistory, higherIsBetter: true).kind == .normal)
        #expect(BenchStatistics.verdict(value: 16.4, history: Self.triadHistory, higherIsBetter: true).kind == .improvement)
        // Latency: higher is worse. Recorded fsync p50s in ms.
        let fsync = [0.25, 0.26, 0.24, 0.31, 0.25, 0.27]
        #expect(BenchStatistics.verdict(value: 0.45, history: fsync, higherIsBetter: false).kind == .regression)
        #expect(BenchStatistics.verdict(value: 0.20, history: fsync, higherIsBetter: false).kind == .improvement)
        // A noisy history widens the threshold: the same drop is no longer flagged.
        let noisy = [12.0, 18.0, 15.0, 11.0, 19.0]
        #expect(BenchStatistics.verdict(value: 12.5, history: noisy, higherIsBetter: true).kind == .normal)
        #expect(BenchStatistics.verdict(value: 1, history: [2, 2], higherIsBetter: true).kind == .notEnoughHistory)
    }

    @Test("scores: 1000 at the reference, in proportion either way; peaks from the host's facts")
    func scores() {
        #expect(BenchStatistics.score(value: 12, reference: 10, higherIsBetter: true) == 1200)
        #expect(BenchStatistics.score(value: 200, reference: 100, higherIsBetter: false) == 500)
        #expect(BenchStatistics.score(value: 0, reference: 100, higherIsBetter: false) == 0)
        let facts = HostFacts(hostname: "h", cpuModel: "x", cpus: 2, maxMegahertz: 2445, vectorDoubles: 4, fma: true,
                              memoryBytes: 0, kernel: "")
        #expect(facts.flopsPerCycle == 16)
        #expect(abs(facts.peakGigaflopsPerCore - 39.12) < 1e-9)
        var sse = facts
        sse.vectorDoubles = 2
        sse.fma = false
        #expect(sse.flopsPerCycle == 4)
        for name in ["compute.fp_single", "memory.triad", "memory.latency", "disk.fsync", "network.loopback_rtt"] {
            #expect(BenchReference.values[name] != nil, "\(name) has no reference figure")
        }
    }
}

@Suite("benchmarks that run here")
struct BenchRunTests {
    @Test("network over loopback: every byte counted by the far end, round trips with percentiles")
    func loopback() throws {
        var options = BenchRunner.Options()
        options.quick = true
        let run = BenchRunner(options: options).run([.network])
        let throughput = try #require(run.results.first { $0.name == "network.loopback_throughput" })
        let rtt = try #require(run.results.first { $0.name == "network.loopback_rtt" })
        // The far end's byte count must equal what was sent, or the benchmark throws and the result is skipped;
        // the figure itself depends on the machine's load, so only its sign is checked.
        #expect(throughput.skipped == nil && throughput.value > 0, "\(throughput)")
        #expect(rtt.value > 0 && rtt.value.isFinite)
        #expect(try #require(rtt.p50) <= (try #require(rtt.p99)))
        #expect(rtt.score > 0 && rtt.costUnit?.contains("per round trip") == true)
    }

    @Test("no CUDA driver: the gpu suite says so and is skipped, not failed")
    func noGPU() throws {
        let results = GPUBench.run(library: "/nonexistent/libcuda.so.1")
        #expect(results.count == 1)
        let skipped = try #require(results.first?.skipped)
        #expect(skipped.hasPrefix("no GPU: the CUDA driver (/nonexistent/libcuda.so.1) is not installed here"), "\(skipped)")
    }

    @Test("a library without the CUDA symbols is refused by name")
    func notCUDA() throws {
        let results = GPUBench.run(library: "libc.so.6")
        #expect(results.first?.skipped?.contains("lacks cuInit") == true, "\(results)")
    }

    @Test("the PTX kernels declare what the launcher binds")
    func ptx() {
        #expect(PTX.source.contains(".visible .entry vb_copy(.param .u64 dst, .param .u64 src, .param .u64 n)"))
        #expect(PTX.source.contains(".visible .entry vb_fma(.param .u64 out, .param .u32 iterations)"))
        #expect(PTX.source.components(separatedBy: "fma.rn.f32").count - 1 == 8)
        #expect(CUDADriver.coresPerMultiprocessor(major: 9, minor: 0) == 128)
        #expect(CUDADriver.coresPerMultiprocessor(major: 8, minor: 0) == 64)
    }

    @Test("history: runs saved, earlier values in order, the best seen, verdicts against earlier runs")
    func history() throws {
        let folder = NSTemporaryDirectory() + "vigil-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let history = BenchHistory(database: try StateDatabase(dataDirectory: folder))
        let facts = HostFacts(hostname: "gpu-1", cpuModel: "x", cpus: 2, maxMegahertz: 2000, vectorDoubles: 4, fma: true,
                              memoryBytes: 0, kernel: "")
        for (index, value) in (BenchStatisticsTests.triadHistory + [14.0]).enumerated() {
            var result = BenchResult(name: "memory.triad", suite: .memory, value: value, unit: "GB/s", higherIsBetter: true, detail: "")
            result.score = value * 100
            try history.save(BenchRun(id: "run\(index)", time: Int64(index) * 1000, quick: false, facts: facts, results: [result]))
        }
        #expect(try history.values("memory.triad", host: "gpu-1", quick: false) == BenchStatisticsTests.triadHistory + [14.0])
        #expect(try history.values("memory.triad", host: "gpu-1", quick: true).isEmpty)
        #expect(history.best("memory.triad", host: "gpu-1") == 15.9)
        let latest = try #require(try history.runs(host: "gpu-1").first)
        #expect(latest.id == "run5")
        #expect(try history.verdicts(for: latest)["memory.triad"]?.kind == .regression)

        // The `bench` collector turns the latest run into metrics for rules.
        let batch = try BenchCollector(database: history.database, host: "gpu-1").collect()
        #expect(batch.value("vigil_bench_result", ["benchmark": "memory.triad", "unit": "GB/s"]) == 14.0)
        #expect(batch.value("vigil_bench_regression", ["benchmark": "memory.triad"]) == 1)
        #expect(abs((batch.value("vigil_bench_change_ratio", ["benchmark": "memory.triad"]) ?? 0) - (14.0 - 15.5) / 15.5) < 1e-12)
        #expect(batch.value("vigil_bench_score", ["benchmark": "memory.triad"]) == 1400)
        #expect(try BenchCollector(database: history.database, host: "another").collect().count == 0)
    }
}
