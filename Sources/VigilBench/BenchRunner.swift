import CVigilBench
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs the benchmarks of the chosen suites and fills in peaks, efficiency, scores and costs.
public final class BenchRunner {
    public struct Options: Sendable {
        public var quick = false
        /// Where the disk benchmark writes its file (the data folder).
        public var directory = "data"
        /// `host:port` of a `vigil bench serve` for the network suite's peer figures.
        public var peer: String?
        /// Price of one core for an hour, for costs per operation (`costs.cpu_core_hour`).
        public var coreHourPrice = 0.04
        public var currency = "USD"

        public init() {}
    }

    public let options: Options
    public let facts: HostFacts
    /// The best earlier figure of a benchmark on this host, where no theoretical peak is known.
    private let bestSeen: (String) -> Double?
    /// Called before each benchmark: its name, how many are done, how many in all.
    private let progress: (String, Int, Int) -> Void

    public init(options: Options, facts: HostFacts = .detect(), bestSeen: @escaping (String) -> Double? = { _ in nil },
                progress: @escaping (String, Int, Int) -> Void = { _, _, _ in }) {
        self.options = options
        self.facts = facts
        self.bestSeen = bestSeen
        self.progress = progress
    }

    /// Seconds each throughput benchmark runs for.
    private var seconds: Double { options.quick ? 0.5 : 2.0 }

    private struct Step {
        let name: String
        let suite: BenchSuite
        let run: () throws -> [BenchResult]
    }

    public func run(_ suites: [BenchSuite]) -> BenchRun {
        let steps = suites.flatMap(steps(for:))
        var results: [BenchResult] = []
        for (index, step) in steps.enumerated() {
            progress(step.name, index, steps.count)
            do {
                results += try step.run().map(finish)
            } catch {
                results.append(.skipped(step.name, suite: step.suite, reason: "\(error)"))
            }
        }
        progress("", steps.count, steps.count)
        return BenchRun(id: UUID().uuidString.lowercased(), time: Int64(Date().timeIntervalSince1970 * 1000),
                        quick: options.quick, facts: facts, results: results)
    }

    private func steps(for suite: BenchSuite) -> [Step] {
        switch suite {
        case .compute:
            return [
                Step(name: "compute.fp_single", suite: suite) { [self] in [floatingPoint(threads: 1)] },
                Step(name: "compute.fp_all", suite: suite) { [self] in [floatingPoint(threads: facts.cpus)] },
                Step(name: "compute.hash_single", suite: suite) { [self] in [hash(threads: 1)] },
                Step(name: "compute.hash_all", suite: suite) { [self] in [hash(threads: facts.cpus)] },
            ]
        case .memory:
            return [
                Step(name: "memory.stream", suite: suite) { [self] in stream() },
                Step(name: "memory.latency", suite: suite) { [self] in [memoryLatency()] },
            ]
        case .network:
            var steps = [Step(name: "network.loopback", suite: suite) { [self] in try network(peer: nil) }]
            if let peer = options.peer {
                steps.append(Step(name: "network.peer", suite: suite) { [self] in try network(peer: peer) })
            }
            return steps
        case .disk:
            return [Step(name: "disk", suite: suite) { [self] in try disk() }]
        case .gpu:
            return [Step(name: "gpu", suite: suite) { GPUBench.run() }]
        }
    }

    /// Peak, efficiency, score and cost, from what the benchmark measured.
    private func finish(_ measured: BenchResult) -> BenchResult {
        var result = measured
        guard result.skipped == nil else { return result }
        if result.peak == nil, let best = bestSeen(result.name) {
            // No theoretical figure: the best this host has done is the optimum it is compared with.
            result.peak = result.higherIsBetter ? max(best, result.value) : min(best, result.value)
            result.peakSource = "best seen on this host"
        }
        if let peak = result.peak, peak > 0, result.value > 0 {
            result.efficiency = result.higherIsBetter ? result.value / peak : peak / result.value
        }
        if let reference = BenchReference.values[result.name] {
            result.score = BenchStatistics.score(value: result.value, reference: reference, higherIsBetter: result.higherIsBetter)
        }
        return result
    }

