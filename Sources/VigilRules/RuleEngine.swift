import Foundation
import Logging
import VigilCore
import VigilLua
import VigilState
import VigilStore

public struct RuleEngineOptions: Sendable {
    /// The folder whose `*.lua` files are rule files (`require` also resolves below it).
    public var rulesDirectory: String
    /// Interval of a rule that names none and whose group names none. Default 15 s.
    public var defaultInterval: Int64 = 15_000
    public var limits: LuaLimits = .default
    /// How long a resolved instance is kept (and re-sent) before it is forgotten. Default 15 m.
    public var resolvedRetention: Int64 = 15 * 60_000
    /// Consecutive failed evaluations after which a rule is quarantined. Default 5.
    public var quarantineAfter = 5
    /// First wait before a quarantined rule is tried again; doubles on each failed retry up to the maximum.
    public var quarantineBackoff: Int64 = 30_000
    public var quarantineBackoffMax: Int64 = 3_600_000
    /// Base of `generatorURL` in notifications.
    public var externalURL = "http://127.0.0.1:9477"
    /// Evaluate every rule at this interval instead of its own (`vigil rules test` does, as promtool does).
    public var intervalOverride: Int64?
    /// Write `vigil_rule_*`, `ALERTS` and `ALERTS_FOR_STATE` into the store.
    public var exportMetrics = true
    /// Load exactly these files instead of the folder's `*.lua` (`vigil rules test`'s `rule_files`).
    public var files: [String]?
    /// After a restart the store is empty: an alert restored from the database is not resolved for lack
    /// of data during this long after the first evaluation (Prometheus' for-grace-period plays this part).
    /// Default 2 m; once its series is seen again it follows its rule as usual.
    public var restoreGrace: Int64 = 120_000
    /// PromQL servers `vigil.prometheus.query` may ask, by name.
    public var querySources: [String: QuerySourceConfiguration] = [:]
    /// Alert instances one rule may have at once: an evaluation whose query returns more fails (its rule's health
    /// says why) and keeps the instances it had. Default 1,000.
    public var maxInstances = 1000
    /// Bytes of one label value of an alert, and of one rendered annotation (longer annotations are cut, with "…").
    public var maxLabelBytes = 4096
    public var maxAnnotationBytes = 16 << 10

    public init(rulesDirectory: String) {
        self.rulesDirectory = rulesDirectory
    }
}

public enum RuleHealth: String, Sendable, Codable, CaseIterable {
    case unknown, ok, error, quarantined
}

/// What `vigil rules` and the API show about one rule.
public struct RuleStatus: Sendable, Codable, Equatable {
    /// "alert" or "recommend".
    public var kind = "alert"
    public var name: String
    public var file: String
    public var group: String
    public var intervalSeconds: Double
    public var health: RuleHealth
    public var lastError: String?
    public var lastEvaluation: Timestamp?
    public var evaluationSeconds: Double
    public var instructions: Int
    public var memoryBytes: Int
    public var evaluations: Int
    public var failures: Int
    public var consecutiveFailures: Int
    public var quarantinedUntil: Timestamp?
    public var firing: Int
    public var pending: Int
}

/// A rule file's load result.
public struct RuleFileStatus: Sendable, Codable, Equatable {
    public var path: String
    /// True when a version of the file is running (the newest, unless `error` says why not).
    public var loaded: Bool
    /// Why the version on disk did not load (the last good one keeps running).
    public var error: String?
    /// Alerts, recommendations and indicators it declares.
    public var rules: [String]
    public var memoryBytes: Int
}

/// The rule engine: loads rule files, evaluates rules on their intervals, moves alert instances through
/// their states, keeps rule health, persists state and hands alerts to the notifiers.
///
/// Not thread-safe: one owner calls it (the rule service's serial queue, or a test).
public final class RuleEngine {
    public let store: MetricStore
    public let options: RuleEngineOptions
    let logger: Logger
    let database: StateDatabase?
    /// Receives, after each evaluation of a rule, the alerts receivers should know about: firing ones
    /// (not held by flapping) and recently resolved ones.
    public var onAlerts: ((String, [Alert]) -> Void)?

