import Foundation
import Logging
import VigilCore
import VigilState
import VigilStore

/// A refusal the API turns into 400, 404 or 409 with the message.
public struct AllocatorError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case invalid, notFound, conflict, unavailable, storageFull }
    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// The allocator of one host: takes tasks, keeps the ledger, runs the planner on live GPU figures,
/// starts and watches the processes, charges their cost, and writes every state to SQLite before acting
/// on it. All state is behind one lock; `tick()` is called by `AllocatorService` (or a test) on a cadence.
public final class Allocator: @unchecked Sendable {
    public struct Options: Sendable {
        /// Where task folders (stdout, stderr, exit) go.
        public var logs: String
        /// SIGTERM → SIGKILL.
        public var grace: Int64 = 10_000
        public var costs: CostModel
        /// Finished tasks kept in memory (and used for prediction and fair share).
        public var keepFinished: Int64 = 30 * 86_400_000

        /// A relative `logs` is resolved now, against the current folder: a task's wrapper writes its exit status
        /// into `VIGIL_TASK_DIR`, which must not depend on the folder the task runs in.
        public init(logs: String, costs: CostModel) {
            self.logs = logs.hasPrefix("/") ? logs
                : ((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(logs) as NSString).standardizingPath
            self.costs = costs
        }
    }

    private let lock = NSLock()
    /// Ids given to submits whose rows are not yet committed.
    private var pendingIDs: Set<Int64> = []
    private lazy var writer = SubmitWriter(database: database)
    private var writerStarted = false
    private let database: StateDatabase
    private let store: MetricStore
    private let clock: any WallClock
    private let logger: Logger
    private let options: Options
    public let policyScript: PolicyScript

