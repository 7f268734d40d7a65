import Foundation
import GRDB
import VigilCore

/// The daemon's SQLite database (`<data_dir>/vigil.sqlite`, WAL mode so the CLI may read and write
/// while the daemon runs). Migrations are applied on open; every table is created by them.
public final class StateDatabase: Sendable {
    /// Whether `error` says the disk (or the database's quota) is full: SQLite's SQLITE_FULL, or ENOSPC / EDQUOT.
    /// The API answers those 507 Insufficient Storage: nothing is wrong with the request.
    public static func isStorageFull(_ error: any Error) -> Bool {
        if let error = error as? DatabaseError { return error.resultCode == .SQLITE_FULL }
        if let error = error as? POSIXError { return error.code == .ENOSPC || error.code == .EDQUOT }
        let cocoa = error as NSError
        if let underlying = cocoa.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return underlying.code == Int(ENOSPC) || underlying.code == Int(EDQUOT)
        }
        return false
    }

    public let path: String
    let pool: DatabasePool

    /// Opens (creating the folder and file when missing) and migrates the database at `path`.
    public init(path: String) throws {
        self.path = path
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // In WAL mode NORMAL loses nothing when the process dies (kill -9), only on power loss, and
        // spares an fsync per commit.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw VigilError(.io, "cannot open the state database: \(error)", location: path)
        }
    }

    /// The database in `dataDirectory`.
    public convenience init(dataDirectory: String) throws {
        try self.init(path: (dataDirectory as NSString).appendingPathComponent("vigil.sqlite"))
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("alerts-v1") { db in
            try db.create(table: "silence") { t in
                t.primaryKey("id", .text)
                t.column("matchers", .text).notNull()
                t.column("startsAt", .integer).notNull()
                t.column("endsAt", .integer).notNull()
                t.column("createdBy", .text).notNull()
                t.column("comment", .text).notNull()
                t.column("createdAt", .integer).notNull()
            }
            try db.create(table: "alertState") { t in
                t.column("rule", .text).notNull()
                t.column("fingerprint", .text).notNull()
                t.column("labels", .text).notNull()
                t.column("state", .text).notNull()
                t.column("level", .integer).notNull()
                t.column("value", .double).notNull()
                t.column("activeAt", .integer).notNull()
                t.column("firedAt", .integer)
                t.column("keepSince", .integer)
                t.column("lastSentAt", .integer)
                t.column("flapping", .boolean).notNull()
                t.column("history", .text).notNull()
                t.column("savedAt", .integer).notNull()
                t.primaryKey(["rule", "fingerprint"])
            }
            try db.create(table: "alertHistory") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .integer).notNull().indexed()
                t.column("rule", .text).notNull()
                t.column("fingerprint", .text).notNull()
                t.column("labels", .text).notNull()
                t.column("fromState", .text).notNull()
                t.column("toState", .text).notNull()
                t.column("value", .double).notNull()
            }
        }
        migrator.registerMigration("tasks-v1") { db in
            try db.create(table: "task") { t in
                t.primaryKey("id", .integer)
                t.column("state", .text).notNull().indexed()
                t.column("owner", .text).notNull()
                t.column("submitted", .integer).notNull()
                t.column("ended", .integer).indexed()
                t.column("record", .text).notNull()
            }
            try db.create(table: "setting") { t in
                t.primaryKey("key", .text)
                t.column("value", .text).notNull()
            }
        }
        migrator.registerMigration("task-costs-v1") { db in
            try db.create(table: "costDay") { t in
                t.column("day", .text).notNull()
                t.column("owner", .text).notNull()
                t.column("cost", .double).notNull()
                t.column("gpuSeconds", .double).notNull()
                t.primaryKey(["day", "owner"])
            }
        }
        migrator.registerMigration("bench-v1") { db in
            try db.create(table: "benchRun") { t in
                t.primaryKey("id", .text)
                t.column("time", .integer).notNull().indexed()
                t.column("host", .text).notNull()
                t.column("quick", .boolean).notNull()
                t.column("run", .text).notNull()
            }
        }
        migrator.registerMigration("cost-shares-v1") { db in
            // Cost by day, owner, task and GPU ("" for CPU-only tasks, and for totals carried over from
            // costDay, which had no finer split): per-owner, per-task and per-GPU reports add up the same rows.
            try db.create(table: "costShare") { t in
                t.column("day", .text).notNull()
                t.column("owner", .text).notNull()
                t.column("task", .integer).notNull()
                t.column("gpu", .text).notNull()
                t.column("cost", .double).notNull()
                t.column("gpuSeconds", .double).notNull()
                t.primaryKey(["day", "owner", "task", "gpu"])
            }
            try db.execute(sql: "INSERT INTO costShare SELECT day, owner, 0, '', cost, gpuSeconds FROM costDay")
            try db.drop(table: "costDay")
        }
        migrator.registerMigration("recommendations-v1") { db in
            try db.create(table: "recommendation") { t in
                t.column("rule", .text).notNull()
                t.column("fingerprint", .text).notNull()
                t.column("record", .text).notNull()
                t.column("firstSeen", .integer).notNull()
                t.column("lastSeen", .integer).notNull()
                t.column("expiredAt", .integer).indexed()
                t.primaryKey(["rule", "fingerprint"])
            }
        }
        return migrator
    }

    // MARK: Tasks

    /// Inserts or replaces tasks, all in one transaction (the allocator writes a state before acting on it).
    public func saveTasks(_ tasks: [TaskRow]) throws {
        guard !tasks.isEmpty else { return }
        try pool.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO task (id, state, owner, submitted, ended, record) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET state = excluded.state, owner = excluded.owner, submitted = excluded.submitted,
                ended = excluded.ended, record = excluded.record
                """)
            for task in tasks {
                try statement.execute(arguments: [task.id, task.state, task.owner, task.submitted, task.ended, task.record])
            }
        }
    }

    /// Tasks not finished, and finished ones that ended at or after `endedSince`, by id.
    public func tasks(endedSince: Timestamp) throws -> [TaskRow] {
        try pool.read { db in
            try TaskRow.filter(Column("ended") == nil || Column("ended") >= endedSince).order(Column("id")).fetchAll(db)
        }
    }

    public func task(id: Int64) throws -> TaskRow? {
        try pool.read { db in try TaskRow.fetchOne(db, key: id) }
    }

    /// The highest task id ever given (ids are never reused).
    public func maxTaskID() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM task") ?? 0 }
    }

    /// Adds cost and GPU-seconds to (local day, owner, task, GPU) totals, in one transaction.
    public func addCosts(_ increments: [CostShareRow]) throws {
        guard !increments.isEmpty else { return }
        try pool.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO costShare (day, owner, task, gpu, cost, gpuSeconds) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(day, owner, task, gpu) DO UPDATE SET cost = cost + excluded.cost, gpuSeconds = gpuSeconds + excluded.gpuSeconds
                """)
            for row in increments {
                try statement.execute(arguments: [row.day, row.owner, row.task, row.gpu, row.cost, row.gpuSeconds])
            }
        }
    }

    /// Totals per day and owner from `day` (YYYY-MM-DD, local) on, oldest first.
    public func costs(since day: String) throws -> [CostDayRow] {
        try pool.read { db in
            try CostDayRow.fetchAll(db, sql: """
                SELECT day, owner, SUM(cost) AS cost, SUM(gpuSeconds) AS gpuSeconds FROM costShare
                WHERE day >= ? GROUP BY day, owner ORDER BY day, owner
                """, arguments: [day])
        }
    }

    /// Every (day, owner, task, GPU) row from `day` on, oldest first.
    public func costShares(since day: String) throws -> [CostShareRow] {
        try pool.read { db in
            try CostShareRow.filter(Column("day") >= day).order(Column("day"), Column("owner"), Column("task"), Column("gpu")).fetchAll(db)
        }
    }

    public func setting(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [key]) }
    }

    public func setSetting(_ key: String, _ value: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO setting(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           arguments: [key, value])
        }
    }

    // MARK: Recommendations

    /// Writes recommendations (new, still holding, or expired), in one transaction.
    public func saveRecommendations(_ rows: [RecommendationRow]) throws {
        guard !rows.isEmpty else { return }
        try pool.write { db in
            for row in rows { try row.save(db) }
        }
    }

    /// Active recommendations, and expired ones whose expiry is at or after `expiredSince`.
    public func recommendations(expiredSince: Timestamp = .max) throws -> [RecommendationRow] {
        try pool.read { db in
            try RecommendationRow.filter(Column("expiredAt") == nil || Column("expiredAt") >= expiredSince)
                .order(Column("firstSeen")).fetchAll(db)
        }
    }

    /// Deletes recommendations that expired before `time`; returns how many.
    public func pruneRecommendations(expiredBefore time: Timestamp) throws -> Int {
        try pool.write { db in
            try RecommendationRow.filter(Column("expiredAt") != nil && Column("expiredAt") < time).deleteAll(db)
        }
    }

    // MARK: Benchmark runs

    /// Saves one `vigil bench` run (its JSON, with the host's facts).
    public func saveBenchRun(_ record: BenchRunRecord) throws {
        try pool.write { db in try record.save(db) }
    }

    /// Runs, newest first; `host` limits them to one host's.
    public func benchRuns(host: String? = nil, limit: Int = 100) throws -> [BenchRunRecord] {
        try pool.read { db in
            var request = BenchRunRecord.order(Column("time").desc).limit(limit)
            if let host { request = request.filter(Column("host") == host) }
            return try request.fetchAll(db)
        }
    }

    // MARK: Silences

    public func saveSilence(_ silence: SilenceRecord) throws {
        try pool.write { db in try silence.save(db) }
    }

    /// Every silence, newest first; expired ones too unless `activeAt` is given.
    public func silences(activeAt time: Timestamp? = nil) throws -> [SilenceRecord] {
        try pool.read { db in
            var request = SilenceRecord.order(Column("createdAt").desc)
            if let time { request = request.filter(Column("startsAt") <= time && Column("endsAt") > time) }
            return try request.fetchAll(db)
        }
    }

    /// Expires a silence now (as Alertmanager does: it stays listed, ended). False when unknown.
    @discardableResult
    public func expireSilence(id: String, at time: Timestamp) throws -> Bool {
        try pool.write { db in
            guard var silence = try SilenceRecord.fetchOne(db, key: id) else { return false }
            if silence.endsAt > time { silence.endsAt = max(time, silence.startsAt) }
            try silence.update(db)
            return true
        }
    }

    /// The ids that begin with `prefix` (so users can type the first characters, as with git).
    public func silenceIDs(prefix: String) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM silence WHERE id LIKE ? ESCAPE '\\'",
                                arguments: [prefix.replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"])
        }
    }

    // MARK: Alert states and history

    /// Replaces the stored states of the instances in `changed` and deletes those in `removed`,
    /// appending `history`, in one transaction.
    public func saveAlerts(changed: [AlertStateRecord], removed: [(rule: String, fingerprint: String)],
                           history: [AlertHistoryRecord]) throws {
        guard !changed.isEmpty || !removed.isEmpty || !history.isEmpty else { return }
        try pool.write { db in
            for record in changed { try record.save(db) }
            for key in removed {
                try AlertStateRecord.deleteOne(db, key: ["rule": key.rule, "fingerprint": key.fingerprint])
            }
            for var entry in history { try entry.insert(db) }
        }
    }

    public func alertStates() throws -> [AlertStateRecord] {
        try pool.read { db in try AlertStateRecord.fetchAll(db) }
    }

    /// History, newest first.
    public func alertHistory(limit: Int = 100, rule: String? = nil) throws -> [AlertHistoryRecord] {
        try pool.read { db in
            var request = AlertHistoryRecord.order(Column("id").desc).limit(limit)
            if let rule { request = request.filter(Column("rule") == rule) }
            return try request.fetchAll(db)
        }
    }

    /// Deletes history older than `time`; returns how many rows went.
    @discardableResult
    public func pruneHistory(before time: Timestamp) throws -> Int {
        try pool.write { db in try AlertHistoryRecord.filter(Column("time") < time).deleteAll(db) }
    }
}

