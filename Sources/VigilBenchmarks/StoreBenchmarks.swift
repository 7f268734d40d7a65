import Foundation
import Synchronization
import VigilCore
import VigilStore

enum StoreBenchmarks {
    static func run() {
        print("== store")
        appends()
        compression()
        windows()
    }

    /// Appends through series handles on one core, against appending to plain arrays under the same
    /// kind of lock.
    static func appends() {
        let seriesCount = 1000, perSeries = 10_000
        var generator = Generator(state: 1)
        var values = [Double](repeating: 0, count: perSeries)
        var level = 50.0
        for i in values.indices {
            if generator.chance(4) { level += Double(generator.below(11) - 5) }
            values[i] = level
        }
        let store = MetricStore()
        let refs = (0..<seriesCount).map { store.series(Labels(name: "bench_gauge", ["id": "\($0)"])) }
        let base: Int64 = 1_800_000_000_000
        let storeSeconds = measure {
            for step in 0..<perSeries {
                let t = base + Int64(step) * 1000
                let v = values[step]
                for ref in refs { store.append(ref, t, v) }
            }
        }
        final class PlainSeries: Sendable { let samples = Mutex<[Sample]>([]) }
        let plain = (0..<seriesCount).map { _ in PlainSeries() }
        let plainSeconds = measure {
            for step in 0..<perSeries {
                let t = base + Int64(step) * 1000
                let v = values[step]
                for series in plain { series.samples.withLock { $0.append(Sample(t, v)) } }
            }
        }
        let total = Double(seriesCount * perSeries)
        print("appends, one core (\(seriesCount) series × \(perSeries) samples, 1 s gauges):")
        row("compressed store, by series handle", "\(format(total / storeSeconds / 1e6)) M appends/s")
        row("baseline: uncompressed [Sample] per series, same lock", "\(format(total / plainSeconds / 1e6)) M appends/s",
            "store/baseline \(format(plainSeconds / storeSeconds))×")
        // By label set: what a collector does on its first round, or without cached handles.
        let labels = (0..<seriesCount).map { Labels(name: "bench_gauge", ["id": "\($0)"]) }
        let labelSteps = 500
        let labelSeconds = measure {
            for step in 0..<labelSteps {
                let t = base + Int64(perSeries + step) * 1000
                for l in labels { store.append(l, t, values[step]) }
            }
        }
        row("compressed store, by label set (index lookup each time)", "\(format(Double(seriesCount * labelSteps) / labelSeconds / 1e6)) M appends/s")
        consume(plain)
    }

    /// One hour of 1 s GPU-like gauges: bytes per sample, against Gorilla XOR and raw 16-byte samples.
    static func compression() {
        print("bytes per sample, one hour of 1 s GPU-like series (8 GPUs × 8 metrics):")
        var results: [(String, Double, Double)] = []
        for jitter in [false, true] {
            let decimal = MetricStore(encoding: .decimal)
            let xor = MetricStore(encoding: .xor)
            var perMetric: [String: (Int, Int)] = [:]
            fill([decimal, xor], jitter: jitter)
            let decimalStats = decimal.statistics()
            let xorStats = xor.statistics()
            let label = jitter ? "timestamps with ±5 ms scrape jitter" : "timestamps on the scheduler's tick"
            results.append((label, Double(decimalStats.sampleBytes) / Double(decimalStats.samples),
                            Double(xorStats.sampleBytes) / Double(xorStats.samples)))
            if !jitter {
                for name in GPUStream.metricNames {
                    let single = MetricStore(encoding: .decimal)
                    fill([single], jitter: false, only: name)
                    let s = single.statistics()
                    perMetric[name] = (s.sampleBytes, s.samples)
                }
                for name in GPUStream.metricNames {
                    let (bytes, samples) = perMetric[name]!
                    row("  \(name)", "\(format(Double(bytes) / Double(samples), 3)) B/sample")
                }
                let gauges = GPUStream.metricNames.filter { !$0.hasSuffix("_total") }
                let gaugeBytes = gauges.reduce(0) { $0 + perMetric[$1]!.0 }, gaugeSamples = gauges.reduce(0) { $0 + perMetric[$1]!.1 }
                row("the \(gauges.count) gauges together (all but the energy counter)",
                    "\(format(Double(gaugeBytes) / Double(gaugeSamples), 3)) B/sample")
                row("all samples incl. series objects and labels (estimate)",
                    "\(format(Double(decimalStats.totalBytes) / Double(decimalStats.samples), 3)) B/sample")
            }
        }
        for (label, decimal, xor) in results {
            row("Vigil, \(label)", "\(format(decimal, 3)) B/sample",
                "Gorilla XOR \(format(xor, 3)) B/sample (\(format(xor / decimal))× more); raw 16 B")
        }
    }

    static func fill(_ stores: [MetricStore], jitter: Bool, only: String? = nil) {
        var stream = GPUStream(gpus: 8)
        var generator = Generator(state: 99)
        let base: Int64 = 1_800_000_000_000
        let refs = stores.map { store in
            stream.labels.map { $0.name == only || only == nil ? store.series($0) : nil }
        }
        for second in 0..<3600 {
            let t = base + Int64(second) * 1000 + (jitter ? Int64(generator.below(11) - 5) : 0)
            let values = stream.next()
            for (storeIndex, store) in stores.enumerated() {
                for (i, value) in values.enumerated() {
                    if let ref = refs[storeIndex][i] { store.append(ref, t, value) }
                }
            }
        }
    }