    private var tasks: [Int64: TaskRecord] = [:]
    private var history = DurationHistory()
    private var fairShare: FairShare
    private var gpus: [GPUSlot] = []
    /// False until the first tick, which follows the collectors' first round; submits are refused (503) until then.
    private var inventoryKnown = false
    /// Observed GPU memory of a task's processes, per GPU index.
    private var observed: [Int64: [Int: Int64]] = [:]
    private var drained = false
    private var nextID: Int64
    private var lastTick: Timestamp
    private var lastPass = PassResult() { didSet { positionsCache = nil } }
    private var positionsCache: [Int64: Int]?
    /// Where each waiting task stood in the last pass (built when a view needs it, not on every pass).
    private var passPositions: [Int64: Int] {
        if let positionsCache { return positionsCache }
        let positions = Dictionary(lastPass.order.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
        positionsCache = positions
        return positions
    }
    private var terminating: [Int64: Termination] = [:]
    private var dirty: Set<Int64> = []
    private var passes = 0
    private var lastPassSeconds = 0.0
    /// Ids of active and of queued tasks, rebuilt once per tick (and after placements) so the loops of a
    /// tick do not walk every task kept.
    private var activeIDs: [Int64] = []
    private var queuedIDs: [Int64] = []

    private func reindex() {
        activeIDs.removeAll(keepingCapacity: true)
        queuedIDs.removeAll(keepingCapacity: true)
        for index in tasks.values.indices {
            let state = tasks.values[index].state
            if state.isActive { activeIDs.append(tasks.keys[index]) } else if state == .queued { queuedIDs.append(tasks.keys[index]) }
        }
    }

    /// Cost and GPU-seconds accrued since the last flush, by local day, owner, task and GPU (SQLite keeps the totals).
    private var dayCosts: [CostKey: (cost: Double, gpuSeconds: Double)] = [:]

    struct CostKey: Hashable {
        var day: String
        var owner: String
        var task: Int64
        /// The GPU's index, "" for a CPU-only task.
        var gpu: String
    }

    /// The local calendar day of `time`, YYYY-MM-DD.
    public static func day(_ time: Timestamp) -> String {
        var seconds = time_t(time / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
    }

    /// Cost per local day and owner from `since` on (the allocator's accounting, for reports).
    public func costs(since: Timestamp) throws -> [CostDayRow] {
        try lock.withLock {
            try flush()
            return try database.costs(since: Self.day(since))
        }
    }

    /// Planned durations of tasks started (the planner's view of when they end).
    private var plannedDurations: [Int64: Int64] = [:]

    struct Termination {
        var since: Timestamp
        var killed = false
        var state: TaskState
        var reason: String
    }

    public init(database: StateDatabase, store: MetricStore, clock: any WallClock, policy: PolicyScript,
                options: Options, logger: Logger) throws {
        self.database = database
        self.store = store
        self.clock = clock
        self.logger = logger
        self.options = options
        policyScript = policy
        policy.reloadIfChanged()
        let now = clock.now()
        lastTick = now
        fairShare = FairShare(halfLife: policy.policy.fairShareHalfLife, at: now - options.keepFinished)
        nextID = try database.maxTaskID() + 1
        drained = try database.setting("allocator.drained") == "true"
        try recover(now: now)
        reindex()
        describeMetrics()
    }

    deinit {
        if writerStarted { writer.stop() }
    }

    // MARK: Restart

    /// Loads what the database holds: queued tasks wait again; active ones whose process survives (same
    /// pid and start time) are re-adopted; the others are marked lost. A task caught between "starting"
    /// and its pid being written is marked lost too: it is never started twice.
    private func recover(now: Timestamp) throws {
        let decoder = JSONDecoder()
        var finished: [TaskRecord] = []
        for row in try database.tasks(endedSince: now - options.keepFinished) {
            guard var record = try? decoder.decode(TaskRecord.self, from: Data(row.record.utf8)) else {
                logger.error("a stored task cannot be read; it is skipped", metadata: ["task.id": "\(row.id)"])
                continue
            }
            if let problem = record.rangeProblem {
                // A row edited by hand or written by a bug: this one task is marked broken, nothing else stops.
                logger.error("a stored task is out of range; it is marked failed", metadata: ["task.id": "\(row.id)", "problem": "\(problem)"])
                record.repairTimes(now: now)
                if !record.state.isFinished {
                    record.state = .failed
                    record.ended = now
                }
                record.reason = "its stored record is broken (\(problem)); it was not run or followed further"
                dirty.insert(record.id)
                tasks[record.id] = record
                continue
            }
            if record.state.isActive {
                if record.state == .starting || record.pid == nil {
                    // Stopped between writing "starting" and the pid: the process may run, may have ended, or never began.
                    if let pid = TaskProcess.findStarted(logs: options.logs, id: record.id) {
                        record.pid = pid
                        record.pidStartTicks = TaskProcess.startTicks(pid)
                        record.state = .running
                        dirty.insert(record.id)
                        logger.info("task re-adopted (the daemon stopped while starting it)", metadata: ["task.id": "\(record.id)", "task.pid": "\(pid)"])
                    } else if let code = TaskProcess.recordedExit(logs: options.logs, id: record.id) {
                        record.exitCode = code
                        finish(&record, code == 0 ? .succeeded : .failed, reason: "exited with status \(code) while the daemon was away", at: now)
                    } else if TaskProcess.hasStarted(logs: options.logs, id: record.id) {
                        finish(&record, .lost, reason: "it started while the daemon was stopping and ended without a status", at: now)
                    } else {
                        record.state = .queued
                        record.started = nil
                        record.gpuUUIDs = []
                        record.gpuIndices = []
                        dirty.insert(record.id)
                        logger.info("task queued again: the daemon stopped before it began", metadata: ["task.id": "\(record.id)"])
                    }
                } else if let pid = record.pid, TaskProcess.isAlive(pid, startTicks: record.pidStartTicks) {
                    logger.info("task re-adopted", metadata: ["task.id": "\(record.id)", "task.pid": "\(pid)"])
                } else if let code = TaskProcess.recordedExit(logs: options.logs, id: record.id) {
                    record.exitCode = code
                    finish(&record, code == 0 ? .succeeded : .failed, reason: "exited with status \(code) while the daemon was away", at: now)
                } else {
                    finish(&record, .lost, reason: "its process was gone when the daemon came back", at: now)
                }
            }
            if record.state.isFinished { finished.append(record) }
            tasks[record.id] = record
        }
        for record in finished.sorted(by: { ($0.ended ?? 0) < ($1.ended ?? 0) }) {
            if record.state == .succeeded { history.record(record.spec.predictionKey, record.runTime(at: now)) }
            if record.started != nil {
                fairShare.charge(record.spec.owner, gpuMilliseconds: Double(record.spec.gpus) * Double(record.runTime(at: now)),
                                 at: record.ended ?? now)
            }
        }
        for record in tasks.values where record.state.isActive {
            plannedDurations[record.id] = predict(record.spec).0
            fairShare.charge(record.spec.owner, gpuMilliseconds: Double(record.spec.gpus) * Double(plannedDurations[record.id]!), at: now)
        }
        fairShare.decay(to: now)
        try flush()
    }

    // MARK: Requests

    /// Queues a task. It is on disk before this returns.
    public func submit(_ spec: TaskSpec) async throws -> TaskRecord {
        try await submit([spec])[0]
    }

    /// Queues several tasks at once (a job array): all are checked first, and none is queued unless all pass.
    /// Rows are written by one writer thread that commits everything waiting in one transaction (group
    /// commit): callers wait without holding a thread, so concurrent submits share commits.
    public func submit(_ specs: [TaskSpec]) async throws -> [TaskRecord] {
        let records = try admit(specs)
        let rows = records.map(Self.row)
        do {
            let writer = lock.withLock {
                writerStarted = true
                return self.writer
            }
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                writer.enqueue(rows, continuation)
            }
        } catch {
            lock.withLock { for record in records { pendingIDs.remove(record.id) } }
            throw error
        }
        lock.withLock {
            for record in records {
                pendingIDs.remove(record.id)
                tasks[record.id] = record
            }
        }
        return records
    }

    /// Checks the tasks and gives them ids.
    private func admit(_ specs: [TaskSpec]) throws -> [TaskRecord] {
        for (index, spec) in specs.enumerated() {
            do { try validate(spec) } catch let error as AllocatorError where specs.count > 1 {
                throw AllocatorError(error.kind, "task \(index + 1) of \(specs.count): \(error.description)")
            }
        }
        return try lock.withLock {
            guard inventoryKnown else {
                throw AllocatorError(.unavailable, "the allocator is starting (its GPUs are not known yet); try again in a moment")
            }
            let now = clock.now()
            for (index, spec) in specs.enumerated() {
                let prefix = specs.count > 1 ? "task \(index + 1) of \(specs.count): " : ""
                if let reason = Ledger.neverFits(gpus: spec.gpus, memory: spec.gpuMemory, on: gpus) {
                    throw AllocatorError(.invalid, "\(prefix)this task can never run here: it \(reason)")
                }
                for dependency in spec.after where tasks[dependency.task] == nil && !pendingIDs.contains(dependency.task) {
                    guard try database.task(id: dependency.task) != nil else {
                        throw AllocatorError(.invalid, "\(prefix)it depends on task \(dependency.task), which does not exist")
                    }
                }
            }
            return specs.map { spec in
                defer { nextID += 1 }
                pendingIDs.insert(nextID)
                return TaskRecord(id: nextID, spec: spec, submitted: now)
            }
        }
    }

    private func validate(_ spec: TaskSpec) throws {
        guard let program = spec.command.first, !program.isEmpty else { throw AllocatorError(.invalid, "command is empty") }
        guard spec.directory.hasPrefix("/") else { throw AllocatorError(.invalid, "directory must be an absolute path, got \"\(spec.directory)\"") }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: spec.directory, isDirectory: &isFolder), isFolder.boolValue else {
            throw AllocatorError(.invalid, "the working folder \(spec.directory) does not exist")
        }
        if let problem = spec.rangeProblem { throw AllocatorError(.invalid, problem) }
        if spec.gpuMemory > 0 && spec.gpus == 0 { throw AllocatorError(.invalid, "gpu_memory is set but gpus is 0") }
        guard !spec.owner.isEmpty else { throw AllocatorError(.invalid, "owner is empty") }
    }

    public func pause(_ id: Int64) throws -> TaskRecord {
        try mutate(id) { record, now in
            guard record.state == .running, let pid = record.pid else {
                throw AllocatorError(.conflict, "task \(id) is \(record.state.rawValue); only a running task can be paused")
            }
            TaskProcess.signalGroup(pid, SIGSTOP)
            record.state = .paused
            record.pausedAt = now
        }
    }

    public func resume(_ id: Int64) throws -> TaskRecord {
        try mutate(id) { record, now in
            guard record.state == .paused, let pid = record.pid else {
                throw AllocatorError(.conflict, "task \(id) is \(record.state.rawValue); only a paused task can be resumed")
            }
            TaskProcess.signalGroup(pid, SIGCONT)
            record.pausedTotal += now - (record.pausedAt ?? now)
            record.pausedAt = nil
            record.state = .running
        }
    }