/// A silence: alerts whose labels match every matcher are muted between `startsAt` and `endsAt`.
/// `matchers` is PromQL-style text, for example `alertname="GpuTooHot",gpu=~"0|1"`.
public struct SilenceRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "silence"
    public var id: String
    public var matchers: String
    public var startsAt: Timestamp
    public var endsAt: Timestamp
    public var createdBy: String
    public var comment: String
    public var createdAt: Timestamp

    public init(id: String = UUID().uuidString.lowercased(), matchers: String, startsAt: Timestamp, endsAt: Timestamp,
                createdBy: String, comment: String, createdAt: Timestamp) {
        self.id = id
        self.matchers = matchers
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.createdBy = createdBy
        self.comment = comment
        self.createdAt = createdAt
    }
}

/// One alert instance's state, as the rule engine restores it after a restart.
public struct AlertStateRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "alertState"
    public var rule: String
    public var fingerprint: String
    /// The instance's labels as a JSON object.
    public var labels: String
    /// `pending` or `firing`.
    public var state: String
    public var level: Int
    public var value: Double
    public var activeAt: Timestamp
    public var firedAt: Timestamp?
    public var keepSince: Timestamp?
    public var lastSentAt: Timestamp?
    public var flapping: Bool
    /// Recent levels for flapping detection, as a JSON array.
    public var history: String
    public var savedAt: Timestamp

    public init(rule: String, fingerprint: String, labels: String, state: String, level: Int, value: Double,
                activeAt: Timestamp, firedAt: Timestamp?, keepSince: Timestamp?, lastSentAt: Timestamp?,
                flapping: Bool, history: String, savedAt: Timestamp) {
        self.rule = rule
        self.fingerprint = fingerprint
        self.labels = labels
        self.state = state
        self.level = level
        self.value = value
        self.activeAt = activeAt
        self.firedAt = firedAt
        self.keepSince = keepSince
        self.lastSentAt = lastSentAt
        self.flapping = flapping
        self.history = history
        self.savedAt = savedAt
    }
}

