import Foundation
import Synchronization
import VigilCore
import VigilPluginABI
#if canImport(Glibc)
import Glibc
#endif

/// `native`: a shared object with the C ABI of `plugins/include/vigil_plugin.h`, loaded once with
/// dlopen. A library built for another ABI version is refused with what to do about it; a plugin's
/// init or collect failure is reported with the plugin's own words.
public final class NativePlugin: Collector, @unchecked Sendable {
    public let name: String
    public let path: String
    public let limits: PluginLimits
    private let plugin: UnsafePointer<vigil_plugin>
    // The plugin's own state pointer; collect and shutdown run under this lock, never two at once.
    private let lock = NSLock()
    private let state: UnsafeMutableRawPointer?
    /// A file that exists exactly while the plugin's code runs (init, collect). A plugin that crashes runs in the
    /// daemon's process and takes it down; the file it leaves behind makes the next start skip that plugin
    /// instead of crash-looping. Nil: no marker (tests, `vigil plugins`).
    private let crashMarker: String?

    public init(name: String, path: String, config: String = "", limits: PluginLimits = PluginLimits(), crashMarker: String? = nil) throws {
        self.name = name
        self.path = path
        self.limits = limits
        self.crashMarker = crashMarker
        if let crashMarker, let left = try? String(contentsOfFile: crashMarker, encoding: .utf8) {
            throw PluginError(plugin: name, "it crashed the daemon during its last \(left.trimmingCharacters(in: .whitespacesAndNewlines)); "
                              + "it is skipped until it is fixed and \(crashMarker) is deleted")
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw PluginError(plugin: name, "cannot load \(path): \(dlerror().map { String(cString: $0) } ?? "unknown error")")
        }
        guard let symbol = dlsym(handle, "vigil_plugin_entry") else {
            throw PluginError(plugin: name, "\(path) does not export vigil_plugin_entry: it is not a Vigil plugin")
        }
        typealias Entry = @convention(c) () -> UnsafePointer<vigil_plugin>?
        guard let plugin = unsafeBitCast(symbol, to: Entry.self)() else {
            throw PluginError(plugin: name, "vigil_plugin_entry of \(path) returned NULL")
        }
        let version = plugin.pointee.abi_version
        guard version == VIGIL_PLUGIN_ABI_VERSION else {
            throw PluginError(plugin: name, "\(path) was built for plugin ABI \(version), and this Vigil speaks ABI \(VIGIL_PLUGIN_ABI_VERSION): "
                              + "rebuild it against this Vigil's plugins/include/vigil_plugin.h")
        }
        guard plugin.pointee.collect != nil else { throw PluginError(plugin: name, "\(path) has no collect function") }
        self.plugin = plugin
        var state: UnsafeMutableRawPointer?
        if let initialize = plugin.pointee.`init` {
            var error = [CChar](repeating: 0, count: 512)
            Self.mark(crashMarker, "init of \(path)")
            let result = initialize(config, &state, &error, error.count)
            Self.unmark(crashMarker)
            guard result == 0 else {
                throw PluginError(plugin: name, "init failed: \(Self.text(error))")
            }
        }
        self.state = state
    }

    static func mark(_ marker: String?, _ what: String) {
        guard let marker else { return }
        var fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 && errno == ENOENT {
            // The folder is made on first use, so commands that only read plugins never create it.
            try? FileManager.default.createDirectory(atPath: (marker as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        guard fd >= 0 else { return }
        let bytes = Array(what.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    static func unmark(_ marker: String?) {
        if let marker { unlink(marker) }
    }

    /// A message the plugin wrote into a buffer, up to its first NUL.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        lock.withLock { plugin.pointee.shutdown?(state) }
    }

    public func collect() throws -> SampleBatch {
        try lock.withLock {
            var context = NativeEmitContext(limit: limits.series)
            var error = [CChar](repeating: 0, count: 512)
            Self.mark(crashMarker, "collect of \(path)")
            let result = withUnsafeMutablePointer(to: &context) { pointer in
                plugin.pointee.collect!(state, NativeEmitContext.emit, pointer, &error, error.count)
            }
            Self.unmark(crashMarker)
            guard result == 0 else { throw PluginError(plugin: name, "collect failed: \(Self.text(error))") }
            if let refusal = context.firstRefusal {
                throw PluginError(plugin: name, "\(context.refused) sample(s) refused, the first: \(refusal)")
            }
            return context.batch
        }
    }
}

/// What `emit` writes into during one collect.
struct NativeEmitContext {
    var batch = SampleBatch()
    var admission: SeriesAdmission
    var refused = 0
    var firstRefusal: String?

    init(limit: Int) { admission = SeriesAdmission(limit: limit) }

    mutating func refuse(_ why: String) -> Int32 {
        refused += 1
        if firstRefusal == nil { firstRefusal = why }
        return -1
    }

    /// The C callback handed to the plugin: checks names, copies the strings, applies the series limit.
    static let emit: vigil_emit_fn = { context, name, labels, count, value, type, help in
        guard let context else { return -1 }
        let this = context.assumingMemoryBound(to: NativeEmitContext.self)
        guard let name else { return this.pointee.refuse("a sample without a name") }
        let metric = String(cString: name)
        guard MetricText.isMetricName(metric) else { return this.pointee.refuse("invalid metric name \"\(metric)\"") }
        var pairs: [String: String] = [:]
        for i in 0..<count {
            guard let label = labels?[i], let key = label.name, let text = label.value else {
                return this.pointee.refuse("\(metric): a label without a name or value")
            }
            let labelName = String(cString: key)
            guard MetricText.isLabelName(labelName) else { return this.pointee.refuse("\(metric): invalid label name \"\(labelName)\"") }
            pairs[labelName] = String(cString: text)
        }
        if let refusal = this.pointee.admission.admit(Labels(name: metric, pairs)) { return this.pointee.refuse(refusal) }
        let kind: MetricKind = type == VIGIL_METRIC_COUNTER ? .counter : type == VIGIL_METRIC_GAUGE ? .gauge : .untyped
        this.pointee.batch.add(metric, kind, help: help.map { String(cString: $0) } ?? "", labels: pairs, value)
        return 0
    }
}