    public func cancel(_ id: Int64) throws -> TaskRecord {
        try mutate(id) { record, now in
            switch record.state {
            case .queued:
                finish(&record, .cancelled, reason: "cancelled while queued", at: now)
            case .running, .paused, .starting:
                beginTermination(&record, state: .cancelled, reason: "cancelled", at: now)
            default:
                throw AllocatorError(.conflict, "task \(id) already ended (\(record.state.rawValue))")
            }
        }
    }

    public func setPriority(_ id: Int64, _ priority: TaskPriority) throws -> TaskRecord {
        try mutate(id) { record, _ in
            guard !record.state.isFinished else { throw AllocatorError(.conflict, "task \(id) already ended (\(record.state.rawValue))") }
            record.spec.priority = priority
        }
    }

    public func setDrained(_ value: Bool) throws {
        try lock.withLock {
            try database.setSetting("allocator.drained", value ? "true" : "false")
            drained = value
        }
        logger.notice(value ? "allocator drained: running tasks finish, nothing new starts" : "allocator undrained")
    }

    private func mutate(_ id: Int64, _ body: (inout TaskRecord, Timestamp) throws -> Void) throws -> TaskRecord {
        try lock.withLock {
            guard var record = try loadLocked(id) else { throw AllocatorError(.notFound, "no task \(id)") }
            try body(&record, clock.now())
            tasks[id] = record
            try database.saveTasks([Self.row(record)])
            dirty.remove(id)
            return record
        }
    }

    private func loadLocked(_ id: Int64) throws -> TaskRecord? {
        if let record = tasks[id] { return record }
        guard let row = try database.task(id: id) else { return nil }
        return try JSONDecoder().decode(TaskRecord.self, from: Data(row.record.utf8))
    }

    // MARK: Lifecycle of processes

    private func beginTermination(_ record: inout TaskRecord, state: TaskState, reason: String, at now: Timestamp) {
        guard terminating[record.id] == nil else { return }
        if let pid = record.pid {
            if record.state == .paused { TaskProcess.signalGroup(pid, SIGCONT) }
            TaskProcess.signalGroup(pid, SIGTERM)
        }
        record.reason = reason
        terminating[record.id] = Termination(since: now, state: state, reason: reason)
    }

    private func finish(_ record: inout TaskRecord, _ state: TaskState, reason: String?, at now: Timestamp) {
        if let pausedAt = record.pausedAt {
            record.pausedTotal += now - pausedAt
            record.pausedAt = nil
        }
        record.state = state
        record.ended = now
        if let reason { record.reason = reason }
        dirty.insert(record.id)
    }

    /// Records the end of an active task, feeding history and fair share.
    private func ended(_ id: Int64, status: Int32?, signal: Int32?, now: Timestamp) {
        guard var record = tasks[id] else { return }
        record.exitCode = status
        record.signal = signal
        if let termination = terminating.removeValue(forKey: id) {
            finish(&record, termination.state, reason: termination.reason, at: now)
        } else if let status {
            finish(&record, status == 0 ? .succeeded : .failed, reason: "exited with status \(status)", at: now)
        } else if let signal {
            finish(&record, .failed, reason: "killed by signal \(signal)", at: now)
        } else {
            finish(&record, .failed, reason: "ended; exit status unknown (re-adopted after a restart)", at: now)
        }
        if record.state == .succeeded { history.record(record.spec.predictionKey, record.runTime(at: now)) }
        let planned = plannedDurations.removeValue(forKey: id) ?? 0
        fairShare.charge(record.spec.owner, gpuMilliseconds: Double(record.spec.gpus) * Double(record.runTime(at: now) - planned), at: now)
        observed[id] = nil
        tasks[id] = record
        logger.info("task ended", metadata: ["task.id": "\(id)", "task.state": "\(record.state.rawValue)",
                                             "task.reason": "\(record.reason ?? "")"])
    }

    // MARK: The loop

    /// One round: GPUs from the store, ended processes, limits, cost, the policy, a scheduling pass,
    /// starts, then everything changed written in one transaction and the metrics published.
    public func tick() {
        lock.withLock {
            let now = clock.now()
            let elapsed = max(0, now - lastTick)
            lastTick = now
            reindex()
            refreshInventory(now: now)
            if policyScript.reloadIfChanged() { fairShare.halfLife = max(1, policyScript.policy.fairShareHalfLife) }
            watchProcesses(now: now)
            charge(elapsed: elapsed, now: now)
            enforceLimits(now: now)
            resolveDependencies(now: now)
            schedule(now: now)
            reindex()
            do { try flush() } catch {
                logger.error("cannot save tasks; will retry", metadata: ["error": "\(error)"])
            }
            publish(now: now)
        }
    }

    private func watchProcesses(now: Timestamp) {
        for id in activeIDs {
            guard let record = tasks[id], record.state.isActive, let pid = record.pid else { continue }
            if let outcome = TaskProcess.reap(pid) {
                ended(id, status: outcome.status, signal: outcome.signal, now: now)
            } else if !TaskProcess.isAlive(pid, startTicks: record.pidStartTicks) {
                ended(id, status: TaskProcess.recordedExit(logs: options.logs, id: id), signal: nil, now: now)
            } else if var termination = terminating[id], !termination.killed, now - termination.since >= options.grace {
                TaskProcess.signalGroup(pid, SIGKILL)
                termination.killed = true
                terminating[id] = termination
            }
        }
    }

    private func charge(elapsed: Int64, now: Timestamp) {
        guard elapsed > 0 else { return }
        let hours = Double(elapsed) / 3_600_000
        let seconds = Double(elapsed) / 1000
        let day = Self.day(now)
        let offPeak = options.costs.isOffPeak(now)
        for id in activeIDs {
            guard let record = tasks[id], record.state == .running || record.state == .paused else { continue }
            let shares = self.shares(of: record)
            var updated = record
            var cost = 0.0
            if shares.isEmpty {
                cost = options.costs.ratePerHour(shares: [], at: now) * hours
                dayCosts[CostKey(day: day, owner: record.spec.owner, task: id, gpu: ""), default: (0, 0)].cost += cost
            }
            for share in shares {
                let part = options.costs.ratePerHour(shares: [(share.model, share.fraction, share.watts)], at: now) * hours
                cost += part
                let key = CostKey(day: day, owner: record.spec.owner, task: id, gpu: String(share.index))
                dayCosts[key, default: (0, 0)].cost += part
                if record.spec.gpus > 0 { dayCosts[key, default: (0, 0)].gpuSeconds += share.fraction * seconds }
            }
            updated.cost += cost
            if offPeak { updated.offPeakCost = (updated.offPeakCost ?? 0) + cost }
            updated.energyJoules += shares.reduce(0) { $0 + $1.watts * $1.fraction } * seconds
            if record.state == .running, !record.gpuIndices.isEmpty {
                // What the task made of its GPUs: their mean utilisation, and its processes' peak memory.
                let slots = record.gpuIndices.compactMap { index in gpus.first { $0.index == index } }
                if !slots.isEmpty {
                    updated.observedSeconds = (updated.observedSeconds ?? 0) + seconds
                    updated.busySeconds = (updated.busySeconds ?? 0) + slots.reduce(0) { $0 + $1.utilization } / Double(slots.count) * seconds
                }
                if let peak = observed[id]?.values.max() { updated.peakGPUMemory = max(updated.peakGPUMemory ?? 0, peak) }
            }
            tasks[id] = updated
            dirty.insert(id)
        }
    }