/// A state change of an alert instance.
public struct AlertHistoryRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "alertHistory"
    public var id: Int64?
    public var time: Timestamp
    public var rule: String
    public var fingerprint: String
    public var labels: String
    public var fromState: String
    public var toState: String
    public var value: Double

    public init(time: Timestamp, rule: String, fingerprint: String, labels: String, fromState: String, toState: String, value: Double) {
        self.time = time
        self.rule = rule
        self.fingerprint = fingerprint
        self.labels = labels
        self.fromState = fromState
        self.toState = toState
        self.value = value
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A benchmark run as stored: the searchable fields, and the whole run as JSON.
public struct BenchRunRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "benchRun"
    public var id: String
    public var time: Timestamp
    public var host: String
    public var quick: Bool
    public var run: String

    public init(id: String, time: Timestamp, host: String, quick: Bool, run: String) {
        self.id = id
        self.time = time
        self.host = host
        self.quick = quick
        self.run = run
    }
}

/// A task as stored: the searchable fields, and the whole record as JSON (VigilAllocator's `TaskRecord`).
public struct TaskRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "task"
    public var id: Int64
    public var state: String
    public var owner: String
    public var submitted: Timestamp
    public var ended: Timestamp?
    public var record: String

    public init(id: Int64, state: String, owner: String, submitted: Timestamp, ended: Timestamp?, record: String) {
        self.id = id
        self.state = state
        self.owner = owner
        self.submitted = submitted
        self.ended = ended
        self.record = record
    }
}

