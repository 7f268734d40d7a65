import Foundation
import Hummingbird
import NIOCore
import VigilAllocator
import VigilCore
import VigilRules
import VigilState
import VigilStore

/// Metric queries, GPUs, rules, alerts and silences, and benchmarks: what the dashboard, `vigil alerts`,
/// `vigil silence` and `vigil rules` read and change.
public enum MonitorRoutes {
    static let queryParameters: [APIRoute.Parameter] = [
        .init(name: "query", description: "A series selector, as in scripts: gpu_utilization_ratio{gpu=\"0\"}", required: true),
        .init(name: "function", description: "A window function over each series, as vigil.query has them: "
              + QueryFunctions.windowFunctions.map(\.0).joined(separator: ", ") + ", quantile_over_time, predict_linear"),
        .init(name: "window", description: "The function's window, such as 5m (default 5m)"),
        .init(name: "q", description: "The quantile for quantile_over_time, 0…1", type: "number"),
        .init(name: "seconds", description: "How far ahead predict_linear looks", type: "number"),
        .init(name: "aggregate", description: "Then an aggregation across series: "
              + (QueryFunctions.aggregations.map(\.rawValue) + ["topk", "bottomk"]).joined(separator: ", ")),
        .init(name: "by", description: "Comma-separated labels the aggregation keeps"),
        .init(name: "without", description: "Comma-separated labels the aggregation drops"),
        .init(name: "k", description: "k for topk and bottomk", type: "integer"),
    ]