    /// The task's share of each of its GPUs: its declared memory over the GPU's, or all of it.
    private func shares(of record: TaskRecord) -> [(index: Int, model: String, fraction: Double, watts: Double)] {
        record.gpuIndices.compactMap { index in
            guard let gpu = gpus.first(where: { $0.index == index }) else { return nil }
            let fraction = record.spec.gpuMemory == 0 ? 1 : min(1, Double(record.spec.gpuMemory) / Double(max(gpu.memoryTotal, 1)))
            return (index, gpu.model, fraction, gpu.powerWatts)
        }
    }

    private func enforceLimits(now: Timestamp) {
        for id in activeIDs {
            guard let record = tasks[id], record.state == .running || record.state == .paused else { continue }
            var updated = record
            if let limit = record.spec.timeLimit, record.runTime(at: now) >= limit {
                beginTermination(&updated, state: .stopped, reason: "time limit \(DurationParser.format(milliseconds: limit)) reached", at: now)
            } else if let limit = record.spec.costLimit, record.cost >= limit {
                beginTermination(&updated, state: .stopped,
                                 reason: String(format: "cost limit %.2f %@ reached", limit, options.costs.currency), at: now)
            }
            tasks[id] = updated
        }
    }

    /// Queued tasks whose dependency ended the wrong way can never start (Slurm's kill_invalid_depend).
    private func resolveDependencies(now: Timestamp) {
        for id in queuedIDs {
            guard let record = tasks[id], record.state == .queued, !record.spec.after.isEmpty else { continue }
            for dependency in record.spec.after {
                guard let other = tasks[dependency.task], other.state.isFinished else { continue }
                if dependency.condition == .ok && other.state != .succeeded {
                    var updated = record
                    finish(&updated, .stopped, reason: "dependency \(dependency) can never be satisfied: task \(dependency.task) \(other.state.rawValue)", at: now)
                    tasks[id] = updated
                    break
                }
            }
        }
    }

    func predict(_ spec: TaskSpec) -> (Int64, DurationHistory.Basis) {
        history.predict(spec, defaultDuration: policyScript.policy.defaultDuration)
    }

    /// The planner's view of the waiting tasks.
    private func planTasks(now: Timestamp) -> [PlanTask] {
        let cheapest = gpus.map { options.costs.gpuHourRate(model: $0.model) }.min() ?? options.costs.defaultGPUHour
        return queuedIDs.compactMap { tasks[$0] }.filter { $0.state == .queued }.map { record in
            let (duration, _) = predict(record.spec)
            var task = PlanTask(id: record.id, owner: record.spec.owner, submitted: record.submitted, gpus: record.spec.gpus,
                                gpuMemory: record.spec.gpuMemory, priority: record.spec.priority.value, duration: duration)
            let pendingDependencies = record.spec.after.filter { tasks[$0.task].map { !$0.state.isFinished } ?? false }.map(\.task)
            if !pendingDependencies.isEmpty {
                task.blocked = .dependency
                task.dependsOn = pendingDependencies
            } else if inventoryKnown, Ledger.neverFits(gpus: record.spec.gpus, memory: record.spec.gpuMemory, on: gpus) != nil {
                task.blocked = .neverFits
            } else if let limit = record.spec.costLimit {
                let hourly = record.spec.gpus == 0 ? options.costs.cpuCoreHour : Double(record.spec.gpus) * cheapest
                let factor = record.spec.offPeak ? options.costs.offPeakFactor : options.costs.factor(at: now)
                if hourly * factor * Double(duration) / 3_600_000 > limit { task.blocked = .costLimit }
            }
            if task.blocked == nil, record.spec.offPeak, let next = options.costs.nextOffPeak(after: now), next > now {
                task.notBefore = next
            }
            return task
        }
    }

    private func activeTasks(now: Timestamp) -> [ActiveTask] {
        activeIDs.compactMap { tasks[$0] }.filter(\.state.isActive).map { record in
            let memory = record.spec.gpuMemory == 0 ? 0 : max(record.spec.gpuMemory, observed[record.id]?.values.max() ?? 0)
            let planned = plannedDurations[record.id] ?? predict(record.spec).0
            return ActiveTask(id: record.id, gpus: record.gpuIndices, gpuMemory: memory,
                              expectedEnd: ActiveTask.expectedEnd(started: record.started ?? now, planned: planned, now: now,
                                                                  paused: record.pausedTotal + (record.pausedAt.map { now - $0 } ?? 0)))
        }
    }

