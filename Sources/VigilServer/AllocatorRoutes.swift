import Foundation
import Hummingbird
import NIOCore
import VigilAllocator
import VigilCore
import VigilState

/// `/api/v1/tasks`, `/api/v1/queue`, `/api/v1/drain`: what `vigil submit`, `vigil queue`, `vigil task`
/// and `vigil drain` talk to. Errors are JSON `{"error": "…"}` with 400, 404, 409, 413, 415, or 503 while the
/// daemon starts.
enum AllocatorRoutes {
    /// Request bodies are small JSON documents; anything larger is refused with 413.
    static let bodyLimit = 1 << 20

    static func add(to router: Router<BasicRequestContext>, allocator: Allocator, clock: any WallClock) {
        router.post("/api/v1/tasks") { request, context -> Response in
            try await answer {
                // One task (an object) or a job array (an array of them, queued all or none).
                let body: OneOrMany<TaskSpec> = try await decode(request, context: context)
                // The reply is the new id (or ids): `GET /api/v1/tasks/ID` has the rest.
                switch body {
                case .one(let spec):
                    let record = try await allocator.submit(spec)
                    return (.created, Submitted(id: record.id, state: record.state, submitted: record.submitted))
                case .many(let specs):
                    guard !specs.isEmpty else { throw AllocatorError(.invalid, "the array of tasks is empty") }
                    return (.created, SubmittedMany(ids: try await allocator.submit(specs).map(\.id)))
                }
            }
        }
        router.get("/api/v1/tasks") { request, _ -> Response in
            try await answer {
                var states: Set<TaskState>?
                if let text = request.uri.queryParameters.get("state") {
                    states = Set(try text.split(separator: ",").map { name in
                        guard let state = TaskState(rawValue: String(name)) else {
                            throw AllocatorError(.invalid, "unknown state \(name) (known: \(TaskState.allCases.map(\.rawValue).joined(separator: ", ")))")
                        }
                        return state
                    })
                }
                return (.ok, TasksReply(tasks: allocator.list(states: states)))
            }
        }
        router.get("/api/v1/tasks/:id") { _, context -> Response in
            try await answer { (.ok, try allocator.task(try id(context))) }
        }
        router.get("/api/v1/tasks/:id/logs") { request, context -> Response in
            do {
                let stream = request.uri.queryParameters.get("stream") ?? "stdout"
                let text = try allocator.log(try id(context), stream: stream)
                return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
            } catch {
                return failure(error)
            }
        }
        router.post("/api/v1/tasks/:id/pause") { _, context -> Response in
            try await answer { _ = try allocator.pause(try id(context)); return (.ok, try allocator.task(try id(context))) }
        }
        router.post("/api/v1/tasks/:id/resume") { _, context -> Response in
            try await answer { _ = try allocator.resume(try id(context)); return (.ok, try allocator.task(try id(context))) }
        }
        router.post("/api/v1/tasks/:id/cancel") { _, context -> Response in
            try await answer { _ = try allocator.cancel(try id(context)); return (.ok, try allocator.task(try id(context))) }
        }
        router.post("/api/v1/tasks/:id/priority") { request, context -> Response in
            try await answer {
                let body: PriorityBody = try await decode(request, context: context)
                _ = try allocator.setPriority(try id(context), body.priority)
                return (.ok, try allocator.task(try id(context)))
            }
        }
        router.get("/api/v1/queue") { _, _ -> Response in
            try await answer { (.ok, allocator.queue()) }
        }
        router.get("/api/v1/costs") { request, _ -> Response in
            try await answer {
                let text = request.uri.queryParameters.get("since") ?? "7d"
                guard let window = DurationParser.milliseconds(text), window > 0 else {
                    throw AllocatorError(.invalid, "since must be a duration such as 7d or 24h, not \(text)")
                }
                let rows = try allocator.costs(since: clock.now() - window)
                return (.ok, CostsReply(days: rows.map { CostsReply.Day(day: $0.day, owner: $0.owner, cost: $0.cost, gpuHours: $0.gpuSeconds / 3600) }))
            }
        }
        router.post("/api/v1/drain") { _, _ -> Response in
            try await answer { try allocator.setDrained(true); return (.ok, DrainReply(drained: true)) }
        }
        router.post("/api/v1/undrain") { _, _ -> Response in
            try await answer { try allocator.setDrained(false); return (.ok, DrainReply(drained: false)) }
        }
    }

    struct TasksReply: Encodable { var tasks: [TaskView] }
    struct Submitted: Codable { var id: Int64; var state: TaskState; var submitted: Int64 }
    struct SubmittedMany: Codable { var ids: [Int64] }

    enum OneOrMany<T: Decodable>: Decodable {
        case one(T)
        case many([T])

        init(from decoder: any Decoder) throws {
            if (try? decoder.unkeyedContainer()) != nil {
                self = .many(try [T](from: decoder))
            } else {
                self = .one(try T(from: decoder))
            }
        }
    }
    struct DrainReply: Encodable { var drained: Bool }
    struct CostsReply: Encodable {
        struct Day: Encodable {
            var day: String
            var owner: String
            var cost: Double
            var gpuHours: Double
            enum CodingKeys: String, CodingKey { case day, owner, cost, gpuHours = "gpu_hours" }
        }
        var days: [Day]
    }
    struct PriorityBody: Decodable { var priority: TaskPriority }
    struct ErrorReply: Encodable { var error: String }

    struct HTTPFailure: Error {
        var status: HTTPResponse.Status
        var message: String
    }

    static func id(_ context: BasicRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw AllocatorError(.invalid, "task ids are positive integers")
        }
        return id
    }

    static func decode<T: Decodable>(_ request: Request, context: BasicRequestContext) async throws -> T {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw HTTPFailure(status: .unsupportedMediaType, message: "send JSON (Content-Type: application/json), not \(type)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: bodyLimit)
        } catch {
            throw HTTPFailure(status: .contentTooLarge, message: "the request body is over \(bodyLimit) bytes")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw AllocatorError(.invalid, "the body is not a valid request: \(describe(error))")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String { keys.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context.codingPath)) has the wrong type: \(context.debugDescription)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    static func answer(_ body: () async throws -> (HTTPResponse.Status, any Encodable)) async throws -> Response {
        do {
            let (status, value) = try await body()
            return json(value, status: status)
        } catch {
            return failure(error)
        }
    }

    static func failure(_ error: any Error) -> Response {
        switch error {
        case let error as AllocatorError:
            let status: HTTPResponse.Status = switch error.kind {
            case .invalid: .badRequest
            case .notFound: .notFound
            case .conflict: .conflict
            case .unavailable: .serviceUnavailable
            }
            return json(ErrorReply(error: error.description), status: status)
        case let error as HTTPFailure:
            return json(ErrorReply(error: error.message), status: error.status)
        default:
            return json(ErrorReply(error: "\(error)"), status: .internalServerError)
        }
    }

    static func json(_ value: any Encodable, status: HTTPResponse.Status) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