    private var files: [String: RuleFile] = [:]
    private var failedFiles: [String: (content: Data, error: String)] = [:]
    /// Each file's stat when last read: an unchanged file is not read again.
    private var stamps: [String: FileStamp] = [:]
    /// Files whose state a memory error left too full to trust: loaded afresh after this tick.
    var exhausted: Set<String> = []
    private var runtimes: [String: RuleRuntime] = [:]
    private var order: [String] = []
    private var restored: [String: [AlertStateRecord]] = [:]
    private let builtin: RuleRuntime
    private let writer = DispatchQueue(label: "vigil.alert-state-writer")
    private var exportedAlertSeries: Set<Labels> = []
    private var firstTick: Timestamp?
    public static let ruleFailingAlert = "VigilRuleFailing"
    /// The allocator's history, GPUs, prices and benchmarks for `vigil.history`.
    let history: (any HistorySource)?
    let promql: PromQLSources
    var recommenders: [String: RecommendRuntime] = [:]
    var recommenderOrder: [String] = []
    /// Active recommendations read from the database, until their rule loads again.
    var restoredRecommendations: [String: [Recommendation]] = [:]
    var indicatorDefinitions: [String: (definition: IndicatorDefinition, file: RuleFile)] = [:]
    public init(store: MetricStore, options: RuleEngineOptions, database: StateDatabase? = nil,
                history: (any HistorySource)? = nil, logger: Logger) {
        self.store = store
        self.options = options
        self.database = database
        self.history = history
        promql = PromQLSources(options.querySources)
        self.logger = logger
        builtin = RuleRuntime(definition: AlertRuleDefinition(builtin: Self.ruleFailingAlert,
            summary: "rule {{rule}} is quarantined after {{value}} failed evaluations",
            description: "{{rule}} in {{file}} keeps failing; it is retried with backoff. Fix the script: `vigil rules` shows its last error."),
            file: nil)
        if let database {
            do {
                for record in try database.alertStates() { restored[record.rule, default: []].append(record) }
            } catch {
                logger.error("cannot read saved alert states; alerts start fresh", metadata: ["error": "\(error)"])
            }
        }
        restore(builtin)
        restoreRecommendations()
        describeMetrics()
    }

    // MARK: Loading

    /// The outcome of a reload, per file that changed.
    public struct ReloadReport: Sendable {
        public var loaded: [String] = []
        public var failed: [(path: String, error: String)] = []
        public var removed: [String] = []
    }

    /// Loads files that are new or changed and drops removed ones. A file that fails to load leaves its
    /// last good version running; rules that stay keep their alert instances and timers.
    /// `force` reads every file even when its stat is unchanged (SIGHUP).
    @discardableResult
    public func reload(at now: Timestamp, force: Bool = false) -> ReloadReport {
        var report = ReloadReport()
        let paths: [String]
        do { paths = try options.files ?? Self.ruleFiles(in: options.rulesDirectory) } catch {
            logger.error("the rules folder cannot be read; every rule keeps running as it is", metadata: ["error": "\(error)"])
            return report
        }
        for path in paths {
            let stamp = FileStamp(path)
            if !force, let stamp, stamps[path] == stamp, files[path] != nil || failedFiles[path] != nil { continue }
            stamps[path] = stamp
            guard let content = FileManager.default.contents(atPath: path) else { continue }
            if files[path]?.content == content { failedFiles[path] = nil; continue }
            if failedFiles[path]?.content == content { continue }
            switch load(path: path, content: content) {
            case .success(let file):
                failedFiles[path] = nil
                install(file, at: now)
                report.loaded.append(path)
                logger.info("rule file loaded", metadata: ["file": "\(path)", "rules": "\(file.rules.map { $0.name }.joined(separator: ","))"])
            case .failure(let failure):
                let error = failure.description
                failedFiles[path] = (content, error)
                report.failed.append((path, error))
                logger.error(files[path] == nil ? "rule file failed to load" : "rule file failed to load; the last good version keeps running",
                             metadata: ["file": "\(path)", "error": "\(error)"])
            }
        }
        for path in files.keys where !paths.contains(path) {
            uninstall(path, keeping: [], at: now)
            uninstallRecommendations(path, keeping: [], at: now)
            files[path] = nil
            report.removed.append(path)
            logger.info("rule file removed", metadata: ["file": "\(path)"])
        }
        for path in failedFiles.keys where !paths.contains(path) { failedFiles[path] = nil }
        for path in stamps.keys where !paths.contains(path) { stamps[path] = nil }
        return report
    }

    /// Loads again, from the same text, the files whose state ran out of memory.
    private func renewExhausted(at now: Timestamp) {
        for path in exhausted {
            guard let old = files[path] else { continue }
            switch load(path: path, content: old.content) {
            case .success(let file):
                install(file, at: now, renewing: true)
                logger.warning("rule file reloaded after a memory error left its state full",
                               metadata: ["file": "\(path)", "memory": "\(old.state.memoryUsed)"])
            case .failure(let error):
                logger.error("rule file could not be reloaded after a memory error", metadata: ["file": "\(path)", "error": "\(error)"])
            }
        }
        exhausted.removeAll()
    }

    /// Loads `path` into a scratch state and checks its declarations, without installing it.
    public static func check(path: String, store: MetricStore = MetricStore(), rulesDirectory: String? = nil,
                             limits: LuaLimits = .default, logger: Logger) -> Result<RuleFileSummary, RuleLoadError> {
        guard let content = FileManager.default.contents(atPath: path) else {
            return .failure(RuleLoadError(description: "\(path): cannot read the file"))
        }
        do {
            let file = try RuleFile(path: path, content: content, store: store, limits: limits,
                                    rulesDirectory: rulesDirectory ?? (path as NSString).deletingLastPathComponent,
                                    defaultInterval: 15_000, logger: logger)
            return .success(RuleFileSummary(alerts: file.rules.map(\.name), recommendations: file.recommendations.map(\.name),
                                            indicators: file.indicators.map(\.name)))
        } catch let error as LuaError {
            return .failure(RuleLoadError(description: error.fullDescription))
        } catch {
            return .failure(RuleLoadError(description: "\(path): \(error)"))
        }
    }