    static func add(to api: APIBuilder, store: MetricStore, clock: any WallClock, rules: RuleService?, allocator: Allocator?,
                    database: StateDatabase?, benchmarks: (@Sendable () throws -> Data)?) {
        api.get("/api/v1/query", "An instant query: the selector's latest values (or a window function of them), optionally aggregated",
                tag: "metrics", query: queryParameters + [.init(name: "time", description: "Unix seconds (default now)", type: "number")],
                returns: "{time, result: [{labels, value}]}") { request, _ in
            try await API.answer {
                let query = try MetricQuery(request)
                let time = try timestamp(request, "time") ?? clock.now()
                let reply: InstantReply = try await QueryWork.run {
                    try query.checkBudget(store, points: 1)
                    return InstantReply(time: Double(time) / 1000,
                                        result: query.evaluate(store, at: time).map { .init(labels: $0.labels.dictionary, value: $0.value) })
                }
                return (.ok, reply)
            }
        }
        api.get("/api/v1/query_range", "A range query: the same evaluated at every step", tag: "metrics",
                query: queryParameters + [
                    .init(name: "since", description: "Start this long before end, such as 15m (instead of start)"),
                    .init(name: "start", description: "Unix seconds", type: "number"),
                    .init(name: "end", description: "Unix seconds (default now)", type: "number"),
                    .init(name: "step", description: "Between points, such as 15s (default: the range ÷ 240, at least 1s)"),
                ],
                returns: "{start, end, step, result: [{labels, samples: [[unix seconds, value]]}]}") { request, _ in
            try await API.answer {
                let query = try MetricQuery(request)
                let end = try timestamp(request, "end") ?? clock.now()
                let start: Timestamp
                if request.uri.queryParameters.get("since") != nil {
                    start = end - (try API.duration(request, "since", default: ""))
                } else if let given = try timestamp(request, "start") {
                    start = given
                } else {
                    throw AllocatorError(.invalid, "say where the range starts: start (Unix seconds) or since (a duration such as 15m)")
                }
                guard start <= end else { throw AllocatorError(.invalid, "start is after end") }
                let step = request.uri.queryParameters.get("step") == nil
                    ? max(1000, (end - start) / 240) : try API.duration(request, "step", default: "")
                guard (end - start) / step < 11_000 else {
                    throw AllocatorError(.invalid, "that is over 11,000 points per series; make the step larger or the range shorter")
                }
                let reply: RangeReply = try await QueryWork.run {
                    try query.checkBudget(store, points: Int((end - start) / step) + 1)
                    let deadline = DispatchTime.now().uptimeNanoseconds + MetricQuery.deadlineNanoseconds
                    var series: [Labels: [[Double]]] = [:]
                    var t = start
                    while t <= end {
                        guard DispatchTime.now().uptimeNanoseconds < deadline else {
                            throw API.Failure(status: .serviceUnavailable, message: "the query ran past its deadline of "
                                + "\(MetricQuery.deadlineNanoseconds / 1_000_000_000) s; ask for fewer series, a shorter range or a larger step")
                        }
                        for sample in query.evaluate(store, at: t) { series[sample.labels, default: []].append([Double(t) / 1000, sample.value]) }
                        t += step
                    }
                    return RangeReply(start: Double(start) / 1000, end: Double(end) / 1000, step: Double(step) / 1000,
                                      result: series.sorted { $0.key < $1.key }.map { .init(labels: $0.key.dictionary, samples: $0.value) })
                }
                return (.ok, reply)
            }
        }
        api.get("/api/v1/metric_names", "The metric names in the store", tag: "metrics", returns: "{names: [string]}") { _, _ in
            API.json(["names": Set(store.snapshot(at: clock.now()).map(\.name)).sorted()])
        }
        api.get("/api/v1/gpus", "The GPUs now (utilisation, memory, temperature, power, clock) and the processes on them",
                tag: "monitor", returns: "{gpus: [GPU], processes: [Process]}") { _, _ in
            let top = TopSnapshot.make(store: store, allocator: allocator, rules: rules, at: clock.now())
            return API.json(GPUsReply(gpus: top.gpus, processes: top.processes))
        }
        if let benchmarks {
            api.get("/api/v1/benchmarks", "This host's facts and `vigil bench` runs, newest first (what `vigil bench export` writes)",
                    tag: "benchmarks", returns: "{format, facts, runs: [BenchRun]}") { _, _ in
                do {
                    return Response(status: .ok, headers: [.contentType: "application/json"],
                                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: try benchmarks())))
                } catch {
                    return API.error(.internalServerError, "cannot read the benchmark runs: \(error)")
                }
            }
        }
        guard let rules else { return }
        api.get("/api/v1/rules", "Rules (alerts, recommendations) with health, last error and evaluation time, and the rule files",
                tag: "rules", returns: "{rules: [RuleStatus], files: [RuleFileStatus]}") { _, _ in
            let snapshot = rules.snapshot
            return API.json(RulesReply(rules: snapshot.rules, files: snapshot.files))
        }
        api.get("/api/v1/alerts", "Alerts: firing, pending and recently resolved, with what silences or inhibits them",
                tag: "alerts", returns: "{alerts: [AlertView]}") { _, _ in
            API.json(AlertsReply(alerts: rules.snapshot.alerts))
        }
        guard let database else { return }
        api.get("/api/v1/alerts/history", "Recorded alert state changes, newest first", tag: "alerts",
                query: [.init(name: "limit", description: "How many (default 100, at most 10000)", type: "integer"),
                        .init(name: "rule", description: "Only this rule's")],
                returns: "{history: [AlertHistoryRecord]}") { request, _ in
            try await API.answer {
                let text = request.uri.queryParameters.get("limit") ?? "100"
                guard let limit = Int(text), (1...10_000).contains(limit) else {
                    throw AllocatorError(.invalid, "limit must be a whole number from 1 to 10000, not \(text)")
                }
                let rule = request.uri.queryParameters.get("rule").map { String($0) }
                return (.ok, ["history": try database.alertHistory(limit: limit, rule: rule)])
            }
        }
        api.get("/api/v1/silences", "Silences in force and pending", tag: "alerts",
                query: [.init(name: "all", description: "true: expired ones too", type: "boolean")],
                returns: "{silences: [SilenceView]}") { request, _ in
            try await API.answer {
                let now = clock.now()
                let all = request.uri.queryParameters.get("all").map { $0 == "true" || $0 == "1" } ?? false
                let silences = try database.silences().filter { all || $0.endsAt > now }
                return (.ok, SilencesReply(silences: silences.map { SilenceView($0, now: now) }))
            }
        }
        api.post("/api/v1/silences", "Mute alerts that match every matcher, for a while", tag: "alerts",
                 body: "{matchers: \"alertname=GpuTooHot,gpu=~\\\"0|1\\\"\" (or an array of matchers), duration: \"2h\" (default 1h), "
                     + "starts_in: \"0s\", created_by, comment}",
                 returns: "SilenceView", status: 201) { request, context in
            try await API.answer {
                let body: SilenceBody = try await API.decode(request, context: context,
                                                           fields: Set(SilenceBody.CodingKeys.allCases.map(\.rawValue)))
                let text = body.matchers.joined(separator: ",")
                do { _ = try Silences.parseMatchers(text) } catch {
                    throw AllocatorError(.invalid, "matchers: \(error)")
                }
                let length = try API.duration(body.duration ?? "1h", "duration")
                let delay = try API.duration(body.startsIn ?? "0s", "starts_in", zero: true)
                let now = clock.now()
                let silence = SilenceRecord(matchers: text, startsAt: now + delay, endsAt: now + delay + length,
                                            createdBy: body.createdBy ?? "api", comment: body.comment ?? "", createdAt: now)
                try database.saveSilence(silence)
                return (.created, SilenceView(silence, now: now))
            }
        }
        api.delete("/api/v1/silences/:id", "Expire a silence now (its id, or a unique start of it)", tag: "alerts",
                   returns: "SilenceView") { _, context in
            try await API.answer {
                let given = context.parameters.get("id") ?? ""
                let ids = try database.silenceIDs(prefix: given)
                guard ids.count == 1 else {
                    if ids.isEmpty { throw AllocatorError(.notFound, "no silence has an id starting with \(given)") }
                    throw AllocatorError(.invalid, "\(given) is the start of \(ids.count) silences; give more characters")
                }
                let now = clock.now()
                _ = try database.expireSilence(id: ids[0], at: now)
                guard let silence = try database.silences().first(where: { $0.id == ids[0] }) else {
                    throw AllocatorError(.notFound, "silence \(ids[0]) is gone")
                }
                return (.ok, SilenceView(silence, now: now))
            }
        }
    }

    /// A time query parameter in Unix seconds (fractions allowed).
    static func timestamp(_ request: Request, _ name: String) throws -> Timestamp? {
        guard let text = request.uri.queryParameters.get(name) else { return nil }
        guard let time = Bounds.unixSeconds(text) else {
            throw AllocatorError(.invalid, "\(name) must be a time in Unix seconds, such as 1764320000 (\(Bounds.timestampRange)), not \(text)")
        }
        return time
    }

    struct InstantReply: Encodable, Sendable {
        struct Element: Encodable, Sendable { var labels: [String: String]; var value: Double }
        var time: Double
        var result: [Element]
    }

    struct RangeReply: Encodable, Sendable {
        struct Series: Encodable, Sendable { var labels: [String: String]; var samples: [[Double]] }
        var start: Double
        var end: Double
        var step: Double
        var result: [Series]
    }

    struct GPUsReply: Encodable {
        var gpus: [TopSnapshot.GPU]
        var processes: [TopSnapshot.Process]
    }

    struct RulesReply: Encodable {
        var rules: [RuleStatus]
        var files: [RuleFileStatus]
    }

    struct AlertsReply: Encodable {
        var alerts: [AlertView]
    }

    public struct SilencesReply: Codable, Sendable { public var silences: [SilenceView] }

    /// A silence with its state spelled out (`vigil silence` reads these).
    public struct SilenceView: Codable, Sendable {
        public var id: String
        public var matchers: String
        /// active, pending or expired.
        public var state: String
        public var startsAt: Timestamp
        public var endsAt: Timestamp
        public var createdBy: String
        public var comment: String

        init(_ record: SilenceRecord, now: Timestamp) {
            id = record.id
            matchers = record.matchers
            state = record.endsAt <= now ? "expired" : record.startsAt > now ? "pending" : "active"
            startsAt = record.startsAt
            endsAt = record.endsAt
            createdBy = record.createdBy
            comment = record.comment
        }

        enum CodingKeys: String, CodingKey {
            case id, matchers, state, startsAt = "starts_at", endsAt = "ends_at", createdBy = "created_by", comment
        }
    }

    struct SilenceBody: Decodable {
        var matchers: [String]
        var duration: String?
        var startsIn: String?
        var createdBy: String?
        var comment: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case matchers, duration, startsIn = "starts_in", createdBy = "created_by", comment }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let one = try? container.decode(String.self, forKey: .matchers) {
                matchers = [one]
            } else {
                matchers = try container.decode([String].self, forKey: .matchers)
            }
            guard !matchers.joined().trimmingCharacters(in: .whitespaces).isEmpty else {
                throw DecodingError.dataCorruptedError(forKey: .matchers, in: container, debugDescription: "give at least one matcher, such as alertname=GpuTooHot")
            }
            duration = try container.decodeIfPresent(String.self, forKey: .duration)
            startsIn = try container.decodeIfPresent(String.self, forKey: .startsIn)
            createdBy = try container.decodeIfPresent(String.self, forKey: .createdBy)
            comment = try container.decodeIfPresent(String.self, forKey: .comment)
        }
    }
}