    private func schedule(now: Timestamp) {
        if drained {
            // Nothing starts: every queued task waits for the same reason, and no ordering is needed.
            var result = PassResult()
            result.order = queuedIDs.filter { tasks[$0]?.state == .queued }
            result.waits = Array(repeating: .drained, count: result.order.count)
            lastPass = result
            return
        }
        let began = DispatchTime.now().uptimeNanoseconds
        let planner = Planner(policy: policyScript.policy, gpus: gpus)
        fairShare.decay(to: now)
        let (ordered, priorities) = planner.order(planTasks(now: now), now: now, fairShare: fairShare)
        var scorer = policyScript
        var result = planner.pass(now: now, active: activeTasks(now: now), ordered: ordered, drained: drained, scorer: &scorer)
        result.priorities = priorities
        lastPassSeconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        passes += 1
        lastPass = result
        guard !result.placements.isEmpty else { return }
        // "starting" reaches the disk before any process exists: a crash in between never starts one twice.
        var starting: [TaskRecord] = []
        for placement in result.placements {
            guard var record = tasks[placement.task] else { continue }
            record.state = .starting
            record.gpuIndices = placement.gpus
            record.gpuUUIDs = placement.gpus.map { index in gpus.first { $0.index == index }?.uuid ?? "" }
            record.started = now
            tasks[record.id] = record
            starting.append(record)
        }
        do {
            try database.saveTasks(starting.map(Self.row))
        } catch {
            logger.error("cannot save tasks before starting them; not starting", metadata: ["error": "\(error)"])
            for record in starting {
                var back = record
                back.state = .queued
                back.started = nil
                tasks[record.id] = back
            }
            return
        }
        for var record in starting {
            let (planned, _) = predict(record.spec)
            do {
                let started = try TaskProcess.spawn(record, logs: options.logs, gpuUUIDs: record.gpuUUIDs)
                record.pid = started.pid
                record.pidStartTicks = started.startTicks
                record.state = .running
                plannedDurations[record.id] = planned
                fairShare.charge(record.spec.owner, gpuMilliseconds: Double(record.spec.gpus) * Double(planned), at: now)
                logger.info("task started", metadata: ["task.id": "\(record.id)", "task.pid": "\(started.pid)",
                                                       "task.gpus": "\(record.gpuUUIDs.joined(separator: ","))"])
            } catch {
                finish(&record, .failed, reason: "\(error)", at: now)
            }
            tasks[record.id] = record
            dirty.insert(record.id)
        }
    }

    private func flush() throws {
        if !dayCosts.isEmpty {
            try database.addCosts(dayCosts.map {
                CostShareRow(day: $0.key.day, owner: $0.key.owner, task: $0.key.task, gpu: $0.key.gpu, cost: $0.value.cost, gpuSeconds: $0.value.gpuSeconds)
            })
            dayCosts.removeAll()
        }
        guard !dirty.isEmpty else { return }
        let rows = dirty.compactMap { tasks[$0] }.map(Self.row)
        try database.saveTasks(rows)
        dirty.removeAll()
        // Finished tasks older than the window leave memory (they stay in the database).
        let cutoff = lastTick - options.keepFinished
        tasks = tasks.filter { !($0.value.state.isFinished && ($0.value.ended ?? 0) < cutoff) }
    }