    /// 5-minute windows over 10,000 series × 300 samples, against the same arithmetic over plain arrays.
    static func windows() {
        let seriesCount = 10_000, samples = 300
        let store = MetricStore()
        var plain: [[Sample]] = []
        plain.reserveCapacity(seriesCount)
        var generator = Generator(state: 5)
        let base: Int64 = 1_800_000_000_000
        for id in 0..<seriesCount {
            let ref = store.series(Labels(name: "bench_counter_total", ["id": "\(id)"]))
            var value = Double(generator.below(1000))
            var series: [Sample] = []
            series.reserveCapacity(samples)
            for i in 0..<samples {
                value += Double(generator.below(100))
                let t = base + Int64(i) * 1000
                store.append(ref, t, value)
                series.append(Sample(t, value))
            }
            plain.append(series)
        }
        let end = base + Int64(samples - 1) * 1000
        let range: Int64 = 300_000
        let selector = SeriesSelector(name: "bench_counter_total")
        print("5-minute window over \(seriesCount) series × \(samples) samples (median of 5):")
        for (name, function) in [("avg_over_time", RangeFunction.avgOverTime), ("max_over_time", .maxOverTime), ("rate", .rate)] {
            var count = 0
            let storeTime = median(runs: 5) { count = store.evaluate(function, selector, range: range, at: end).count }
            precondition(count == seriesCount, "every series has a value")
            let oneCoreTime = median(runs: 5) { count = store.evaluate(function, selector, range: range, at: end, threads: 1).count }
            let plainTime = median(runs: 5) {
                var sum = 0.0
                for series in plain {
                    let window = series.filter { $0.timestamp > end - range && $0.timestamp <= end }
                    sum += function.evaluate(window, windowEnd: end, range: range) ?? 0
                }
                consume(sum)
            }
            row("\(name)(bench_counter_total[5m]), all cores", "\(format(storeTime * 1000)) ms",
                "one core \(format(oneCoreTime * 1000)) ms; baseline uncompressed arrays, one core \(format(plainTime * 1000)) ms (one core/baseline \(format(oneCoreTime / plainTime))×)")
        }
    }
}

/// Eight metrics per GPU shaped like NVML's answers: integers, percent as ratios, milliwatts as watts.
struct GPUStream {
    static let metricNames = ["gpu_temperature_celsius", "gpu_utilization_ratio", "gpu_memory_utilization_ratio",
                              "gpu_memory_used_bytes", "gpu_power_watts", "gpu_sm_clock_hertz", "gpu_fan_speed_ratio",
                              "gpu_energy_joules_total"]
    let labels: [Labels]
    private var generator = Generator(state: 2026)
    private var temperature: [Double], utilization: [Int], memoryUtilization: [Int], memory: [Double]
    private var powerMilliwatts: [Int], clock: [Double], fan: [Int], energyMillijoules: [Int]

    init(gpus: Int) {
        labels = (0..<gpus).flatMap { gpu in
            GPUStream.metricNames.map { Labels(name: $0, ["gpu": "\(gpu)", "uuid": "GPU-\(gpu)-0000", "model": "NVIDIA H100 80GB HBM3"]) }
        }
        temperature = Array(repeating: 45, count: gpus)
        utilization = Array(repeating: 60, count: gpus)
        memoryUtilization = Array(repeating: 30, count: gpus)
        memory = Array(repeating: 40 * 1_073_741_824, count: gpus)
        powerMilliwatts = Array(repeating: 350_000, count: gpus)
        clock = Array(repeating: 1_980_000_000, count: gpus)
        fan = Array(repeating: 40, count: gpus)
        energyMillijoules = Array(repeating: 1_000_000_000, count: gpus)
    }

    /// One second of samples, in the order of `labels`.
    mutating func next() -> [Double] {
        var out: [Double] = []
        for gpu in temperature.indices {
            if generator.chance(20) { temperature[gpu] = max(30, min(90, temperature[gpu] + Double(generator.below(3) - 1))) }
            utilization[gpu] = max(0, min(100, utilization[gpu] + generator.below(11) - 5))
            memoryUtilization[gpu] = max(0, min(100, memoryUtilization[gpu] + generator.below(7) - 3))
            if generator.chance(60) { memory[gpu] += Double(generator.below(513) - 256) * 1_048_576 }
            powerMilliwatts[gpu] = max(60_000, min(700_000, powerMilliwatts[gpu] + generator.below(16_001) - 8000))
            if generator.chance(120) { clock[gpu] = [1_980_000_000, 1_755_000_000, 1_410_000_000][generator.below(3)] }
            if generator.chance(300) { fan[gpu] = max(30, min(100, fan[gpu] + generator.below(11) - 5)) }
            energyMillijoules[gpu] += powerMilliwatts[gpu]
            out += [temperature[gpu], Double(utilization[gpu]) / 100, Double(memoryUtilization[gpu]) / 100, memory[gpu],
                    Double(powerMilliwatts[gpu]) / 1000, clock[gpu], Double(fan[gpu]) / 100, Double(energyMillijoules[gpu]) / 1000]
        }
        return out
    }
}
