import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import VigilCollectors
import VigilCore

/// A private copy of the fake NVML library with its scenario beside it (fake-nvml.json), so every
/// test loads its own instance through the real dlopen path and may rewrite its scenario while running.
public final class FakeNVML {
    public let directory: URL
    /// The copy of the library, named as the real one (`libnvidia-ml.so.1`).
    public let library: String

    /// The fake library the package built, next to the test bundle.
    public static func built() throws -> URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDirectory, bundleDirectory.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("libVigilFakeNVML.so")
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: bundleDirectory.appendingPathComponent("libVigilFakeNVML.so").path])
    }

    public init(_ scenario: [String: Any]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-fake-nvml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        library = directory.appendingPathComponent("libnvidia-ml.so.1").path
        try FileManager.default.copyItem(atPath: try Self.built().path, toPath: library)
        try write(scenario)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Replaces the scenario the way a writer should: a new file renamed over the old one.
    public func write(_ scenario: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: scenario, options: [.sortedKeys])
        let temporary = directory.appendingPathComponent("fake-nvml.json.new")
        try data.write(to: temporary)
        _ = rename(temporary.path, directory.appendingPathComponent("fake-nvml.json").path)
    }

    /// How many times the library's `function` was called (a function only the fake exports).
    public func calls(_ function: String) -> Int {
        guard let handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD), let symbol = dlsym(handle, "vigil_fake_nvml_calls") else { return -1 }
        typealias Calls = @convention(c) (UnsafePointer<CChar>?) -> UInt
        return Int(unsafeBitCast(symbol, to: Calls.self)(function))
    }

    public func collector(clock: any WallClock = ManualWallClock(), events: Bool = false) throws -> NVMLCollector {
        var logger = Logger(label: "test.nvml")
        logger.logLevel = .critical
        return try NVMLCollector(options: NVMLOptions(library: library, events: events), clock: clock, logger: logger)
    }
}

