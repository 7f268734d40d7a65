import Foundation
import VigilState

/// Benchmark runs kept in the state database, and the comparisons built on them.
public struct BenchHistory: Sendable {
    public let database: StateDatabase

    public init(database: StateDatabase) {
        self.database = database
    }

    public func save(_ run: BenchRun) throws {
        try database.saveBenchRun(BenchRunRecord(id: run.id, time: run.time, host: run.facts.hostname, quick: run.quick,
                                                 run: try Self.encode(run)))
    }

    /// Runs of `host` (all hosts when nil), newest first.
    public func runs(host: String? = nil, limit: Int = 100) throws -> [BenchRun] {
        try database.benchRuns(host: host, limit: limit).compactMap { try? JSONDecoder().decode(BenchRun.self, from: Data($0.run.utf8)) }
    }

    /// Earlier figures of one benchmark on this host, oldest first, from runs of the same kind (quick or full).
    public func values(_ name: String, host: String, quick: Bool, before time: Int64 = .max, limit: Int = 20) throws -> [Double] {
        try runs(host: host, limit: 200).filter { $0.quick == quick && $0.time < time }.prefix(limit).reversed().compactMap { run in
            run.results.first { $0.name == name && $0.skipped == nil }?.value
        }
    }

    /// The best figure this host has reached for `name` (highest, or lowest for latencies).
    public func best(_ name: String, host: String) -> Double? {
        guard let runs = try? runs(host: host, limit: 200) else { return nil }
        let results = runs.compactMap { $0.results.first { $0.name == name && $0.skipped == nil && $0.value > 0 } }
        guard let first = results.first else { return nil }
        return first.higherIsBetter ? results.map(\.value).max() : results.map(\.value).min()
    }

    /// Each result of `run` judged against this host's earlier runs.
    public func verdicts(for run: BenchRun) throws -> [String: BenchStatistics.Verdict] {
        var out: [String: BenchStatistics.Verdict] = [:]
        for result in run.results where result.skipped == nil {
            let history = try values(result.name, host: run.facts.hostname, quick: run.quick, before: run.time)
            out[result.name] = BenchStatistics.verdict(value: result.value, history: history, higherIsBetter: result.higherIsBetter)
        }
        return out
    }

    /// What `vigil bench export` writes and `compare --with` reads: the host's facts and its runs.
    public struct Export: Codable, Sendable {
        public var format = "vigil-bench-export/1"
        public var facts: HostFacts
        public var runs: [BenchRun]

        public init(facts: HostFacts, runs: [BenchRun]) {
            self.facts = facts
            self.runs = runs
        }
    }

    public static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
