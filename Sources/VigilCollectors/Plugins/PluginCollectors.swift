import CVigilSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import VigilCore

/// What a plugin may produce in one run.
public struct PluginLimits: Sendable, Equatable {
    /// Bytes of output (stdout, or a textfile) per run. Default 4 MiB.
    public var outputBytes: Int = 4 << 20
    /// Series per run. Default 10,000.
    public var series: Int = 10_000

    public init(outputBytes: Int = 4 << 20, series: Int = 10_000) {
        self.outputBytes = outputBytes
        self.series = series
    }
}

/// A plugin's failure, naming the plugin.
public struct PluginError: Error, Sendable, CustomStringConvertible {
    public let plugin: String
    public let message: String

    public init(plugin: String, _ message: String) {
        self.plugin = plugin
        self.message = message
    }

    public var description: String { "plugin \(plugin): \(message)" }

    /// A command plugin's output (exec, execd) as samples; a bad line is the plugin's error.
    static func parse(_ output: [UInt8], format: MetricTextFormat?, limits: PluginLimits, plugin: String) throws -> SampleBatch {
        var batch = SampleBatch()
        do {
            try MetricText.parse(String(decoding: output, as: UTF8.self), format: format, maxSeries: limits.series, into: &batch)
        } catch let error as MetricTextError {
            throw PluginError(plugin: plugin, "output \(error)")
        }
        return batch
    }
}

/// `exec`: a command run every interval in a process group of its own; its stdout is Prometheus text
/// or Influx line protocol. A run that overruns its timeout or prints past the output limit has its
/// whole process group killed; a bad line fails the run with its line number; nothing of a failed run
/// is stored.
public struct ExecPlugin: Collector {
    public let name: String
    public let command: [String]
    public let directory: String
    public let format: MetricTextFormat?
    public let timeout: Int64
    public let limits: PluginLimits

    public init(name: String, command: [String], directory: String, format: MetricTextFormat? = nil,
                timeout: Int64 = 5000, limits: PluginLimits = PluginLimits()) {
        self.name = name
        self.command = command
        self.directory = directory
        self.format = format
        self.timeout = timeout
        self.limits = limits
    }

    public func collect() throws -> SampleBatch {
        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(command, directory: directory, timeout: timeout, outputLimit: limits.outputBytes)
        } catch {
            throw PluginError(plugin: name, "\(error)")
        }
        if let failure = outcome.failure(timeout: timeout, limit: limits.outputBytes) { throw PluginError(plugin: name, failure) }
        return try PluginError.parse(outcome.stdout, format: format, limits: limits, plugin: name)
    }
}

/// `textfile`: every `*.prom` file in a folder, node_exporter's convention (writers write a temporary
/// file and rename it into place). A file that does not parse is skipped, reported once per change with
/// its line number, and counted in `node_textfile_scrape_error`; the other files are kept.
public final class TextfilePlugin: Collector, Sendable {
    public let name: String
    public let directory: String
    public let limits: PluginLimits
    private let logger: Logger
    private let reported = Mutex<[String: String]>([:])

    public init(name: String, directory: String, limits: PluginLimits = PluginLimits(), logger: Logger) {
        self.name = name
        self.directory = directory
        self.limits = limits
        self.logger = logger
    }

    public func collect() throws -> SampleBatch {
        var batch = SampleBatch()
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".prom") }.sorted()
        } catch {
            throw PluginError(plugin: name, "cannot read the folder \(directory): \(error.localizedDescription)")
        }
        var problems: [String: String] = [:]
        var series = 0
        // A symbolic link may point at another *.prom of this folder, never elsewhere (/etc/shadow, /dev/zero).
        let root = BoundedFile.canonical(directory).map { [$0] } ?? [directory]
        for file in files {
            let path = (directory as NSString).appendingPathComponent(file)
            var info = stat()
            guard stat(path, &info) == 0 else { continue }   // renamed away meanwhile
            let text: String
            switch BoundedFile.read(path, limit: limits.outputBytes, within: root) {
            case .success(let bytes): text = String(decoding: bytes, as: UTF8.self)
            case .failure(let refusal):
                problems[path] = refusal.description
                continue
            }
            var parsed = SampleBatch()
            do {
                try MetricText.parse(text, format: .prometheus, maxSeries: limits.series - series, into: &parsed)
            } catch let error as MetricTextError {
                // The line number only: the message may quote the file, which need not be the writer's to show.
                problems[path] = "not in the Prometheus text format at line \(error.line) (promtool check metrics shows why)"
                continue
            } catch {
                problems[path] = "cannot be parsed"
                continue
            }
            series += parsed.count
            batch.append(contentsOf: parsed)
            batch.gauge("node_textfile_mtime_seconds", "Unixtime mtime of textfiles successfully read.", ["file": path],
                        Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
        }
        batch.gauge("node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise", [:], problems.isEmpty ? 0 : 1)
        let fresh = reported.withLock { reported -> [String: String] in
            let fresh = problems.filter { reported[$0.key] != $0.value }
            reported = problems
            return fresh
        }
        for (path, problem) in fresh.sorted(by: { $0.key < $1.key }) {
            logger.warning("textfile skipped", metadata: ["plugin": "\(name)", "textfile.path": "\(path)", "textfile.error": "\(problem)"])
        }
        return batch
    }
}