    private func load(path: String, content: Data) -> Result<RuleFile, RuleLoadError> {
        let file: RuleFile
        do {
            file = try RuleFile(path: path, content: content, store: store, limits: options.limits,
                                rulesDirectory: options.rulesDirectory, defaultInterval: options.defaultInterval,
                                history: history, promql: promql, logger: logger)
        } catch let error as LuaError {
            return .failure(RuleLoadError(description: error.fullDescription))
        } catch {
            return .failure(RuleLoadError(description: "\(path): \(error)"))
        }
        if file.declaredNames.isEmpty {
            return .failure(RuleLoadError(description: "\(path): declares nothing (vigil.alert, vigil.recommend or vigil.indicator \"Name\" { … })"))
        }
        for definition in file.recommendations {
            if let other = recommenders[definition.name], other.file.path != path {
                return .failure(RuleLoadError(description: "\(path): vigil.recommend \"\(definition.name)\" is already declared in \(other.file.path)"))
            }
        }
        for definition in file.indicators {
            if let other = indicatorDefinitions[definition.name], other.file.path != path {
                return .failure(RuleLoadError(description: "\(path): vigil.indicator \"\(definition.name)\" is already declared in \(other.file.path)"))
            }
        }
        for rule in file.rules {
            if let other = runtimes[rule.name], other.file?.path != path {
                return .failure(RuleLoadError(description: "\(path): vigil.alert \"\(rule.name)\" is already declared in \(other.file?.path ?? "?")"))
            }
            if rule.name == Self.ruleFailingAlert {
                return .failure(RuleLoadError(description: "\(path): \(rule.name) is Vigil's own alert; choose another name"))
            }
        }
        return .success(file)
    }

    /// `renewing`: the same text loaded again into a fresh state; health, quarantine and schedule stay.
    private func install(_ file: RuleFile, at now: Timestamp, renewing: Bool = false) {
        let names = Set(file.rules.map(\.name))
        uninstall(file.path, keeping: names, at: now)
        files[file.path] = file
        for definition in file.rules {
            if let runtime = runtimes[definition.name] {
                runtime.definition = definition
                runtime.file = file
                if renewing { continue }
                // Same rule, new version: instances and their timers stay; quarantine ends.
                runtime.consecutiveFailures = 0
                runtime.quarantinedUntil = nil
                runtime.quarantineBackoff = 0
                if runtime.health == .quarantined || runtime.health == .error { runtime.health = .unknown }
                runtime.nextDue = now
            } else {
                let runtime = RuleRuntime(definition: definition, file: file)
                runtime.nextDue = now
                restore(runtime)
                runtimes[definition.name] = runtime
            }
        }
        order = Self.stableOrder(order.filter { runtimes[$0] != nil && !names.contains($0) } + file.rules.map(\.name), runtimes)
        installRecommendations(file, at: now, renewing: renewing)
    }

    /// Rules sorted by file path, keeping declaration order within a file.
    private static func stableOrder(_ names: [String], _ runtimes: [String: RuleRuntime]) -> [String] {
        var byFile: [String: [String]] = [:]
        var seen: [String] = []
        for name in names {
            let path = runtimes[name]?.file?.path ?? ""
            if byFile[path] == nil { seen.append(path) }
            byFile[path, default: []].append(name)
        }
        return seen.sorted().flatMap { byFile[$0]! }
    }

    /// Drops rules of `path` that are not in `keeping`; their firing alerts resolve.
    private func uninstall(_ path: String, keeping: Set<String>, at now: Timestamp) {
        for (name, runtime) in runtimes where runtime.file?.path == path && !keeping.contains(name) {
            var alerts: [Alert] = []
            var removed: [(String, String)] = []
            for instance in runtime.instances.values {
                if instance.state == .firing, let firedAt = instance.firedAt {
                    alerts.append(alert(runtime, instance, status: .resolved, startsAt: firedAt, endsAt: now))
                }
                removed.append((name, instance.fingerprintKey))
            }
            runtimes[name] = nil
            order.removeAll { $0 == name }
            onAlerts?(name, alerts)
            persist(changed: [], removed: removed, history: [])
        }
    }

    /// The allocator's policy script, which shares the rules folder but is not a rule file.
    public static let policyFileName = "policy.lua"