    static func row(_ record: TaskRecord) -> TaskRow {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let json = (try? encoder.encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return TaskRow(id: record.id, state: record.state.rawValue, owner: record.spec.owner, submitted: record.submitted,
                       ended: record.ended, record: json)
    }

    // MARK: GPUs from the store

    private func refreshInventory(now: Timestamp) {
        func byGPU(_ name: String, _ matchers: [LabelMatcher] = []) -> [String: Double] {
            var values: [String: Double] = [:]
            for sample in store.instant(SeriesSelector(name: name, matchers), at: now) {
                if let gpu = sample.labels["gpu"] { values[gpu, default: 0] += sample.value }
            }
            return values
        }
        let totals = store.instant(SeriesSelector(name: "gpu_memory_total_bytes"), at: now)
        // Ticks begin after the collectors' first round: what the store holds now is the inventory
        // (no NVIDIA driver: no GPUs, and GPU tasks are refused at submit).
        inventoryKnown = true
        let up = byGPU("gpu_up"), utilization = byGPU("gpu_utilization_ratio"), temperature = byGPU("gpu_temperature_celsius")
        let power = byGPU("gpu_power_watts")
        let clock = byGPU("gpu_clock_hertz", [try! LabelMatcher("clock", .equal, "sm")])
        let clockMax = byGPU("gpu_clock_max_hertz", [try! LabelMatcher("clock", .equal, "sm")])
        var errors: [String: Double] = [:]
        for sample in store.evaluate(.increase, SeriesSelector(name: "gpu_xid_errors_total"), range: 3_600_000, at: now)
            + store.evaluate(.increase, SeriesSelector(name: "gpu_ecc_errors_total", [try! LabelMatcher("type", .equal, "uncorrected"),
                                                                                      try! LabelMatcher("scope", .equal, "volatile")]),
                             range: 3_600_000, at: now) {
            if let gpu = sample.labels["gpu"] { errors[gpu, default: 0] += sample.value }
        }
        // Memory of processes: ours (by process group) is observed usage, everyone else's is foreign.
        var foreign: [String: Double] = [:]
        var seen: [Int64: [Int: Int64]] = [:]
        let groups = Dictionary(activeIDs.compactMap { tasks[$0] }.filter(\.state.isActive).compactMap { r in r.pid.map { ($0, r.id) } }, uniquingKeysWith: { a, _ in a })
        for sample in store.instant(SeriesSelector(name: "gpu_process_memory_bytes"), at: now) {
            guard let gpu = sample.labels["gpu"], let pid = sample.labels["pid"].flatMap({ Int32($0) }) else { continue }
            let group = getpgid(pid)
            if group > 0, let id = groups[group], let index = Int(gpu) {
                seen[id, default: [:]][index, default: 0] = min((seen[id]?[index] ?? 0) + Bounds.memoryBytes(sample.value), Bounds.maxMemoryBytes)
            } else {
                foreign[gpu, default: 0] += sample.value
            }
        }
        observed = seen
        gpus = totals.compactMap { sample -> GPUSlot? in
            guard let key = sample.labels["gpu"], let index = Int(key) else { return nil }
            var slot = GPUSlot(index: index, uuid: sample.labels["uuid"] ?? "", model: sample.labels["model"] ?? "", memoryTotal: Bounds.memoryBytes(sample.value))
            slot.foreignMemory = Bounds.memoryBytes(foreign[key] ?? 0)
            slot.utilization = utilization[key] ?? 0
            slot.temperature = temperature[key] ?? 0
            slot.powerWatts = power[key] ?? 0
            slot.clockSM = (clock[key] ?? 0) / 1e6
            slot.clockSMMax = (clockMax[key] ?? 0) / 1e6
            slot.recentErrors = errors[key] ?? 0
            slot.pricePerHour = options.costs.gpuHourRate(model: slot.model)
            slot.healthy = (up[key] ?? 1) > 0
            return slot
        }.sorted { $0.index < $1.index }
    }

    // MARK: Views

    public func task(_ id: Int64) throws -> TaskView {
        try lock.withLock {
            guard let record = try loadLocked(id) else { throw AllocatorError(.notFound, "no task \(id)") }
            let forecast = record.state == .queued ? forecastLocked(now: clock.now()) : [:]
            return view(record, now: clock.now(), forecast: forecast)
        }
    }

    /// The view of a task just submitted: no queue simulation (that is `task(_:)`), so submits stay cheap.
    public func submitted(_ record: TaskRecord) -> TaskView {
        lock.withLock { view(record, now: clock.now(), forecast: [:]) }
    }

    /// Every task in memory (unfinished and those ended within the window), newest first.
    public func list(states: Set<TaskState>? = nil, limit: Int = 1000) -> [TaskView] {
        lock.withLock {
            let now = clock.now()
            let selected = tasks.values.filter { states?.contains($0.state) ?? true }.sorted { $0.id > $1.id }.prefix(limit)
            let forecast = selected.contains { $0.state == .queued } ? forecastLocked(now: now) : [:]
            return selected.map { view($0, now: now, forecast: forecast) }
        }
    }

    public func queue() -> QueueView {
        lock.withLock {
            let now = clock.now()
            let forecast = forecastLocked(now: now)
            let position = passPositions
            let waiting = tasks.values.filter { $0.state == .queued }
                .sorted { (position[$0.id] ?? Int.max, $0.id) < (position[$1.id] ?? Int.max, $1.id) }
            let active = activeIDs.compactMap { tasks[$0] }.filter(\.state.isActive).sorted { $0.id < $1.id }
            let policy = policyScript.policy
            let ledger = Planner(policy: policy, gpus: gpus).ledger(active: activeTasks(now: now))
            return QueueView(
                drained: drained,
                waiting: waiting.map { view($0, now: now, forecast: forecast) },
                active: active.map { view($0, now: now, forecast: forecast) },
                reservation: lastPass.reservation,
                costPerHour: costPerHour(now: now),
                costToday: costToday(now: now),
                currency: options.costs.currency,
                policy: .init(file: policyScript.path, strategy: policy.strategy.rawValue, target: policy.target.rawValue,
                              speed: policy.weights.speed, efficiency: policy.weights.efficiency, reliability: policy.weights.reliability,
                              tasksPerGPU: policy.tasksPerGPU, customScore: policyScript.hasScore, error: policyScript.lastError),
                gpus: gpus.enumerated().map { position, gpu in
                    // The ledger's figure: declared memory, or what a task's processes use when that is more.
                    let holders = active.filter { $0.gpuIndices.contains(gpu.index) }
                    return .init(index: gpu.index, uuid: gpu.uuid, model: gpu.model, memoryTotal: gpu.memoryTotal,
                                 reserved: ledger.reserved[position], foreign: gpu.foreignMemory, tasks: holders.map(\.id))
                },
                lastPassSeconds: lastPassSeconds)
        }
    }

    /// What running tasks cost per hour now, and what tasks cost today (local day), without a queue simulation.
    public func spending() -> (perHour: Double, today: Double) {
        lock.withLock {
            let now = clock.now()
            return (costPerHour(now: now), costToday(now: now))
        }
    }

    /// Today's total: what SQLite holds plus what has accrued since the last flush.
    private func costToday(now: Timestamp) -> Double {
        ((try? database.costs(since: Self.day(now))) ?? []).reduce(0) { $0 + $1.cost }
            + dayCosts.filter { $0.key.day == Self.day(now) }.reduce(0) { $0 + $1.value.cost }
    }

    private func costPerHour(now: Timestamp) -> Double {
        activeIDs.compactMap { tasks[$0] }.filter { $0.state == .running || $0.state == .paused }.reduce(0) {
            $0 + options.costs.ratePerHour(shares: shares(of: $1).map { ($0.model, $0.fraction, $0.watts) }, at: now)
        }
    }

    private func forecastLocked(now: Timestamp) -> [Int64: (start: Timestamp, end: Timestamp)] {
        guard !drained else { return [:] }
        reindex()  // tasks submitted since the last tick are in the forecast too
        let planner = Planner(policy: policyScript.policy, gpus: gpus)
        return planner.forecast(now: now, active: activeTasks(now: now), waiting: planTasks(now: now), fairShare: fairShare)
    }

    private func view(_ record: TaskRecord, now: Timestamp, forecast: [Int64: (start: Timestamp, end: Timestamp)]) -> TaskView {
        let (duration, basis) = predict(record.spec)
        var view = TaskView(record: record, now: now, predicted: duration, basis: basis)
        if record.state == .queued {
            view.reason = passPositions[record.id].flatMap { lastPass.waits[$0] } ?? (drained ? .drained : nil)
            if let position = passPositions[record.id], position < lastPass.priorities.count {
                view.priorityBreakdown = lastPass.priorities[position]
            }
            if let planned = forecast[record.id] {
                view.estimatedStart = planned.start
                view.estimatedEnd = planned.end
            }
        } else if record.state.isActive {
            let planned = plannedDurations[record.id] ?? duration
            view.estimatedEnd = ActiveTask.expectedEnd(started: record.started ?? now, planned: planned, now: now,
                                                       paused: record.pausedTotal + (record.pausedAt.map { now - $0 } ?? 0))
            view.costPerHour = options.costs.ratePerHour(shares: shares(of: record).map { ($0.model, $0.fraction, $0.watts) }, at: now)
            if record.state == .paused { view.note = "stopped with SIGSTOP; its GPU memory stays reserved" }
            if let termination = terminating[record.id] { view.note = "stopping: \(termination.reason)" }
        }
        return view
    }

    // MARK: Facts for recommendations, indicators and reports

    /// Every task kept in memory (unfinished, and finished within `keepFinished`) that is unfinished or
    /// ended at or after `since`, oldest first, with the median run time of similar tasks. `forecast`
    /// adds estimated ends for queued tasks (a queue simulation, so only when asked).
    public func facts(since: Timestamp, forecast: Bool = false) -> [TaskFacts] {
        lock.withLock {
            let now = clock.now()
            let ends = forecast ? forecastLocked(now: now) : [:]
            let selected = tasks.values.filter { !$0.state.isFinished || ($0.ended ?? 0) >= since }.sorted { $0.id < $1.id }
            return TaskFacts.withSimilar(selected.map { record in
                var facts = Self.facts(record, now: now, model: record.gpuIndices.first.flatMap { index in gpus.first { $0.index == index }?.model })
                if record.state.isActive {
                    let planned = plannedDurations[record.id] ?? predict(record.spec).0
                    facts.estimatedEnd = ActiveTask.expectedEnd(started: record.started ?? now, planned: planned, now: now,
                                                                paused: record.pausedTotal + (record.pausedAt.map { now - $0 } ?? 0))
                } else if let planned = ends[record.id] {
                    facts.estimatedEnd = planned.end
                }
                return facts
            })
        }
    }

    static func facts(_ record: TaskRecord, now: Timestamp, model: String?) -> TaskFacts {
        let run = record.runTime(at: now)
        let waitEnd = record.started ?? record.ended ?? now
        return TaskFacts(
            id: record.id, name: record.displayName, owner: record.spec.owner, kind: record.spec.predictionKey,
            state: record.state.rawValue, priority: record.spec.priority.value, offPeak: record.spec.offPeak, gpus: record.spec.gpus,
            gpuIndices: record.gpuIndices, gpuModel: model, gpuMemoryDeclared: record.spec.gpuMemory, gpuMemoryPeak: record.peakGPUMemory,
            meanUtilization: record.meanUtilization, submitted: record.submitted, started: record.started, ended: record.ended,
            runSeconds: Double(run) / 1000, waitSeconds: Double(max(0, waitEnd - record.submitted)) / 1000,
            gpuHours: Double(record.spec.gpus) * Double(run) / 3_600_000, cost: record.cost, offPeakCost: record.offPeakCost ?? 0,
            timeLimitSeconds: record.spec.timeLimit.map { Double($0) / 1000 })
    }

    /// The GPUs as the last tick saw them, with the tasks on each and when a task last held it.
    public func gpuFacts() -> [GPUFacts] {
        lock.withLock {
            gpus.map { gpu in
                let holders = tasks.values.filter { $0.gpuIndices.contains(gpu.index) }
                return GPUFacts(gpu: String(gpu.index), uuid: gpu.uuid, model: gpu.model, pricePerHour: gpu.pricePerHour,
                                memoryTotal: gpu.memoryTotal, tasks: holders.filter(\.state.isActive).count,
                                lastTaskEnded: holders.compactMap(\.ended).max())
            }
        }
    }

    public var pricing: PricingFacts {
        PricingFacts(currency: options.costs.currency, defaultGPUHour: options.costs.defaultGPUHour, kwh: options.costs.kwh,
                     offPeakFactor: options.costs.offPeakFactor, hasOffPeak: !options.costs.offPeak.isEmpty)
    }

    /// Cost rows by day, owner, task and GPU from `since`'s day on (what has accrued so far included).
    public func costShares(since: Timestamp) throws -> [CostShareRow] {
        try lock.withLock {
            try flush()
            return try database.costShares(since: Self.day(since))
        }
    }

    /// Replays the GPU tasks submitted since `since` that ran (with their real run times) through the
    /// simulator on this host's GPUs, under the live policy or with its strategy and backfill replaced.
    /// The built-in score places them (a policy's Lua score runs only on the allocator's own passes).
    public func replay(since: Timestamp, strategy: Policy.Strategy?, backfill: Bool?) -> ReplayFacts {
        let (jobs, slots, policy) = lock.withLock { () -> ([TraceJob], [GPUSlot], Policy) in
            let now = clock.now()
            let jobs = tasks.values.filter { $0.spec.gpus > 0 && $0.submitted >= since && $0.started != nil && $0.state.isFinished }
                .map { TraceJob(id: $0.id, gpus: $0.spec.gpus, submit: $0.submitted, duration: max(1000, $0.runTime(at: now)),
                                kind: $0.spec.predictionKey, owner: $0.spec.owner) }
            return (jobs, gpus, policyScript.policy)
        }
        var chosen = policy
        if let strategy { chosen.strategy = strategy }
        if let backfill { chosen.backfill = backfill }
        var simulator = Simulator(gpuCount: max(1, slots.count), costs: options.costs)
        if !slots.isEmpty { simulator.gpus = slots.map { GPUSlot(index: $0.index, uuid: $0.uuid, model: $0.model, memoryTotal: $0.memoryTotal) } }
        var scorer = NoScorer()
        let report = simulator.run(jobs, policy: chosen, name: chosen.strategy.rawValue, scorer: &scorer)
        let meanDuration = jobs.isEmpty ? 0 : jobs.reduce(0.0) { $0 + Double($1.duration) / 1000 } / Double(jobs.count)
        return ReplayFacts(strategy: chosen.strategy.rawValue, backfill: chosen.backfill, jobs: report.jobs,
                           meanJCTSeconds: report.averageJCT, meanWaitSeconds: max(0, report.averageJCT - meanDuration),
                           p95WaitSeconds: report.p95Wait, utilization: report.utilization, makespanSeconds: report.makespan)
    }

    /// The task's stdout or stderr, the last `limit` bytes.
    public func log(_ id: Int64, stream: String, limit: Int = 1 << 20) throws -> String {
        guard stream == "stdout" || stream == "stderr" else { throw AllocatorError(.invalid, "stream must be stdout or stderr") }
        _ = try task(id)
        let path = (TaskProcess.folder(logs: options.logs, id: id) as NSString).appendingPathComponent(stream)
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > UInt64(limit) ? size - UInt64(limit) : 0)
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }

    // MARK: Metrics

    private func describeMetrics() {
        store.describe("vigil_allocator_tasks", kind: .gauge, help: "Tasks by state (queued, running, paused…).")
        store.describe("vigil_allocator_waiting_tasks", kind: .gauge, help: "Queued tasks by the reason they wait.")
        store.describe("vigil_allocator_oldest_wait_seconds", kind: .gauge, help: "How long the oldest queued task has waited.")
        store.describe("vigil_allocator_reserved_gpu_memory_bytes", kind: .gauge, help: "GPU memory the ledger has promised to tasks, per GPU.")
        store.describe("vigil_allocator_foreign_gpu_memory_bytes", kind: .gauge, help: "GPU memory used by processes Vigil did not start, per GPU.")
        store.describe("vigil_allocator_gpu_tasks", kind: .gauge, help: "Tasks holding the GPU.")
        store.describe("vigil_allocator_cost_per_hour", kind: .gauge, help: "What the running and paused tasks cost per hour now.")
        store.describe("vigil_allocator_owner_cost", kind: .gauge, help: "Cost of the owner's tasks that ran in the last 30 days, running ones included.")
        store.describe("vigil_allocator_pass_seconds", kind: .gauge, help: "Duration of the last scheduling pass, Lua included.")
        store.describe("vigil_allocator_passes_total", kind: .counter, help: "Scheduling passes.")
        store.describe("vigil_allocator_drained", kind: .gauge, help: "1 while drained (nothing new starts).")
        store.describe("vigil_allocator_policy_ok", kind: .gauge, help: "1 when the policy script loaded and its last score call worked.")
    }

