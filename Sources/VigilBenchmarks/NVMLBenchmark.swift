import Foundation
import Logging
import VigilCollectors

/// The `nvml` collector's cost per round for the fake library's 8 GPUs (8 GPUs, 3 MIG devices,
/// 2 processes), against the procfs collector measured in the same run.
enum NVMLBenchmark {
    static func run(rounds: Int = 500) {
        let binaryDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let library = binaryDirectory.appendingPathComponent("libVigilFakeNVML.so").path
        let scenario = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("VigilFakeNVML/eight-gpus.json").path
        guard FileManager.default.fileExists(atPath: library) else {
            print("nvml: \(library) is missing; build it first: swift build -c release --product VigilFakeNVML")
            return
        }
        setenv("VIGIL_FAKE_NVML_CONFIG", scenario, 1)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let collector: NVMLCollector
        do {
            collector = try NVMLCollector(options: NVMLOptions(library: library, events: false), logger: logger)
        } catch {
            print("nvml: \(error)")
            return
        }
        let procfs = ProcfsCollector()
        for _ in 0..<20 {
            consume(try? collector.collect())
            consume(try? procfs.collect())
        }
        func times(_ body: () -> Void) -> [Double] { (0..<rounds).map { _ in measure(body) }.sorted() }
        let whole = times { consume(try? collector.collect()) }
        let read = times { consume(collector.snapshot()) }
        let snapshot = collector.snapshot()
        let export = times { consume(NVMLExport.batch(snapshot)) }
        let baseline = times { consume(try? procfs.collect()) }
        let series = (try? collector.collect().count) ?? 0
        func median(_ values: [Double]) -> Double { values[values.count / 2] }
        func p99(_ values: [Double]) -> Double { values[min(values.count - 1, values.count * 99 / 100)] }

        print("nvml collector, fake library, \(snapshot.gpus.count) GPUs, \(series) series per round (\(rounds) rounds)")
        row("collect(): median / p99 per round", "\(format(median(whole) * 1e3, 3)) ms / \(format(p99(whole) * 1e3, 3)) ms")
        row("  reading NVML and /proc (snapshot)", "\(format(median(read) * 1e3, 3)) ms")
        row("  turning the reading into series (export)", "\(format(median(export) * 1e3, 3)) ms")
        row("share of one core at a 1 s interval", "\(format(median(whole) * 100, 3)) %")
        row("procfs collector, same run (baseline)", "\(format(median(baseline) * 1e3, 3)) ms",
            "nvml/procfs = \(format(median(whole) / median(baseline)))×")
    }
}
