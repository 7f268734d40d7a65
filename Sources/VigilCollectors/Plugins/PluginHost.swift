import CVigilSystem
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import VigilCore
import VigilLua
import Yams

/// One plugin's manifest: `plugin.yml` in a folder of its own below the plugins folder. Paths in it
/// are relative to that folder.
///
/// ```yaml
/// name: gpu-fans            # default: the folder's name
/// kind: exec                # exec | execd | textfile | lua | native
/// interval: 10s             # default: collectors.interval
/// timeout: 5s               # default: collectors.timeout; the run's process group is killed after it
/// command: [./fans.sh, --all]
/// format: auto              # prometheus | influx | auto (exec, execd)
/// path: textfiles           # textfile: the folder of *.prom files (default: the plugin's folder);
///                           # native: the shared object (a bare name: this folder, then beside vigil)
///                           # lua: the script
/// allow: [/proc, /sys]      # lua: the folders vigil.read_file and vigil.glob may read (default /proc, /sys)
/// config: text              # native: handed to the plugin's init
/// limits: { output: 4MiB, series: 10000 }
/// enabled: true
/// ```
public struct PluginManifest: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case exec, execd, textfile, lua, native
    }

    public var name: String
    public var kind: Kind
    /// The plugin's folder.
    public var folder: String
    public var intervalMilliseconds: Int64?
    public var timeoutMilliseconds: Int64?
    public var command: [String] = []
    public var path: String?
    /// Handed to a native plugin's init.
    public var config = ""
    /// Folders a Lua plugin may read.
    public var allow = ["/proc", "/sys"]
    /// nil: detected from the output.
    public var format: MetricTextFormat?
    public var limits = PluginLimits()
    public var enabled = true

    /// Parses a manifest; errors name the file, line and key.
    public static func parse(_ text: String, file: String, folder: String) throws -> PluginManifest {
        let reader = YAMLReader(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw VigilError(.invalidConfiguration, "not valid YAML: \(error)", location: file)
        }
        guard let root else { throw VigilError(.invalidConfiguration, "empty manifest: it needs at least a kind", location: file) }
        var name = (folder as NSString).lastPathComponent
        var kind: Kind?
        var manifest = PluginManifest(name: name, kind: .exec, folder: folder)
        try reader.mapping(root, path: "") { key, value, path in
            switch key {
            case "name":
                name = try reader.string(value, path)
                guard MetricText.isLabelName(name.replacingOccurrences(of: "-", with: "_")) else {
                    throw reader.error(value, "name must be letters, digits, '_' and '-', got \"\(name)\"")
                }
            case "kind":
                let text = try reader.string(value, path)
                guard let known = Kind(rawValue: text) else {
                    throw reader.error(value, "unknown kind '\(text)' (known: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                kind = known
            case "interval": manifest.intervalMilliseconds = try reader.positiveDuration(value, path)
            case "timeout": manifest.timeoutMilliseconds = try reader.positiveDuration(value, path)
            case "command": manifest.command = try reader.strings(value, path)
            case "path": manifest.path = try reader.string(value, path)
            case "config": manifest.config = try reader.string(value, path)
            case "allow": manifest.allow = try reader.strings(value, path)
            case "format":
                let text = try reader.string(value, path)
                if text == "auto" {
                    manifest.format = nil
                } else if let format = MetricTextFormat(rawValue: text) {
                    manifest.format = format
                } else {
                    throw reader.error(value, "format must be prometheus, influx or auto, got \"\(text)\"")
                }
            case "limits":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "output": manifest.limits.outputBytes = try reader.bytes(value, path)
                    case "series": manifest.limits.series = try reader.integer(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "enabled": manifest.enabled = try reader.bool(value, path)
            default: throw reader.unknown(key, value, path)
            }
        }
        guard let kind else { throw reader.error(root, "the manifest needs a kind (\(Kind.allCases.map(\.rawValue).joined(separator: ", ")))") }
        manifest.name = name
        manifest.kind = kind
        if (kind == .exec || kind == .execd) && manifest.command.isEmpty {
            throw reader.error(root, "an \(kind.rawValue) plugin needs a command")
        }
        if kind == .native && manifest.path == nil { throw reader.error(root, "a native plugin needs a path to its shared object") }
        if kind == .lua && manifest.path == nil { throw reader.error(root, "a lua plugin needs a path to its script") }
        return manifest
    }

    /// `path` made absolute against the plugin's folder.
    func resolve(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : (folder as NSString).appendingPathComponent(path)
        return (absolute as NSString).standardizingPath
    }

    /// The command to run: a program named with a slash is relative to the plugin's folder; a bare
    /// name is looked up on PATH.
    var argv: [String] {
        guard let program = command.first, program.contains("/") else { return command }
        return [resolve(program)] + command.dropFirst()
    }

    /// A native plugin's shared object: a path with a slash is relative to the plugin's folder; a bare
    /// file name is looked for there, then beside the running executable (where `swift build` puts the
    /// package's own plugins).
    func library(_ path: String) -> String {
        if path.contains("/") { return resolve(path) }
        let here = resolve(path)
        if FileManager.default.fileExists(atPath: here) { return here }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return executable.appendingPathComponent(path).path
    }

    /// The collector this manifest describes, with its schedule. A native plugin is loaded and
    /// initialised here, so its refusal (wrong ABI, failed init) is the manifest's error.
    func collector(defaults: CollectorsConfiguration, luaLimits: LuaLimits, logger: Logger,
                   crashMarkers: String? = nil) throws -> ScheduledCollector {
        var interval = intervalMilliseconds ?? defaults.defaultIntervalMilliseconds
        let timeout = timeoutMilliseconds ?? min(defaults.defaultTimeoutMilliseconds, interval)
        let collector: any Collector
        switch kind {
        case .exec:
            collector = ExecPlugin(name: name, command: argv, directory: folder, format: format, timeout: timeout, limits: limits)
        case .execd:
            collector = ExecdPlugin(name: name, command: argv, directory: folder, format: format, timeout: timeout, limits: limits,
                                    logger: logger)
        case .textfile:
            collector = TextfilePlugin(name: name, directory: resolve(path ?? "."), limits: limits, logger: logger)
        case .native:
            collector = try NativePlugin(name: name, path: library(path ?? ""), config: config, limits: limits,
                                         crashMarker: crashMarkers.map { ($0 as NSString).appendingPathComponent("\(name).running") })
        case .lua:
            let plugin = try LuaCollectorPlugin(name: name, script: resolve(path ?? ""), allowed: allow, luaLimits: luaLimits,
                                                limits: limits, logger: logger)
            // The script's `every` serves when the manifest names no interval.
            if intervalMilliseconds == nil, let every = plugin.every { interval = every }
            collector = plugin
        }
        // The plugin kills its own run at `timeout`; the scheduler waits a little longer, so the
        // plugin's own report of what happened is the one that is logged.
        return ScheduledCollector(collector, interval: interval, timeout: timeout + 1000)
    }
}

/// Finds plugins in the plugins folder and keeps the collector registry in step with it: a plugin
/// added, changed or removed takes effect at the next scan (every second while the daemon runs), with
/// no restart. A manifest that does not load is reported with its file and line; the last good version
/// of that plugin keeps running.
public final class PluginHost: Service, Sendable {
    public let directory: String
    private let registry: CollectorRegistry
    private let defaults: CollectorsConfiguration
    private let luaLimits: LuaLimits
    private let logger: Logger
    private let reserved: Set<String>
    private let scanInterval: Int64
    /// The folder of native plugins' crash markers (DATA_DIR/native-plugins), nil for none.
    private let crashMarkers: String?
    private let state = Mutex<[String: Loaded]>([:])

    /// What a scan found for one manifest.
    public struct Status: Sendable, Equatable {
        public var manifest: String
        public var name: String?
        public var kind: String?
        /// Why the manifest as it is now did not load, nil when it did.
        public var error: String?
        /// Whether a version of it runs (the last good one, when the current one has an error).
        public var running: Bool
    }

    private struct Loaded {
        /// The manifest's text and the state of the files beside it, as last loaded.
        var fingerprint: String
        var name: String?
        var kind: String?
        var error: String?
        /// The name this manifest's collector runs under in the registry (the last good version).
        var running: String?
    }

    public init(directory: String, registry: CollectorRegistry, defaults: CollectorsConfiguration, luaLimits: LuaLimits = .default,
                reserved: Set<String> = Set(BuiltinCollectors.names), scanInterval: Int64 = 1000, logger: Logger,
                crashMarkers: String? = nil) {
        self.crashMarkers = crashMarkers
        // Absolute, since plugins run in their own folders and name their programs relative to them.
        self.directory = directory.hasPrefix("/") ? directory
            : ((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(directory) as NSString).standardizingPath
        self.registry = registry
        self.defaults = defaults
        self.luaLimits = luaLimits
        self.logger = logger
        self.reserved = reserved
        self.scanInterval = scanInterval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.scan()
                do {
                    try await Task.sleep(for: .milliseconds(self.scanInterval))
                } catch {
                    return
                }
            }
        }
    }

    /// The manifest with the size and modification time of every file beside it: an edited Lua script
    /// loads the plugin again, as an edited manifest does. (A native library rebuilt under the same path
    /// is not new code to dlopen, which hands back the copy already loaded; give it a new file name.)
    /// Folders below (a textfile plugin's files) do not count.
    static func fingerprint(_ text: String, folder: String) -> String {
        var parts = [text]
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted() {
            var info = stat()
            guard stat((folder as NSString).appendingPathComponent(name), &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            parts.append("\(name) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)")
        }
        return parts.joined(separator: "\n")
    }

    /// Reads every manifest and brings the registry in line. Returns what it found, by manifest path.
    @discardableResult
    public func scan() -> [Status] {
        // What cannot be read is unknown, never gone: out of descriptors, every manifest would look removed and
        // every plugin would stop. Such a scan changes nothing it could not see.
        let folders: [String]
        do { folders = try FileManager.default.contentsOfDirectory(atPath: directory).sorted() } catch {
            if FileManager.default.fileExists(atPath: directory) || errno != ENOENT {
                logger.error("the plugins folder cannot be read; every plugin keeps running as it is",
                             metadata: ["plugin.folder": "\(directory)", "plugin.error": "\(String(cString: strerror(errno)))"])
                return status()
            }
            folders = []
        }
        var found: [String: String] = [:]
        var fingerprints: [String: String] = [:]
        var unreadable: Set<String> = []
        for folder in folders where !folder.hasPrefix(".") {
            let folderPath = (directory as NSString).appendingPathComponent(folder)
            let path = (folderPath as NSString).appendingPathComponent("plugin.yml")
            switch BoundedFile.read(path, limit: 1 << 20) {
            case .success(let bytes):
                let text = String(decoding: bytes, as: UTF8.self)
                found[path] = text
                fingerprints[path] = Self.fingerprint(text, folder: folderPath)
            case .failure(.cannotOpen(errno: ENOENT)), .failure(.cannotOpen(errno: ENOTDIR)):
                continue
            case .failure(let refusal):
                logger.error("a plugin manifest cannot be read; that plugin keeps running as it is",
                             metadata: ["plugin.manifest": "\(path)", "plugin.error": "\(refusal)"])
                unreadable.insert(path)
            }
        }
        return state.withLock { loaded in
            // Removed manifests: their plugins stop, their series go stale.
            for (path, previous) in loaded where found[path] == nil && !unreadable.contains(path) {
                if let running = previous.running, registry.remove(named: running) {
                    logger.info("plugin removed", metadata: ["plugin": "\(running)", "plugin.manifest": "\(path)"])
                }
                loaded[path] = nil
            }
            var taken = Set(loaded.values.compactMap(\.running))
            for (path, text) in found.sorted(by: { $0.key < $1.key }) {
                let previous = loaded[path]
                let fingerprint = fingerprints[path] ?? text
                if previous?.fingerprint == fingerprint { continue }
                if let running = previous?.running { taken.remove(running) }
                let folder = (path as NSString).deletingLastPathComponent
                do {
                    let manifest = try PluginManifest.parse(text, file: path, folder: folder)
                    guard !reserved.contains(manifest.name) else {
                        throw VigilError(.invalidConfiguration, "the name '\(manifest.name)' belongs to a built-in collector", location: path)
                    }
                    guard !taken.contains(manifest.name) else {
                        throw VigilError(.invalidConfiguration, "another plugin is already named '\(manifest.name)'", location: path)
                    }
                    if let running = previous?.running, running != manifest.name || !manifest.enabled { registry.remove(named: running) }
                    var running: String?
                    if manifest.enabled {
                        registry.add(try manifest.collector(defaults: defaults, luaLimits: luaLimits, logger: logger, crashMarkers: crashMarkers))
                        running = manifest.name
                        taken.insert(manifest.name)
                    }
                    logger.info(previous == nil ? "plugin added" : "plugin changed", metadata: [
                        "plugin": "\(manifest.name)", "plugin.kind": "\(manifest.kind.rawValue)", "plugin.enabled": "\(manifest.enabled)",
                    ])
                    loaded[path] = Loaded(fingerprint: fingerprint, name: manifest.name, kind: manifest.kind.rawValue, running: running)
                } catch {
                    logger.error("plugin manifest not loaded; the last good version (if any) keeps running", metadata: [
                        "plugin.manifest": "\(path)", "plugin.error": "\(error)",
                    ])
                    if let running = previous?.running { taken.insert(running) }
                    loaded[path] = Loaded(fingerprint: fingerprint, name: previous?.name, kind: previous?.kind, error: "\(error)",
                                          running: previous?.running)
                }
            }
            return Self.statuses(loaded)
        }
    }

    /// What is loaded now, without scanning.
    func status() -> [Status] {
        state.withLock { Self.statuses($0) }
    }

    private static func statuses(_ loaded: [String: Loaded]) -> [Status] {
        loaded.sorted(by: { $0.key < $1.key }).map { path, entry in
            Status(manifest: path, name: entry.name, kind: entry.kind, error: entry.error, running: entry.running != nil)
        }
    }
}
