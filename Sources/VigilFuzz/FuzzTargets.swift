import Foundation
import VigilAllocator
import VigilCollectors
import VigilCore
import VigilStore

/// The parsers that read what comes from outside, as fuzz targets. Each takes arbitrary bytes and must neither
/// crash nor trap (a Swift trap is a crash to libFuzzer), nor break an invariant it checks itself.
///
/// Built two ways. `.ci/fuzz` builds with `-sanitize=fuzzer -DVIGIL_FUZZING`: `main` hands the process to
/// libFuzzer's driver, and `VIGIL_FUZZ_TARGET` names the target. Every other build has the `@main` below,
/// which replays files (a corpus) through a target, so the corpora stay regression tests without libFuzzer.
enum FuzzTargets {
    static let all: [String: @Sendable (Data) -> Void] = [
        "exposition": exposition,
        "line-protocol": lineProtocol,
        "selector": selector,
        "duration": duration,
        "manifest": manifest,
        "api": api,
    ]

    /// Prometheus text format, as textfile and exec plugins print it.
    static func exposition(_ data: Data) {
        var batch = SampleBatch()
        _ = try? MetricText.parse(String(decoding: data, as: UTF8.self), format: .prometheus, maxSeries: 10_000, into: &batch)
        precondition(batch.count <= 10_000, "the series cap held")
    }

    /// Influx line protocol, as Telegraf-style plugins print it.
    static func lineProtocol(_ data: Data) {
        var batch = SampleBatch()
        _ = try? MetricText.parse(String(decoding: data, as: UTF8.self), format: .influx, maxSeries: 10_000, into: &batch)
        precondition(batch.count <= 10_000, "the series cap held")
    }

    /// A series selector (every matcher, regexes included) from a request, then matched against the input itself.
    static func selector(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        guard let selector = try? SeriesSelector(parsing: text) else { return }
        _ = selector.matches(Labels(name: "up", ["job": text, "instance": String(text.reversed())]))
        _ = selector.description
    }

    /// Durations, sizes and Unix times as query parameters, bodies and configuration give them.
    static func duration(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        if let ms = DurationParser.milliseconds(text) {
            precondition((0...Bounds.maxDuration).contains(ms), "a parsed duration is within bounds")
            _ = DurationParser.format(milliseconds: ms)
        }
        if let bytes = ByteSizeParser.bytes(text) { precondition(bytes >= 0) }
        if let time = Bounds.unixSeconds(text) { precondition((0...Bounds.maxTimestamp).contains(time)) }
        _ = TaskPriority(parsing: text)
        _ = Dependency(parsing: text)
        _ = ListenAddress(parsing: text)
    }

    /// A plugin manifest (YAML), as anyone who may write to the plugins folder gives it.
    static func manifest(_ data: Data) {
        _ = try? PluginManifest.parse(String(decoding: data, as: UTF8.self), file: "plugin.yml", folder: "/nonexistent")
    }

    /// A submit's JSON body: decoded, then range-checked as the API does before anything is queued.
    static func api(_ data: Data) {
        guard let spec = try? JSONDecoder().decode(TaskSpec.self, from: data) else { return }
        if spec.rangeProblem == nil {
            precondition((0...TaskSpec.maxGPUs).contains(spec.gpus))
            precondition(spec.timeLimit.map { (1...Bounds.maxDuration).contains($0) } ?? true)
            _ = spec.predictionKey
        }
    }
}

#if VIGIL_FUZZING
/// libFuzzer's driver, which `main` hands the process to (SwiftPM names an executable's entry point itself, so
/// libFuzzer's own `main` cannot be used).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@main
struct FuzzDriver {
    static func main() {
        let name = ProcessInfo.processInfo.environment["VIGIL_FUZZ_TARGET"] ?? ""
        guard FuzzTargets.all[name] != nil else {
            print("set VIGIL_FUZZ_TARGET to one of \(FuzzTargets.all.keys.sorted().joined(separator: ", "))")
            exit(2)
        }
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
            let target = FuzzTargets.all[ProcessInfo.processInfo.environment["VIGIL_FUZZ_TARGET"] ?? ""]!
            target(bytes.map { Data(bytes: $0, count: count) } ?? Data())
            return 0
        })
    }
}
#else
@main
struct FuzzReplay {
    /// `vigil-fuzz TARGET FILE|FOLDER…`: every file through the target; prints how many.
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTargets.all[name] else {
            print("usage: vigil-fuzz TARGET FILE|FOLDER… (targets: \(FuzzTargets.all.keys.sorted().joined(separator: ", ")))")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
            let files = isFolder.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { (path as NSString).appendingPathComponent($0) }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target(data)
                count += 1
            }
        }
        print("\(name): \(count) inputs replayed")
    }
}
#endif
