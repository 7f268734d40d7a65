import Foundation
import Hummingbird
import VigilAllocator
import VigilCore
import VigilRules
import VigilStore

/// `/api/v1/recommendations`, `/api/v1/reports/…` and `/api/v1/top`: what `vigil recommendations`, `vigil report`
/// and `vigil top` show.
enum ReportRoutes {
    static func add(to api: APIBuilder, reports: ReportBuilder?, rules: RuleService?, clock: any WallClock,
                    store: MetricStore, allocator: Allocator?) {
        api.get("/api/v1/top", "What `vigil top` draws: GPUs, their processes and tasks, host CPU and memory, firing alerts",
                tag: "monitor", returns: "TopSnapshot") { _, _ in
            API.json(TopSnapshot.make(store: store, allocator: allocator, rules: rules, at: clock.now()))
        }
        if let rules {
            api.get("/api/v1/recommendations", "Active recommendations, best saving first", tag: "recommendations",
                    query: [.init(name: "expired", description: "Also those that expired within this window, such as 24h")],
                    returns: "{recommendations: [Recommendation], expired?: [Recommendation]}") { request, _ in
                try await API.answer {
                    var reply = RecommendationsReply(recommendations: rules.snapshot.recommendations, expired: nil)
                    if request.uri.queryParameters.get("expired") != nil {
                        reply.expired = try rules.expiredRecommendations(since: clock.now() - API.duration(request, "expired", default: "24h"))
                    }
                    return (.ok, reply)
                }
            }
        }
        guard let reports else { return }
        api.get("/api/v1/reports/status", "The status report: GPUs, tasks, cost, alerts, recommendations and indicators",
                tag: "reports", returns: "StatusReport") { _, _ in
            try await API.answer { (.ok, reports.status()) }
        }
        api.get("/api/v1/reports/cost", "Cost and GPU-hours grouped by owner, task, GPU or day", tag: "reports",
                query: [.init(name: "since", description: "How far back, such as 7d (default)"),
                        .init(name: "by", description: "owner (default), task, gpu or day")],
                returns: "CostReport") { request, _ in
            try await API.answer {
                let window = try API.duration(request, "since", default: "7d")
                let byText = request.uri.queryParameters.get("by").map { String($0) } ?? "owner"
                guard let by = CostReport.Grouping(rawValue: byText) else {
                    throw AllocatorError(.invalid, "by must be one of \(CostReport.Grouping.allCases.map(\.rawValue).joined(separator: ", ")), not \(byText)")
                }
                return (.ok, try reports.cost(since: clock.now() - window, by: by))
            }
        }
        api.get("/api/v1/reports/tasks/:id", "One task beside the median of similar tasks, with its indicators", tag: "reports",
                returns: "TaskReport") { _, context in
            try await API.answer { (.ok, try reports.task(try API.id(context))) }
        }
    }

    struct RecommendationsReply: Encodable {
        var recommendations: [Recommendation]
        /// Those that expired within the asked window, when asked.
        var expired: [Recommendation]?
    }
}
