import Foundation
import Hummingbird
import VigilAllocator
import VigilCore
import VigilRules
import VigilStore

/// `/api/v1/recommendations`, `/api/v1/reports/…` and `/api/v1/top`: what `vigil recommendations`, `vigil report`
/// and `vigil top` show.
enum ReportRoutes {
    static func add(to router: Router<BasicRequestContext>, reports: ReportBuilder?, rules: RuleService?, clock: any WallClock,
                    store: MetricStore, allocator: Allocator?) {
        router.get("/api/v1/top") { _, _ -> Response in
            AllocatorRoutes.json(TopSnapshot.make(store: store, allocator: allocator, rules: rules, at: clock.now()), status: .ok)
        }
        if let rules {
            router.get("/api/v1/recommendations") { request, _ -> Response in
                try await AllocatorRoutes.answer {
                    var reply = RecommendationsReply(recommendations: rules.snapshot.recommendations, expired: nil)
                    if let text = request.uri.queryParameters.get("expired") {
                        guard let window = DurationParser.milliseconds(String(text)), window > 0 else {
                            throw AllocatorError(.invalid, "expired must be a duration such as 24h, got \(text)")
                        }
                        reply.expired = try rules.expiredRecommendations(since: clock.now() - window)
                    }
                    return (.ok, reply)
                }
            }
        }
        guard let reports else { return }
        router.get("/api/v1/reports/status") { _, _ -> Response in
            try await AllocatorRoutes.answer { (.ok, reports.status()) }
        }
        router.get("/api/v1/reports/cost") { request, _ -> Response in
            try await AllocatorRoutes.answer {
                let sinceText = request.uri.queryParameters.get("since").map { String($0) } ?? "7d"
                guard let window = DurationParser.milliseconds(sinceText), window > 0 else {
                    throw AllocatorError(.invalid, "since must be a duration such as 7d or 24h, got \(sinceText)")
                }
                let byText = request.uri.queryParameters.get("by").map { String($0) } ?? "owner"
                guard let by = CostReport.Grouping(rawValue: byText) else {
                    throw AllocatorError(.invalid, "by must be one of \(CostReport.Grouping.allCases.map(\.rawValue).joined(separator: ", ")), got \(byText)")
                }
                return (.ok, try reports.cost(since: clock.now() - window, by: by))
            }
        }
        router.get("/api/v1/reports/tasks/:id") { _, context -> Response in
            try await AllocatorRoutes.answer { (.ok, try reports.task(try AllocatorRoutes.id(context))) }
        }
    }

    struct RecommendationsReply: Encodable {
        var recommendations: [Recommendation]
        /// Those that expired within the asked window, when asked.
        var expired: [Recommendation]?
    }
}