/// What one task cost on one GPU on one local day (`gpu` is "" for CPU-only tasks; `task` 0 for totals
/// kept before costs were split by task).
public struct CostShareRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "costShare"
    public var day: String
    public var owner: String
    public var task: Int64
    public var gpu: String
    public var cost: Double
    public var gpuSeconds: Double

    public init(day: String, owner: String, task: Int64, gpu: String, cost: Double, gpuSeconds: Double) {
        self.day = day
        self.owner = owner
        self.task = task
        self.gpu = gpu
        self.cost = cost
        self.gpuSeconds = gpuSeconds
    }
}

/// A recommendation as stored: its key, its times, and the whole of it as JSON (VigilRules' `Recommendation`).
public struct RecommendationRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "recommendation"
    public var rule: String
    public var fingerprint: String
    public var record: String
    public var firstSeen: Timestamp
    public var lastSeen: Timestamp
    public var expiredAt: Timestamp?

    public init(rule: String, fingerprint: String, record: String, firstSeen: Timestamp, lastSeen: Timestamp, expiredAt: Timestamp?) {
        self.rule = rule
        self.fingerprint = fingerprint
        self.record = record
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.expiredAt = expiredAt
    }
}

/// What tasks cost on one local day for one owner.
public struct CostDayRow: Codable, Sendable, Equatable, FetchableRecord {
    public var day: String
    public var owner: String
    public var cost: Double
    public var gpuSeconds: Double

    public init(day: String, owner: String, cost: Double, gpuSeconds: Double) {
        self.day = day
        self.owner = owner
        self.cost = cost
        self.gpuSeconds = gpuSeconds
    }
}