    private func publish(now: Timestamp) {
        func put(_ name: String, _ labels: [String: String], _ value: Double) {
            _ = store.append(Labels(name: name, labels), now, value)
        }
        func put(_ name: String, _ value: Double) { put(name, [:], value) }
        // One walk over the tasks for the counts, the oldest wait and the cost by owner.
        var states: [TaskState: Int] = [:]
        var oldest: Timestamp?
        var owners: [String: Double] = [:]
        for index in tasks.values.indices {
            let state = tasks.values[index].state
            states[state, default: 0] += 1
            if state == .queued { oldest = min(oldest ?? .max, tasks.values[index].submitted) }
            if tasks.values[index].started != nil { owners[tasks.values[index].spec.owner, default: 0] += tasks.values[index].cost }
        }
        for state in TaskState.allCases where !state.isFinished || states[state] != nil {
            put("vigil_allocator_tasks", ["state": state.rawValue], Double(states[state] ?? 0))
        }
        var reasons: [WaitReason: Int] = [:]
        for (id, reason) in zip(lastPass.order, lastPass.waits) where reason != nil && tasks[id]?.state == .queued {
            reasons[reason!, default: 0] += 1
        }
        for reason in [WaitReason.priority, .resources, .dependency, .beginTime, .batchWindow, .costLimit, .drained] {
            put("vigil_allocator_waiting_tasks", ["reason": reason.rawValue], Double(reasons[reason] ?? 0))
        }
        put("vigil_allocator_oldest_wait_seconds", Double(oldest.map { now - $0 } ?? 0) / 1000)
        let ledger = Planner(policy: policyScript.policy, gpus: gpus).ledger(active: activeTasks(now: now))
        for (i, gpu) in gpus.enumerated() {
            let labels = ["gpu": String(gpu.index), "uuid": gpu.uuid]
            put("vigil_allocator_reserved_gpu_memory_bytes", labels, Double(ledger.reserved[i]))
            put("vigil_allocator_foreign_gpu_memory_bytes", labels, Double(gpu.foreignMemory))
            put("vigil_allocator_gpu_tasks", labels, Double(ledger.tasks[i]))
        }
        put("vigil_allocator_cost_per_hour", costPerHour(now: now))
        for (owner, cost) in owners { put("vigil_allocator_owner_cost", ["owner": owner], cost) }
        put("vigil_allocator_pass_seconds", lastPassSeconds)
        put("vigil_allocator_passes_total", Double(passes))
        put("vigil_allocator_drained", drained ? 1 : 0)
        put("vigil_allocator_policy_ok", policyScript.lastError == nil ? 1 : 0)
    }
}

/// Writes submitted tasks: one thread takes every row waiting and commits them in one transaction,
/// then resumes their submitters.
final class SubmitWriter: @unchecked Sendable {
    private let condition = NSCondition()
    private var waiting: [([TaskRow], CheckedContinuation<Void, any Error>)] = []
    private let database: StateDatabase

    private var stopped = false

    init(database: StateDatabase) {
        self.database = database
        let thread = Thread { [weak self] in
            while let self, self.drain() {}
        }
        thread.name = "vigil-submit-writer"
        thread.start()
    }

    /// Ends the thread once nothing waits (the allocator is going away).
    func stop() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    func enqueue(_ rows: [TaskRow], _ continuation: CheckedContinuation<Void, any Error>) {
        condition.withLock {
            waiting.append((rows, continuation))
            condition.signal()
        }
    }

    /// Writes one batch; false once stopped with nothing left to write.
    private func drain() -> Bool {
        let batch: [([TaskRow], CheckedContinuation<Void, any Error>)] = condition.withLock {
            while waiting.isEmpty && !stopped { condition.wait() }
            defer { waiting.removeAll(keepingCapacity: true) }
            return waiting
        }
        if batch.isEmpty { return false }
        do {
            try database.saveTasks(batch.flatMap(\.0))
            for (_, continuation) in batch { continuation.resume() }
        } catch {
            let failure = StateDatabase.isStorageFull(error)
                ? AllocatorError(.storageFull, "cannot save the task: the disk of the daemon's data folder is full")
                : AllocatorError(.unavailable, "cannot save the task: \(error)")
            for (_, continuation) in batch { continuation.resume(throwing: failure) }
        }
        return true
    }
}

/// A task as the API and the CLI show it.
public struct TaskView: Codable, Sendable {
    public var record: TaskRecord
    /// Slurm-style pending reason, for queued tasks.
    public var reason: WaitReason?
    public var priorityBreakdown: PriorityBreakdown?
    public var predictedDuration: Int64
    public var predictionBasis: DurationHistory.Basis
    public var estimatedStart: Timestamp?
    public var estimatedEnd: Timestamp?
    public var costPerHour: Double?
    public var runTime: Int64
    public var note: String?

    init(record: TaskRecord, now: Timestamp, predicted: Int64, basis: DurationHistory.Basis) {
        self.record = record
        predictedDuration = predicted
        predictionBasis = basis
        runTime = record.runTime(at: now)
    }

    enum CodingKeys: String, CodingKey {
        case record = "task", reason, priorityBreakdown = "priority_breakdown", predictedDuration = "predicted_duration_ms"
        case predictionBasis = "prediction_basis", estimatedStart = "estimated_start", estimatedEnd = "estimated_end"
        case costPerHour = "cost_per_hour", runTime = "run_time_ms", note
    }
}

public struct QueueView: Codable, Sendable {
    public struct PolicyView: Codable, Sendable {
        public var file: String
        public var strategy: String
        public var target: String
        public var speed: Double
        public var efficiency: Double
        public var reliability: Double
        public var tasksPerGPU: Int
        public var customScore: Bool
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case file, strategy, target, speed, efficiency, reliability, tasksPerGPU = "tasks_per_gpu", customScore = "custom_score", error
        }
    }

    public struct GPUView: Codable, Sendable {
        public var index: Int
        public var uuid: String
        public var model: String
        public var memoryTotal: Int64
        public var reserved: Int64
        public var foreign: Int64
        public var tasks: [Int64]

        enum CodingKeys: String, CodingKey {
            case index, uuid, model, memoryTotal = "memory_total", reserved, foreign, tasks
        }
    }

    public var drained: Bool
    public var waiting: [TaskView]
    public var active: [TaskView]
    public var reservation: Reservation?
    public var costPerHour: Double
    /// What tasks have cost since local midnight.
    public var costToday: Double
    public var currency: String
    public var policy: PolicyView
    public var gpus: [GPUView]
    public var lastPassSeconds: Double

    enum CodingKeys: String, CodingKey {
        case drained, waiting, active, reservation, costPerHour = "cost_per_hour", costToday = "cost_today", currency, policy, gpus
        case lastPassSeconds = "last_pass_seconds"
    }
}