/// Metric queries run here, off Swift's cooperative pool, two at a time: however many heavy queries arrive,
/// they cannot take the threads that `/healthz`, `/metrics` and the other routes are answered on; the rest wait
/// their turn (and a range query's deadline starts when it runs).
enum QueryWork {
    private static let queue = DispatchQueue(label: "vigil.api.queries", attributes: .concurrent)
    private static let slots = DispatchSemaphore(value: 2)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                slots.wait()
                defer { slots.signal() }
                continuation.resume(with: Result { try body() })
            }
        }
    }
}

/// The parameters of `/api/v1/query` and `/api/v1/query_range`: a selector, an optional window function and an
/// optional aggregation, the same pieces `vigil.query` gives scripts.
struct MetricQuery: Sendable {
    var selector: SeriesSelector
    var function: RangeFunction?
    var window: Int64
    var aggregation: (AggregationOperator, Grouping, Double?)?

    init(_ request: Request) throws {
        let parameters = request.uri.queryParameters
        guard let text = parameters.get("query"), !text.isEmpty else {
            throw AllocatorError(.invalid, "query is missing: give a series selector, such as query=gpu_utilization_ratio")
        }
        do { selector = try SeriesSelector(parsing: String(text)) } catch {
            throw AllocatorError(.invalid, "query: \(error)")
        }
        window = try API.duration(request, "window", default: "5m")
        if let name = parameters.get("function").map { String($0) } {
            if let known = QueryFunctions.windowFunctions.first(where: { $0.0 == name }) {
                function = known.1
            } else if name == "quantile_over_time" {
                guard let q = parameters.get("q").flatMap({ Double($0) }), (0...1).contains(q) else {
                    throw AllocatorError(.invalid, "quantile_over_time needs q, a number from 0 to 1")
                }
                function = .quantileOverTime(q)
            } else if name == "predict_linear" {
                guard let seconds = parameters.get("seconds").flatMap({ Double($0) }), seconds.isFinite else {
                    throw AllocatorError(.invalid, "predict_linear needs seconds, how far ahead to predict")
                }
                function = .predictLinear(seconds: seconds)
            } else {
                throw AllocatorError(.invalid, "unknown function \(name) (known: \(QueryFunctions.windowFunctions.map(\.0).joined(separator: ", ")), quantile_over_time, predict_linear)")
            }
        }
        if let name = parameters.get("aggregate").map { String($0) } {
            guard let operation = AggregationOperator(rawValue: name) else {
                throw AllocatorError(.invalid, "unknown aggregate \(name) (known: \(AggregationOperator.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            func names(_ key: String) -> Set<String>? {
                parameters.get(key).map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
            }
            let grouping: Grouping = if let by = names("by") { .by(by) } else if let without = names("without") { .without(without) } else { .all }
            var k: Double?
            if operation == .topk || operation == .bottomk {
                guard let value = parameters.get("k").flatMap({ Int($0) }), value >= 0 else {
                    throw AllocatorError(.invalid, "\(name) needs k, a whole number")
                }
                k = Double(value)
            }
            aggregation = (operation, grouping, k)
        }
    }

    /// What one request may ask for: series selected, and series × points evaluated. Beyond either it is a 422
    /// before any work is done; past the deadline a range query stops with a 503. So one request cannot
    /// hold a core for long, and /healthz and /metrics stay quick beside it.
    static let maxSeries = 20_000
    static let maxSeriesPoints = 2_000_000
    static let deadlineNanoseconds: UInt64 = 10_000_000_000

    func checkBudget(_ store: MetricStore, points: Int) throws {
        let selected = store.select(selector).count
        guard selected <= Self.maxSeries else {
            throw API.Failure(status: .unprocessableContent, message: "the selector matches \(selected) series; a query may read at most "
                + "\(Self.maxSeries). Narrow it with more label matchers")
        }
        guard selected * points <= Self.maxSeriesPoints else {
            throw API.Failure(status: .unprocessableContent, message: "\(selected) series × \(points) points is over the "
                + "\(Self.maxSeriesPoints) a query may evaluate; make the step larger, the range shorter or the selector narrower")
        }
    }

    func evaluate(_ store: MetricStore, at time: Timestamp) -> [VectorSample] {
        var vector = function.map { store.evaluate($0, selector, range: window, at: time) } ?? store.instant(selector, at: time)
        if let (operation, grouping, k) = aggregation {
            vector = Aggregation.apply(operation, vector, grouping: grouping, parameter: k)
        }
        return vector.sorted { $0.labels < $1.labels }
    }
}
