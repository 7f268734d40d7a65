import Foundation
import Logging
import VigilCore
import VigilLua
import VigilState

/// A recommendation generator's live part: its definition (replaced on reload), its active
/// recommendations and its health.
final class RecommendRuntime {
    var definition: RecommendDefinition
    var file: RuleFile
    var active: [String: Recommendation] = [:]
    var health: RuleHealth = .unknown
    var lastError: String?
    var lastEvaluation: Timestamp?
    var duration = 0.0
    var instructions = 0
    var nextDue: Timestamp = .min
    var evaluations = 0
    var failures = 0
    var consecutiveFailures = 0

    init(definition: RecommendDefinition, file: RuleFile) {
        self.definition = definition
        self.file = file
    }

    var status: RuleStatus {
        RuleStatus(kind: "recommend", name: definition.name, file: file.path, group: "",
                   intervalSeconds: Double(definition.interval) / 1000, health: health, lastError: lastError,
                   lastEvaluation: lastEvaluation, evaluationSeconds: duration, instructions: instructions,
                   memoryBytes: file.state.memoryUsed, evaluations: evaluations, failures: failures,
                   consecutiveFailures: consecutiveFailures, quarantinedUntil: nil, firing: active.count, pending: 0)
    }
}

extension RuleEngine {
    // MARK: Recommendations

    /// Active recommendations, most valuable first.
    public var recommendations: [Recommendation] {
        Recommendation.ranked(recommenderOrder.compactMap { recommenders[$0] }.flatMap { Array($0.active.values) })
    }

    func restoreRecommendations() {
        guard let database else { return }
        do {
            for row in try database.recommendations() {
                guard let item = try? JSONDecoder().decode(Recommendation.self, from: Data(row.record.utf8)) else { continue }
                restoredRecommendations[row.rule, default: []].append(item)
            }
        } catch {
            logger.error("cannot read saved recommendations; they start afresh", metadata: ["error": "\(error)"])
        }
    }

    func installRecommendations(_ file: RuleFile, at now: Timestamp, renewing: Bool) {
        let names = Set(file.recommendations.map(\.name))
        uninstallRecommendations(file.path, keeping: names, at: now)
        for definition in file.recommendations {
            if let runtime = recommenders[definition.name] {
                runtime.definition = definition
                runtime.file = file
                if renewing { continue }
                runtime.nextDue = now
                runtime.consecutiveFailures = 0
                if runtime.health == .error { runtime.health = .unknown }
            } else {
                let runtime = RecommendRuntime(definition: definition, file: file)
                runtime.nextDue = now
                for item in restoredRecommendations.removeValue(forKey: definition.name) ?? [] {
                    runtime.active[item.fingerprint] = item
                }
                recommenders[definition.name] = runtime
                recommenderOrder.append(definition.name)
            }
        }
        for name in indicatorDefinitions.keys where indicatorDefinitions[name]?.file.path == file.path {
            indicatorDefinitions[name] = nil
        }
        for definition in file.indicators { indicatorDefinitions[definition.name] = (definition, file) }
        recommenderOrder.sort { (recommenders[$0]!.file.path, $0) < (recommenders[$1]!.file.path, $1) }
    }

    /// Drops the generators of `path` not in `keeping`: their recommendations expire. With an empty
    /// `keeping` (the file is gone) its indicators go too.
    func uninstallRecommendations(_ path: String, keeping: Set<String>, at now: Timestamp) {
        var expired: [Recommendation] = []
        for (name, runtime) in recommenders where runtime.file.path == path && !keeping.contains(name) {
            for var item in runtime.active.values {
                item.expiredAt = now
                expired.append(item)
            }
            recommenders[name] = nil
            recommenderOrder.removeAll { $0 == name }
        }
        saveRecommendations(expired)
        if keeping.isEmpty {
            for name in indicatorDefinitions.keys where indicatorDefinitions[name]?.file.path == path { indicatorDefinitions[name] = nil }
        }
    }

    func evaluateRecommendations(at now: Timestamp) {
        for name in recommenderOrder {
            guard let runtime = recommenders[name], now >= runtime.nextDue else { continue }
            let interval = options.intervalOverride ?? runtime.definition.interval
            runtime.nextDue = (now / interval + 1) * interval
            evaluate(runtime, at: now)
        }
    }

    private func evaluate(_ runtime: RecommendRuntime, at ts: Timestamp) {
        let definition = runtime.definition
        let file = runtime.file
        file.clock.set(ts)
        let started = DispatchTime.now().uptimeNanoseconds
        var instructions = 0
        var found: [String: Recommendation] = [:]
        var failure: String?
        do {
            let elements = try query(definition.query, name: definition.name, file, at: ts)
            instructions += file.state.lastCallInstructions
            for element in elements {
                if let item = try recommendation(definition, file, element, at: ts, instructions: &instructions),
                   found[item.fingerprint] == nil {
                    found[item.fingerprint] = item
                }
            }
        } catch let error as LuaError {
            failure = error.fullDescription
        } catch {
            failure = "\(error)"
        }
        if file.state.needsReset { exhausted.insert(file.path) }
        runtime.lastEvaluation = ts
        runtime.duration = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        runtime.instructions = instructions
        runtime.evaluations += 1
        if let failure {
            // What was recommended stays until the script evaluates again.
            runtime.failures += 1
            runtime.consecutiveFailures += 1
            runtime.lastError = failure
            runtime.health = .error
            logger.warning("recommendation script failed", metadata: ["rule": "\(definition.name)", "error": "\(failure)"])
            return
        }
        runtime.health = .ok
        runtime.consecutiveFailures = 0
        var changed: [Recommendation] = []
        for (fingerprint, var item) in found {
            if let existing = runtime.active[fingerprint] { item.firstSeen = existing.firstSeen }
            if runtime.active[fingerprint] == nil {
                logger.info("recommendation", metadata: ["rule": "\(definition.name)", "title": "\(item.title)"])
            }
            runtime.active[fingerprint] = item
            changed.append(item)
        }
        for (fingerprint, var item) in runtime.active where found[fingerprint] == nil {
            item.expiredAt = ts
            runtime.active[fingerprint] = nil
            changed.append(item)
            logger.info("recommendation expired", metadata: ["rule": "\(definition.name)", "title": "\(item.title)"])
        }
        saveRecommendations(changed)
    }

