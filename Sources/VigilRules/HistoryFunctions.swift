import Foundation
import VigilCore
import VigilLua

/// `vigil.history`: the allocator's tasks, the GPUs with their prices, cost settings, stored benchmark
/// results, and replays of recent tasks through the simulator. Where no allocator is wired (`vigil eval`,
/// unit tests of alert rules) the lists are empty and `pricing` and `replay` return nil.
enum HistoryFunctions {
    static let names = ["tasks", "gpus", "pricing", "benchmarks", "replay"]

    static func table(_ source: (any HistorySource)?, clock: any WallClock) -> LuaValue {
        var table: [LuaValue: LuaValue] = [:]
        func add(_ name: String, _ body: @escaping (LuaArguments) throws -> [LuaValue]) {
            table[.string(name)] = .hostFunction(LuaHostFunction(name, body))
        }
        /// `since` of an options table: a duration back from now (default `fallback`).
        func since(_ args: LuaArguments, _ options: LuaValue?, default fallback: Int64) throws -> Timestamp {
            let value = options?["since"] ?? .nil
            if value.isNil { return clock.now() - fallback }
            if let seconds = value.doubleValue, seconds > 0, let ms = Bounds.milliseconds(seconds: seconds) { return clock.now() - ms }
            if let text = value.stringValue, let ms = DurationParser.milliseconds(text), ms > 0 { return clock.now() - ms }
            throw args.badArgument(0, "since must be a duration such as \"7d\" (\(Bounds.durationRange)), got \(LuaFormat.describe(value))")
        }
        func text(_ args: LuaArguments, _ options: LuaValue?, _ key: String) throws -> String? {
            let value = options?[key] ?? .nil
            if value.isNil { return nil }
            guard let text = value.stringValue ?? value.intValue.map({ String($0) }) else {
                throw args.badArgument(0, "\(key) must be a string")
            }
            return text
        }
        add("tasks") { args in
            let options = try args.optionalTable(0)
            try checkKeys(args, options, ["since", "state", "owner", "kind", "limit"])
            let from = try since(args, options, default: 7 * 86_400_000)
            let state = try text(args, options, "state"), owner = try text(args, options, "owner"), kind = try text(args, options, "kind")
            // A task is a table of about 2 KiB in Lua: the newest `limit` keep a script within its memory cap.
            let limitValue = options?["limit"] ?? .nil
            guard limitValue.isNil || (1...1_000_000).contains(limitValue.intValue ?? 0) else {
                throw args.badArgument(0, "limit must be a whole number from 1 to 1000000")
            }
            let limit = Int(limitValue.intValue ?? 1000)
            let tasks = (source?.tasks(since: from) ?? []).filter { task in
                (state == nil || task.state == state || (state == "finished" && task.isFinished) || (state == "active" && task.isActive))
                    && (owner == nil || task.owner == owner) && (kind == nil || task.kind == kind)
            }.suffix(limit)
            return [.array(tasks.map(LuaValue.encoding))]
        }
        add("gpus") { _ in [.array((source?.gpus() ?? []).map(LuaValue.encoding))] }
        add("pricing") { _ in [source.map { LuaValue.encoding($0.pricing()) } ?? .nil] }
        add("benchmarks") { args in
            let options = try args.optionalTable(0)
            try checkKeys(args, options, ["since", "name"])
            let from = try since(args, options, default: 30 * 86_400_000)
            let name = try text(args, options, "name")
            let results = (source?.benchmarks(since: from) ?? []).filter { name == nil || $0.name == name }
            return [.array(results.map(LuaValue.encoding))]
        }
        add("replay") { args in
            let options = try args.optionalTable(0)
            try checkKeys(args, options, ["since", "strategy", "backfill"])
            let from = try since(args, options, default: 7 * 86_400_000)
            let strategy = try text(args, options, "strategy")
            let backfillValue = options?["backfill"] ?? .nil
            guard backfillValue.isNil || backfillValue == .boolean(true) || backfillValue == .boolean(false) else {
                throw args.badArgument(0, "backfill must be true or false")
            }
            guard let source else { return [.nil] }
            do {
                let facts = try source.replay(since: from, strategy: strategy, backfill: backfillValue.isNil ? nil : backfillValue.isTruthy)
                return [LuaValue.encoding(facts)]
            } catch {
                throw LuaHostError("vigil.history.replay: \(error)")
            }
        }
        return .table(table)
    }

    private static func checkKeys(_ args: LuaArguments, _ options: LuaValue?, _ known: [String]) throws {
        for key in options?.tableValue?.keys ?? [:].keys {
            guard let name = key.stringValue, known.contains(name) else {
                throw args.badArgument(0, "unknown option \(LuaFormat.describe(key)) (known: \(known.joined(separator: ", ")))")
            }
        }
    }
}