    /// The price of `cores` busy for `seconds`.
    private func price(cores: Int, seconds: Double) -> Double {
        Double(cores) * options.coreHourPrice / 3600 * seconds
    }

    // MARK: Compute

    private func floatingPoint(threads: Int) -> BenchResult {
        let n = options.quick ? 192 : 256
        let count = n * n
        var repetitions = [Int](repeating: 0, count: threads)
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        repetitions.withUnsafeMutableBufferPointer { reps in
            let shared = UnsafeSendable(reps)
            DispatchQueue.concurrentPerform(iterations: threads) { thread in
                let a = UnsafeMutablePointer<Double>.allocate(capacity: count)
                let b = UnsafeMutablePointer<Double>.allocate(capacity: count)
                let c = UnsafeMutablePointer<Double>.allocate(capacity: count)
                defer { a.deallocate(); b.deallocate(); c.deallocate() }
                for i in 0..<count {
                    a[i] = Double(i % 7) * 0.5
                    b[i] = Double(i % 5) * 0.25
                    c[i] = 0
                }
                var done = 0
                repeat {
                    vb_dgemm(Int32(n), a, b, c)
                    done += 1
                } while DispatchTime.now().uptimeNanoseconds < deadline
                shared.value[thread] = done
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let flops = 2 * Double(n * n * n) * Double(repetitions.reduce(0, +))
        let gigaflops = flops / elapsed / 1e9
        var result = BenchResult(name: threads == 1 ? "compute.fp_single" : "compute.fp_all", suite: .compute, value: gigaflops,
                                 unit: "GFLOP/s", higherIsBetter: true,
                                 detail: "blocked double-precision matrix multiply, \(n)×\(n), \(threads) thread\(threads == 1 ? "" : "s")")
        result.peak = facts.peakGigaflopsPerCore * Double(threads)
        result.peakSource = String(format: "%d core%@ × %.0f MHz × %.0f FLOP/cycle (%d-wide%@)", threads, threads == 1 ? "" : "s",
                                   facts.maxMegahertz, facts.flopsPerCycle, facts.vectorDoubles, facts.fma ? ", FMA" : "")
        result.cost = price(cores: threads, seconds: 1 / gigaflops)
        result.costUnit = "\(options.currency) per GFLOP"
        return result
    }

    private func hash(threads: Int) -> BenchResult {
        let words = 128 * 1024   // 1 MiB: the L2 cache, so this is the integer units, not memory
        let rounds = 16
        var passes = [Int](repeating: 0, count: threads)
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        passes.withUnsafeMutableBufferPointer { counts in
            let shared = UnsafeSendable(counts)
            DispatchQueue.concurrentPerform(iterations: threads) { thread in
                let data = UnsafeMutablePointer<UInt64>.allocate(capacity: words)
                defer { data.deallocate() }
                for i in 0..<words { data[i] = UInt64(i) &* 0x9e37_79b9_7f4a_7c15 }
                var done = 0
                var value: UInt64 = 0
                repeat {
                    value ^= vb_hash(data, words, Int32(rounds))
                    done += 1
                } while DispatchTime.now().uptimeNanoseconds < deadline
                shared.value[thread] = done
                blackhole(value)
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let bytes = Double(words * 8 * rounds) * Double(passes.reduce(0, +))
        let gigabytes = bytes / elapsed / 1e9
        var result = BenchResult(name: threads == 1 ? "compute.hash_single" : "compute.hash_all", suite: .compute, value: gigabytes,
                                 unit: "GB/s", higherIsBetter: true,
                                 detail: "64-bit multiply-xorshift hash over 1 MiB, \(threads) thread\(threads == 1 ? "" : "s")")
        result.cost = price(cores: threads, seconds: 1 / gigabytes)
        result.costUnit = "\(options.currency) per GB hashed"
        return result
    }

    // MARK: Memory

    private func stream() -> [BenchResult] {
        let n = options.quick ? 4 << 20 : 16 << 20   // doubles per array: 32 MiB or 128 MiB each
        let threads = facts.cpus
        let a = UnsafeMutablePointer<Double>.allocate(capacity: n)
        let b = UnsafeMutablePointer<Double>.allocate(capacity: n)
        let c = UnsafeMutablePointer<Double>.allocate(capacity: n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        let arrays = UnsafeSendable((a, b, c))
        // First touch by the threads that will use each part (the pages land near them).
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let (a, b, c) = arrays.value
            let range = Self.chunk(t, of: threads, n)
            for i in range { a[i] = 1; b[i] = 2; c[i] = 0 }
        }
        let repetitions = options.quick ? 5 : 10
        let kernels: [(String, Double, (Int, Int) -> Void)] = [
            ("memory.copy", 16, { lo, count in vb_stream_copy(c + lo, a + lo, count) }),
            ("memory.scale", 16, { lo, count in vb_stream_scale(b + lo, c + lo, 3, count) }),
            ("memory.add", 24, { lo, count in vb_stream_add(c + lo, a + lo, b + lo, count) }),
            ("memory.triad", 24, { lo, count in vb_stream_triad(a + lo, b + lo, c + lo, 3, count) }),
        ]
        var best = [Double](repeating: .infinity, count: kernels.count)
        // STREAM's order: the four kernels in turn, each repetition; the best time of each counts.
        for _ in 0..<repetitions {
            for (index, kernel) in kernels.enumerated() {
                let body = UnsafeSendable(kernel.2)
                let start = DispatchTime.now().uptimeNanoseconds
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let range = Self.chunk(t, of: threads, n)
                    body.value(range.lowerBound, range.count)
                }
                best[index] = min(best[index], Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
        }
        return kernels.enumerated().map { index, kernel in
            let gigabytes = kernel.1 * Double(n) / best[index] / 1e9
            var result = BenchResult(name: kernel.0, suite: .memory, value: gigabytes, unit: "GB/s", higherIsBetter: true,
                                     detail: "STREAM \(kernel.0.dropFirst(7)), 3 arrays of \(n * 8 >> 20) MiB, \(threads) threads, best of \(repetitions)")
            result.cost = price(cores: threads, seconds: 1 / gigabytes)
            result.costUnit = "\(options.currency) per GB moved"
            return result
        }
    }

    static func chunk(_ index: Int, of parts: Int, _ n: Int) -> Range<Int> {
        let size = (n + parts - 1) / parts
        let low = min(n, index * size)
        return low..<min(n, low + size)
    }

    private func memoryLatency() -> BenchResult {
        let bytes = options.quick ? 64 << 20 : 256 << 20
        let count = bytes / MemoryLayout<Int>.stride
        let next = UnsafeMutablePointer<Int>.allocate(capacity: count)
        defer { next.deallocate() }
        // One random cycle through every slot (Sattolo's algorithm): no prefetcher can follow it.
        var order = Array(0..<count)
        var generator = SplitMix(seed: 7)
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(generator.next() % UInt64(i)))
        }
        for i in 0..<count { next[order[i]] = order[(i + 1) % count] }
        order = []
        let steps = 1 << 16
        var samples: [Double] = []
        var at = 0
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        repeat {
            let start = DispatchTime.now().uptimeNanoseconds
            at = vb_chase(next, at, steps)
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(steps))
        } while DispatchTime.now().uptimeNanoseconds < deadline || samples.count < 10
        var result = BenchResult(name: "memory.latency", suite: .memory, value: BenchStatistics.median(samples) ?? 0, unit: "ns",
                                 higherIsBetter: false,
                                 detail: "dependent loads through a random cycle over \(bytes >> 20) MiB, \(samples.count) batches of \(steps)")
        result.p50 = BenchStatistics.quantile(0.5, samples)
        result.p99 = BenchStatistics.quantile(0.99, samples)
        result.histogram = BenchStatistics.histogram(samples)
        result.cost = price(cores: 1, seconds: result.value / 1e9)
        result.costUnit = "\(options.currency) per load"
        return result
    }

    // MARK: Network and disk: in BenchNetwork.swift and BenchDisk.swift
}

/// A value handed to the threads of `concurrentPerform`, which each use their own part of it.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Keeps a computed value observed, so the optimiser cannot drop the work that made it.
@inline(never)
func blackhole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

/// A small deterministic generator (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