    /// The rule files of a folder: every `*.lua` but editor declarations (`*.meta.lua`), hidden files and the policy.
    /// A folder that cannot be read (out of descriptors, permissions) throws: that is "unknown", never "empty".
    public static func ruleFiles(in directory: String) throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            var isFolder: ObjCBool = false
            // A rules folder that does not exist holds no rules; one that exists but cannot be listed is unknown.
            if !FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder) && errno == ENOENT { return [] }
            throw VigilError(.io, "cannot list the rules folder: \(String(cString: strerror(errno)))", location: directory)
        }
        return names.filter { $0.hasSuffix(".lua") && !$0.hasSuffix(".meta.lua") && !$0.hasPrefix(".") && $0 != policyFileName }
            .sorted().map { (directory as NSString).appendingPathComponent($0) }
    }

    private func restore(_ runtime: RuleRuntime) {
        guard let records = restored.removeValue(forKey: runtime.definition.name) else { return }
        for record in records {
            guard let state = AlertState(rawValue: record.state), state != .inactive,
                  let data = record.labels.data(using: .utf8),
                  let labels = try? JSONDecoder().decode([String: String].self, from: data) else { continue }
            var identity = labels
            let severity = identity.removeValue(forKey: "severity") ?? ""
            let instance = AlertInstance(identity: Labels(dictionary: identity))
            instance.state = state
            instance.level = record.level
            instance.severity = severity
            instance.value = record.value
            instance.activeAt = record.activeAt
            instance.firedAt = record.firedAt
            instance.keepSince = record.keepSince
            instance.flapping = record.flapping
            instance.history = (try? JSONDecoder().decode([Int].self, from: Data(record.history.utf8))) ?? []
            instance.dirty = false
            instance.restored = true
            runtime.instances[instance.identity] = instance
        }
        logger.info("alert state restored", metadata: ["rule": "\(runtime.definition.name)", "instances": "\(runtime.instances.count)"])
    }

    // MARK: Evaluation

    /// Evaluates every rule that is due at `now` (and Vigil's own rule-failing alert).
    public func tick(at now: Timestamp) {
        if firstTick == nil { firstTick = now }
        var evaluated: [RuleRuntime] = []
        for name in order {
            guard let runtime = runtimes[name] else { continue }
            if let until = runtime.quarantinedUntil, now < until { continue }
            guard now >= runtime.nextDue else { continue }
            let interval = options.intervalOverride ?? runtime.definition.interval
            runtime.nextDue = (now / interval + 1) * interval
            evaluate(runtime, at: now)
            evaluated.append(runtime)
        }
        evaluateBuiltin(at: now)
        evaluateRecommendations(at: now)
        if options.exportMetrics { exportMetrics(evaluated, at: now) }
        if !exhausted.isEmpty { renewExhausted(at: now) }
    }

    private struct Present {
        var level: Int
        var severity: String
        var value: Double
        var labels: Labels
    }

    private func evaluate(_ runtime: RuleRuntime, at ts: Timestamp) {
        guard let file = runtime.file else { return }
        let definition = runtime.definition
        file.clock.set(ts)
        let started = DispatchTime.now().uptimeNanoseconds
        var instructions = 0
        var present: [Labels: Present] = [:]
        var failure: String?
        var noData = false
        do {
            let elements = try query(definition.query, name: definition.name, file, at: ts)
            instructions += file.state.lastCallInstructions
            noData = elements.isEmpty
            guard elements.count <= options.maxInstances else {
                throw RuleLoadError(description: "the query returned \(elements.count) series; a rule may have at most \(options.maxInstances) "
                    + "alert instances (aggregate, or match fewer series)")
            }
            if let long = elements.lazy.flatMap(\.labels.pairs).first(where: { $0.value.utf8.count > options.maxLabelBytes }) {
                throw RuleLoadError(description: "label \(long.name) is \(long.value.utf8.count) bytes long; alert labels are at most "
                    + "\(options.maxLabelBytes) bytes")
            }
            for element in elements {
                let identity = identity(definition, element.labels, element.value)
                let current = runtime.instances[identity].flatMap { $0.state == .inactive ? nil : $0.level } ?? 0
                let level = try self.level(definition, file, element, current: current, instructions: &instructions)
                guard level > 0 else { continue }
                guard present[identity] == nil else {
                    throw RuleLoadError(description: "two series give the same alert labels \(identity); add labels that tell them apart (Prometheus: duplicate alert label set)")
                }
                let severity = definition.levels.first { $0.level == level }?.severity ?? "warning"
                present[identity] = Present(level: level, severity: severity, value: element.value, labels: element.labels)
            }
        } catch let error as LuaError {
            failure = error.fullDescription
        } catch {
            failure = "\(error)"
        }
        if file.state.needsReset { exhausted.insert(file.path) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        runtime.lastEvaluation = ts
        runtime.duration = elapsed
        runtime.instructions = instructions
        runtime.evaluations += 1

        var skip = false
        if let failure {
            runtime.failures += 1
            runtime.consecutiveFailures += 1
            runtime.lastError = failure
            if runtime.consecutiveFailures >= options.quarantineAfter {
                runtime.quarantineBackoff = runtime.quarantineBackoff == 0
                    ? options.quarantineBackoff : min(runtime.quarantineBackoff * 2, options.quarantineBackoffMax)
                runtime.quarantinedUntil = ts + runtime.quarantineBackoff
                if runtime.health != .quarantined {
                    logger.error("rule quarantined", metadata: [
                        "rule": "\(definition.name)", "failures": "\(runtime.consecutiveFailures)",
                        "retry_in": "\(DurationParser.format(milliseconds: runtime.quarantineBackoff))", "error": "\(failure)",
                    ])
                }
                runtime.health = .quarantined
            } else {
                runtime.health = .error
                logger.warning("rule evaluation failed", metadata: ["rule": "\(definition.name)", "error": "\(failure)"])
            }
            switch definition.onError {
            case .keep: skip = true
            case .resolve: present = [:]
            case .fire:
                present = [:]
                let labels = Labels(dictionary: ["reason": "evaluation error"])
                present[identity(definition, labels, .nan)] = Present(level: definition.levels.last!.level,
                    severity: definition.levels.last!.severity, value: .nan, labels: labels)
            }
        } else {
            if runtime.health != .ok && runtime.health != .unknown {
                logger.info("rule evaluates again", metadata: ["rule": "\(definition.name)"])
            }
            runtime.health = .ok
            runtime.consecutiveFailures = 0
            runtime.quarantinedUntil = nil
            runtime.quarantineBackoff = 0
            if noData {
                switch definition.noData {
                case .keep: skip = true
                case .resolve: break
                case .fire:
                    let labels = Labels(dictionary: ["reason": "no data"])
                    present[identity(definition, labels, .nan)] = Present(level: definition.levels[0].level,
                        severity: definition.levels[0].severity, value: .nan, labels: labels)
                }
            }
        }
        if !skip { apply(present, to: runtime, at: ts) }
        publish(runtime, at: ts)
    }

    struct Element {
        var labels: Labels
        var value: Double
        var name: String?
        /// The element as Lua sees it; nil for a selector query's series (see `series`).
        var lua: LuaValue?
        /// The store's series, for selector queries: conditions get its table, made once per series.
        var series: SeriesRef?
    }

    /// The query's result as elements; a scalar is one element without labels, nil none.
    func query(_ query: RuleQuery, name: String, _ file: RuleFile, at ts: Timestamp) throws -> [Element] {
        switch query {
        case .selector(let text):
            var out: [Element] = []
            for ref in try file.query.series(text) {
                guard let value = store.lastValue(ref, at: ts) else { continue }
                out.append(Element(labels: ref.labels.removingName(), value: value, name: ref.labels.name, lua: nil, series: ref))
            }
            return out
        case .function(let function):
            let result = try file.call(query: function)
            return try Self.elements(result.first ?? .nil, rule: name)
        case .builtin:
            return []
        }
    }

    private static func elements(_ result: LuaValue, rule: String) throws -> [Element] {
        func element(_ value: LuaValue) throws -> Element {
            if let number = value.doubleValue {
                return Element(labels: Labels(), value: number, name: nil, lua: .table(["labels": .table([:]), "value": .number(number)]), series: nil)
            }
            guard let number = value["value"].doubleValue else {
                throw RuleLoadError(description: "\(rule): query returned an element without a numeric value: \(LuaFormat.describe(value))")
            }
            var pairs: [Label] = []
            if let labels = value["labels"].tableValue {
                for (key, labelValue) in labels {
                    guard let name = key.stringValue, let text = labelValue.stringValue ?? labelValue.doubleValue.map({ Format.number($0) }) else { continue }
                    if name != Labels.metricName { pairs.append(Label(name, text)) }
                }
            }
            return Element(labels: Labels(pairs), value: number, name: value["name"].stringValue, lua: value, series: nil)
        }
        switch result {
        case .nil: return []
        case .integer, .number: return [try element(result)]
        case .array(let items): return try items.map(element)
        case .table(let table) where table.isEmpty: return []
        case .table: return [try element(result)]
        default:
            throw RuleLoadError(description: "\(rule): query must return a vector, a number or nil, not \(result.typeName)")
        }
    }

    /// Kapacitor's level choice: go up to the highest level whose fire holds; else stay while the current
    /// level's clear does not hold; else the highest level at or below the current one whose fire holds.
    private func level(_ definition: AlertRuleDefinition, _ file: RuleFile, _ element: Element, current: Int,
                       instructions: inout Int) throws -> Int {
        if definition.firesOnPresence { return definition.levels[0].level }
        func holds(_ function: LuaReference?) throws -> Bool {
            guard let function else { return false }
            let result: [LuaValue]
            if let series = element.series {
                result = try file.call(condition: function, series: series, value: element.value)
            } else {
                result = try file.state.call(function, [element.lua ?? .nil])
            }
            instructions += file.state.lastCallInstructions
            return result.first?.isTruthy ?? false
        }
        for conditions in definition.levels.reversed() where conditions.level > current {
            if try holds(conditions.fire) { return conditions.level }
        }
        if current > 0, let conditions = definition.levels.first(where: { $0.level == current }), let clear = conditions.clear {
            if !(try holds(clear)) { return current }
        }
        for conditions in definition.levels.reversed() where conditions.level <= current {
            if try holds(conditions.fire) { return conditions.level }
        }
        return 0
    }

    private func identity(_ definition: AlertRuleDefinition, _ labels: Labels, _ value: Double) -> Labels {
        if definition.labels.isEmpty { return labels.setting("alertname", definition.name) }
        var result = labels.dictionary
        if !definition.labels.isEmpty {
            var context = result
            context["alertname"] = definition.name
            for (name, template) in definition.labels { result[name] = template.render(labels: context, value: value) }
        }
        result["alertname"] = definition.name
        return Labels(dictionary: result)
    }

    private func apply(_ present: [Labels: Present], to runtime: RuleRuntime, at ts: Timestamp) {
        let definition = runtime.definition
        var history: [AlertHistoryRecord] = []
        func record(_ instance: AlertInstance, _ from: String, _ to: String) {
            history.append(AlertHistoryRecord(time: ts, rule: definition.name, fingerprint: instance.fingerprintKey,
                                              labels: Self.json(instance.labels), fromState: from, toState: to, value: instance.value))
            let level: Logger.Level = to == "firing" || to == "flapping" ? .warning : .info
            logger.log(level: level, "alert \(to)", metadata: [
                "alertname": "\(definition.name)", "labels": "\(instance.identity)", "value": "\(Format.number(instance.value))",
            ])
        }
        for (identity, found) in present {
            let instance = runtime.instances[identity] ?? {
                let created = AlertInstance(identity: identity)
                runtime.instances[identity] = created
                return created
            }()
            instance.restored = false
            let transition = instance.activate(level: found.level, severity: found.severity, value: found.value, at: ts,
                                               pending: definition.pending)
            var context = instance.labels
            context.merge(found.labels.dictionary) { mine, _ in mine }
            var annotations: [String: String] = [:]
            for (name, template) in definition.annotations {
                var text = template.render(labels: context, value: found.value)
                if text.utf8.count > options.maxAnnotationBytes {
                    text = String(decoding: text.utf8.prefix(options.maxAnnotationBytes), as: UTF8.self) + "…"
                }
                annotations[name] = text
            }
            instance.annotations = annotations
            if let transition { record(instance, transition.from.rawValue, transition.to.rawValue) }
        }
        let inGrace = firstTick.map { ts - $0 < options.restoreGrace } ?? true
        for (identity, instance) in runtime.instances where present[identity] == nil {
            if instance.restored && inGrace { continue }
            instance.restored = false
            if let transition = instance.deactivate(at: ts, keep: definition.keep) {
                record(instance, transition.from.rawValue, transition.to == .inactive && transition.from == .firing ? "resolved" : transition.to.rawValue)
            }
        }
        if let flapping = definition.flapping {
            for instance in runtime.instances.values {
                if let started = instance.recordHistory(flapping) {
                    record(instance, started ? "stable" : "flapping", started ? "flapping" : "stable")
                }
            }
        }
        var removed: [(String, String)] = []
        for (identity, instance) in runtime.instances where instance.state == .inactive {
            let retained = instance.resolvedAt.map { ts - $0 < options.resolvedRetention } ?? false
            let tracking = definition.flapping != nil && instance.history.contains { $0 != 0 }
            if !retained && !tracking {
                runtime.instances[identity] = nil
                removed.append((definition.name, instance.fingerprintKey))
            }
        }
        var changed: [AlertStateRecord] = []
        for instance in runtime.instances.values where instance.dirty {
            instance.dirty = false
            if instance.state == .inactive {
                removed.append((definition.name, instance.fingerprintKey))
            } else {
                changed.append(AlertStateRecord(rule: definition.name, fingerprint: instance.fingerprintKey, labels: Self.json(instance.labels),
                    state: instance.state.rawValue, level: instance.level, value: instance.value.isFinite ? instance.value : 0,
                    activeAt: instance.activeAt, firedAt: instance.firedAt, keepSince: instance.keepSince, lastSentAt: nil,
                    flapping: instance.flapping, history: Self.json(instance.history), savedAt: ts))
            }
        }
        persist(changed: changed, removed: removed, history: history)
    }

    /// Hands the rule's current alerts to the notifiers.
    private func publish(_ runtime: RuleRuntime, at ts: Timestamp) {
        guard let onAlerts else { return }
        var alerts: [Alert] = []
        for instance in runtime.instances.values {
            if instance.state == .firing, let firedAt = instance.firedAt {
                if instance.flapping { continue }
                alerts.append(alert(runtime, instance, status: .firing, startsAt: firedAt, endsAt: nil))
            } else if instance.state == .inactive, let resolvedAt = instance.resolvedAt, let firedAt = instance.firedAt {
                alerts.append(alert(runtime, instance, status: .resolved, startsAt: firedAt, endsAt: resolvedAt))
            }
        }
        onAlerts(runtime.definition.name, alerts)
    }

    private func alert(_ runtime: RuleRuntime, _ instance: AlertInstance, status: Alert.Status, startsAt: Timestamp, endsAt: Timestamp?) -> Alert {
        Alert(rule: runtime.definition.name, status: status, labels: instance.labels, annotations: instance.annotations,
              startsAt: startsAt, endsAt: endsAt, value: instance.value,
              generatorURL: "\(options.externalURL)/rules/\(runtime.definition.name)")
    }

    /// `VigilRuleFailing`: one instance per quarantined rule, kept by the engine itself.
    private func evaluateBuiltin(at ts: Timestamp) {
        var present: [Labels: Present] = [:]
        for name in order {
            guard let runtime = runtimes[name], runtime.health == .quarantined else { continue }
            let labels = Labels(dictionary: ["rule": name, "file": runtime.file?.path ?? ""])
            present[identity(builtin.definition, labels, Double(runtime.consecutiveFailures))] =
                Present(level: 1, severity: "critical", value: Double(runtime.consecutiveFailures), labels: labels)
        }
        guard !present.isEmpty || !builtin.instances.isEmpty else { return }
        apply(present, to: builtin, at: ts)
        publish(builtin, at: ts)
    }

    // MARK: State for commands and the API

    public var rules: [RuleStatus] {
        order.compactMap { runtimes[$0] }.map(\.status) + recommenderOrder.compactMap { recommenders[$0] }.map(\.status)
    }

    public var fileStatuses: [RuleFileStatus] {
        let paths = Set(files.keys).union(failedFiles.keys).sorted()
        return paths.map { path in
            RuleFileStatus(path: path, loaded: files[path] != nil, error: failedFiles[path]?.error,
                           rules: files[path]?.declaredNames ?? [], memoryBytes: files[path]?.state.memoryUsed ?? 0)
        }
    }

    /// Every live instance (pending, firing, and resolved ones still retained), rules in order.
    public var alerts: [AlertView] {
        (order.compactMap { runtimes[$0] } + [builtin]).flatMap { runtime in
            runtime.instances.values.sorted { $0.identity < $1.identity }.map { instance in
                AlertView(rule: runtime.definition.name, state: instance.state, labels: instance.labels,
                          annotations: instance.annotations, value: instance.value, activeAt: instance.activeAt,
                          firedAt: instance.firedAt, resolvedAt: instance.resolvedAt, flapping: instance.flapping,
                          silencedBy: [], inhibited: false, fingerprint: Alert.fingerprint(instance.labels))
            }
        }
    }

    /// Writes recommendations that appeared, changed or expired, on the state writer's queue.
    func saveRecommendations(_ items: [Recommendation]) {
        guard let database, !items.isEmpty else { return }
        let rows = items.map { item in
            RecommendationRow(rule: item.rule, fingerprint: item.fingerprint, record: Self.json(item),
                              firstSeen: item.firstSeen, lastSeen: item.lastSeen, expiredAt: item.expiredAt)
        }
        let logger = logger
        writer.async {
            do { try database.saveRecommendations(rows) } catch {
                logger.error("cannot save recommendations", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Waits until every queued database write is done (tests, shutdown).
    public func flush() {
        writer.sync {}
    }

    // MARK: Persistence and metrics

    private func persist(changed: [AlertStateRecord], removed: [(String, String)], history: [AlertHistoryRecord]) {
        guard let database, !changed.isEmpty || !removed.isEmpty || !history.isEmpty else { return }
        let logger = logger
        writer.async {
            do {
                try database.saveAlerts(changed: changed, removed: removed.map { (rule: $0.0, fingerprint: $0.1) }, history: history)
            } catch {
                logger.error("cannot save alert state", metadata: ["error": "\(error)"])
            }
        }
    }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    private func describeMetrics() {
        guard options.exportMetrics else { return }
        store.describe("vigil_rule_health", kind: .gauge, help: "1 for the rule's current health (ok, error, quarantined), 0 for the others.")
        store.describe("vigil_rule_last_evaluation_timestamp_seconds", kind: .gauge, help: "When the rule was last evaluated.")
        store.describe("vigil_rule_evaluation_duration_seconds", kind: .gauge, help: "How long the rule's last evaluation took.")
        store.describe("vigil_rule_evaluations_total", kind: .counter, help: "Evaluations of the rule.")
        store.describe("vigil_rule_evaluation_failures_total", kind: .counter, help: "Evaluations of the rule that failed.")
        store.describe("vigil_rule_instructions", kind: .gauge, help: "Lua VM instructions of the last evaluation, in steps of 1000.")
        store.describe("vigil_rule_memory_bytes", kind: .gauge, help: "Bytes held by the Lua state of the rule's file.")
        store.describe("ALERTS", kind: .gauge, help: "Pending and firing alert instances (Prometheus' series).")
        store.describe("ALERTS_FOR_STATE", kind: .gauge, help: "When each pending or firing alert instance became active, in seconds.")
        store.describe("vigil_alert_flapping", kind: .gauge, help: "1 while the alert instance is flapping.")
    }

    /// The series a rule's figures go to, made once per rule.
    private func metricSeries(_ runtime: RuleRuntime) -> RuleRuntime.MetricSeries {
        if let made = runtime.metricSeries { return made }
        let name = runtime.definition.name
        let file = runtime.file?.path ?? ""
        func series(_ metric: String, _ extra: [String: String] = [:]) -> SeriesRef {
            store.series(Labels(name: metric, extra.merging(["rule": name]) { a, _ in a }))
        }
        let made = RuleRuntime.MetricSeries(
            health: [RuleHealth.ok, .error, .quarantined].map { (series("vigil_rule_health", ["file": file, "health": $0.rawValue]), $0) },
            lastEvaluation: series("vigil_rule_last_evaluation_timestamp_seconds"),
            duration: series("vigil_rule_evaluation_duration_seconds"),
            evaluations: series("vigil_rule_evaluations_total"),
            failures: series("vigil_rule_evaluation_failures_total"),
            instructions: series("vigil_rule_instructions"),
            memory: series("vigil_rule_memory_bytes"))
        runtime.metricSeries = made
        return made
    }

    private func exportMetrics(_ evaluated: [RuleRuntime], at ts: Timestamp) {
        for runtime in evaluated {
            let series = metricSeries(runtime)
            for (ref, health) in series.health { store.append(ref, ts, runtime.health == health ? 1 : 0) }
            store.append(series.lastEvaluation, ts, Double(ts) / 1000)
            store.append(series.duration, ts, runtime.duration)
            store.append(series.evaluations, ts, Double(runtime.evaluations))
            store.append(series.failures, ts, Double(runtime.failures))
            store.append(series.instructions, ts, Double(runtime.instructions))
            store.append(series.memory, ts, Double(runtime.file?.state.memoryUsed ?? 0))
        }
        // Quarantined rules are not evaluated; their health still reads as quarantined.
        for name in order {
            guard let runtime = runtimes[name], runtime.health == .quarantined, !evaluated.contains(where: { $0 === runtime }) else { continue }
            for (ref, health) in metricSeries(runtime).health { store.append(ref, ts, health == .quarantined ? 1 : 0) }
        }
        var current: Set<Labels> = []
        for runtime in order.compactMap({ runtimes[$0] }) + [builtin] {
            for instance in runtime.instances.values where instance.state != .inactive {
                var labels = instance.labels
                labels["alertstate"] = instance.state.rawValue
                let alerts = Labels(name: "ALERTS", labels)
                store.append(alerts, ts, 1)
                current.insert(alerts)
                var forState = instance.labels
                forState[Labels.metricName] = "ALERTS_FOR_STATE"
                let forStateLabels = Labels(dictionary: forState)
                store.append(forStateLabels, ts, Double(instance.activeAt) / 1000)
                current.insert(forStateLabels)
                if runtime.definition.flapping != nil {
                    let flapping = Labels(name: "vigil_alert_flapping", instance.labels)
                    store.append(flapping, ts, instance.flapping ? 1 : 0)
                    current.insert(flapping)
                }
            }
        }
        for gone in exportedAlertSeries.subtracting(current) { store.append(gone, ts, StaleMarker.value) }
        exportedAlertSeries = current
    }
}

/// What stat says of a file: when the rules folder is checked, an unchanged file is not read.
struct FileStamp: Equatable {
    let modified: timespec
    let size: Int64
    let inode: UInt64

    init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        modified = info.st_mtim
        size = Int64(info.st_size)
        inode = UInt64(info.st_ino)
    }

    static func == (lhs: FileStamp, rhs: FileStamp) -> Bool {
        lhs.modified.tv_sec == rhs.modified.tv_sec && lhs.modified.tv_nsec == rhs.modified.tv_nsec
            && lhs.size == rhs.size && lhs.inode == rhs.inode
    }
}

/// What a rule file declares, by name.
public struct RuleFileSummary: Sendable, Equatable {
    public var alerts: [String]
    public var recommendations: [String]
    public var indicators: [String]

    /// "2 alerts (A, B), 1 indicator (speed)"; "nothing" for an empty file.
    public var description: String {
        let parts = [("alert", alerts), ("recommendation", recommendations), ("indicator", indicators)].filter { !$0.1.isEmpty }
        guard !parts.isEmpty else { return "nothing" }
        return parts.map { "\($0.1.count) \($0.0)\($0.1.count == 1 ? "" : "s") (\($0.1.joined(separator: ", ")))" }.joined(separator: ", ")
    }
}

/// A failed load or evaluation, already in words.
public struct RuleLoadError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// A rule's live part: its definition (replaced on reload) and what survives reloads.
final class RuleRuntime {
    var definition: AlertRuleDefinition
    var file: RuleFile?
    var instances: [Labels: AlertInstance] = [:]
    var health: RuleHealth = .unknown
    var lastError: String?
    var lastEvaluation: Timestamp?
    var duration = 0.0
    var instructions = 0
    var nextDue: Timestamp = .min
    var consecutiveFailures = 0
    var quarantineBackoff: Int64 = 0
    var quarantinedUntil: Timestamp?
    var evaluations = 0
    var failures = 0
    /// Where its `vigil_rule_*` figures go.
    struct MetricSeries {
        var health: [(SeriesRef, RuleHealth)]
        var lastEvaluation, duration, evaluations, failures, instructions, memory: SeriesRef
    }
    var metricSeries: MetricSeries?

    init(definition: AlertRuleDefinition, file: RuleFile?) {
        self.definition = definition
        self.file = file
    }

    var status: RuleStatus {
        RuleStatus(name: definition.name, file: file?.path ?? "", group: definition.group,
                   intervalSeconds: Double(definition.interval) / 1000, health: health, lastError: lastError,
                   lastEvaluation: lastEvaluation, evaluationSeconds: duration, instructions: instructions,
                   memoryBytes: file?.state.memoryUsed ?? 0, evaluations: evaluations, failures: failures,
                   consecutiveFailures: consecutiveFailures, quarantinedUntil: quarantinedUntil,
                   firing: instances.values.filter { $0.state == .firing }.count,
                   pending: instances.values.filter { $0.state == .pending }.count)
    }
}

extension AlertInstance {
    /// The key of its saved state: the fingerprint of its identity (severity may change).
    var fingerprintKey: String { Alert.fingerprint(identity.dictionary) }
}
