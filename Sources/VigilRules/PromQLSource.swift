import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import VigilCore
import VigilLua

/// `vigil.prometheus.query(source, expr)`: PromQL against a configured Prometheus-compatible server
/// (Prometheus, VictoriaMetrics, Thanos …), for rules that look at the whole fleet. The call blocks the
/// script for at most the source's timeout; a failure (unreachable, timeout, a PromQL error) raises a Lua
/// error naming the source, so the rule's health shows it like any other evaluation error.
final class PromQLSources: @unchecked Sendable {
    let sources: [String: QuerySourceConfiguration]
    private let session: URLSession

    init(_ sources: [String: QuerySourceConfiguration]) {
        self.sources = sources
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration)
    }

    static let names = ["query", "sources"]

    func table(clock: any WallClock) -> LuaValue {
        var table: [LuaValue: LuaValue] = [:]
        table["query"] = .hostFunction(LuaHostFunction("query") { [self] args in
            let name = try args.string(0)
            let expression = try args.string(1)
            return [try query(name, expression, at: clock.now())]
        })
        table["sources"] = .hostFunction(LuaHostFunction("sources") { [self] _ in
            [.array(sources.keys.sorted().map { .string($0) })]
        })
        return .table(table)
    }

    /// An instant query at `time`: a vector as `vigil.query` returns them, or a number for a scalar.
    func query(_ name: String, _ expression: String, at time: Timestamp) throws -> LuaValue {
        guard let source = sources[name] else {
            let known = sources.keys.sorted().joined(separator: ", ")
            throw LuaHostError("vigil.prometheus.query: no query source '\(name)' (configured under query_sources: \(known.isEmpty ? "none" : known))")
        }
        func fail(_ message: String) -> LuaHostError { LuaHostError("vigil.prometheus.query: \(name) (\(source.url)): \(message)") }
        let base = source.url.hasSuffix("/") ? String(source.url.dropLast()) : source.url
        guard var components = URLComponents(string: base + "/api/v1/query") else { throw fail("not a URL") }
        components.queryItems = [URLQueryItem(name: "query", value: expression),
                                 URLQueryItem(name: "time", value: String(format: "%.3f", Double(time) / 1000))]
        guard let url = components.url else { throw fail("not a URL") }
        var request = URLRequest(url: url)
        request.timeoutInterval = Double(source.timeoutMilliseconds) / 1000
        let (data, status, error) = fetch(request, timeout: source.timeoutMilliseconds)
        if let error { throw fail(error) }
        guard let data else { throw fail("no answer") }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("answered \(status) with something that is not the query API's JSON")
        }
        guard object["status"] as? String == "success", let body = object["data"] as? [String: Any] else {
            throw fail("\(object["errorType"] as? String ?? "error \(status)"): \(object["error"] as? String ?? "unknown")")
        }
        switch body["resultType"] as? String {
        case "vector":
            let result = body["result"] as? [[String: Any]] ?? []
            return .array(result.compactMap { item in
                guard let pair = item["value"] as? [Any], pair.count == 2, let text = pair[1] as? String, let value = Double(text) else { return nil }
                var labels: [LuaValue: LuaValue] = [:]
                var element: [LuaValue: LuaValue] = ["value": .number(value)]
                for (key, value) in item["metric"] as? [String: String] ?? [:] {
                    if key == Labels.metricName { element["name"] = .string(value) } else { labels[.string(key)] = .string(value) }
                }
                element["labels"] = .table(labels)
                return .table(element)
            })
        case "scalar":
            guard let pair = body["result"] as? [Any], pair.count == 2, let text = pair[1] as? String, let value = Double(text) else {
                throw fail("a scalar without a value")
            }
            return .number(value)
        case let other:
            throw fail("returned a \(other ?? "result") (give an instant vector or a scalar expression)")
        }
    }

    /// One request, waited for on this thread (scripts do not await).
    private func fetch(_ request: URLRequest, timeout: Int64) -> (Data?, Int, String?) {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        let task = session.dataTask(with: request) { data, response, error in
            box.set(data, (response as? HTTPURLResponse)?.statusCode ?? 0, error.map { $0.localizedDescription })
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + .milliseconds(Int(timeout) + 250)) == .timedOut {
            task.cancel()
            return (nil, 0, "no answer within \(DurationParser.format(milliseconds: timeout))")
        }
        return box.get()
    }

    private final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (Data?, Int, String?) = (nil, 0, nil)
        func set(_ data: Data?, _ status: Int, _ error: String?) { lock.withLock { value = (data, status, error) } }
        func get() -> (Data?, Int, String?) { lock.withLock { value } }
    }
}