    /// One candidate through `when` and `saving`, its texts rendered; nil when `when` says no.
    private func recommendation(_ definition: RecommendDefinition, _ file: RuleFile, _ element: Element, at ts: Timestamp,
                                instructions: inout Int) throws -> Recommendation? {
        var table: LuaValue
        if let lua = element.lua {
            table = lua
        } else {
            var fields: [LuaValue: LuaValue] = [.string("labels"): QueryFunctions.labelsTable(element.labels), .string("value"): .number(element.value)]
            if let name = element.name { fields[.string("name")] = .string(name) }
            table = .table(fields)
        }
        if let when = definition.when {
            let holds = try file.state.call(when, [table]).first?.isTruthy ?? false
            instructions += file.state.lastCallInstructions
            if !holds { return nil }
        }
        var money: Double?
        var hours: Double?
        if let saving = definition.saving {
            let result = try file.state.call(saving, [table]).first ?? .nil
            instructions += file.state.lastCallInstructions
            if let number = result.doubleValue {
                money = number
            } else if result.tableValue != nil {
                money = result["money"].doubleValue
                hours = result["gpu_hours"].doubleValue
            } else if !result.isNil {
                throw RuleLoadError(description: "\(definition.name): saving must return a number (money per month), { money = …, gpu_hours = … } or nil, not \(result.typeName)")
            }
        }
        var labels = element.labels.dictionary
        labels[Labels.metricName] = nil
        // Templates see the labels, and every plain field of the candidate the query returned.
        var context = labels
        for (key, value) in table.tableValue ?? [:] {
            guard let name = key.stringValue, name != "labels", context[name] == nil else { continue }
            if let text = value.stringValue { context[name] = text } else if let number = value.doubleValue { context[name] = Format.number(number) }
        }
        let subject = definition.about ?? RecommendDefinition.subjects.first { labels[$0] != nil }
        var identity = labels
        identity["recommendation"] = definition.name
        return Recommendation(
            rule: definition.name, fingerprint: Alert.fingerprint(identity), subject: subject ?? "host",
            subjectID: subject.flatMap { labels[$0] } ?? "", labels: labels,
            title: definition.title.render(labels: context, value: element.value),
            advice: definition.advice.render(labels: context, value: element.value), severity: definition.severity,
            value: element.value.isFinite ? element.value : 0, savingPerMonth: money.flatMap { $0.isFinite ? $0 : nil },
            gpuHoursPerMonth: hours.flatMap { $0.isFinite ? $0 : nil }, currency: money == nil ? nil : history?.pricing().currency,
            firstSeen: ts, lastSeen: ts, expiredAt: nil)
    }

    // MARK: Indicators

    /// Names of the declared indicators, sorted.
    public var indicatorNames: [String] { indicatorDefinitions.keys.sorted() }

    /// Every indicator for each of `tasks` and for the host, at `now`. The host table scripts see counts
    /// tasks by state (`running`, `queued`, `paused`, `finished`) and the GPUs (`gpus`, `busy_gpus`).
    public func indicators(tasks: [TaskFacts], gpus: [GPUFacts], at now: Timestamp) -> IndicatorReport {
        var report = IndicatorReport()
        let host: LuaValue = .table([
            "running": .integer(Int64(tasks.filter { $0.state == "running" || $0.state == "starting" }.count)),
            "paused": .integer(Int64(tasks.filter { $0.state == "paused" }.count)),
            "queued": .integer(Int64(tasks.filter { $0.state == "queued" }.count)),
            "finished": .integer(Int64(tasks.filter(\.isFinished).count)),
            "gpus": .integer(Int64(gpus.count)),
            "busy_gpus": .integer(Int64(gpus.filter { $0.tasks > 0 }.count)),
        ])
        let taskTables = tasks.map(LuaValue.encoding)
        for name in indicatorNames {
            guard let (definition, file) = indicatorDefinitions[name] else { continue }
            file.clock.set(now)
            func reading(_ function: LuaReference, _ argument: LuaValue) throws -> IndicatorReading? {
                let result = try file.state.call(function, [argument]).first ?? .nil
                return try definition.level(of: result).map { IndicatorReading(name: name, level: $0.level, value: $0.value, levels: definition.levels) }
            }
            do {
                if let function = definition.host, let found = try reading(function, host) { report.host.append(found) }
                if let function = definition.task {
                    for (task, table) in zip(tasks, taskTables) {
                        if let found = try reading(function, table) { report.tasks[task.id, default: []].append(found) }
                    }
                }
            } catch let error as LuaError {
                report.errors.append("indicator \(name): \(error.fullDescription)")
            } catch {
                report.errors.append("indicator \(name): \(error)")
            }
        }
        return report
    }
}
