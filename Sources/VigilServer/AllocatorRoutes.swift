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
    static func add(to api: APIBuilder, allocator: Allocator, clock: any WallClock) {
        let tag = "tasks"
        api.post("/api/v1/tasks", "Submit a task (an object) or a job array (an array of them, queued all or none)", tag: tag,
                 body: "TaskSpec: command (array of strings, required), directory, owner, environment, name, kind, gpus, gpu_memory (bytes), "
                     + "time_limit_ms, expected_duration_ms, priority (low, normal, high, urgent or 0-100), cost_limit, after, off_peak",
                 returns: "{id, state, submitted}, or {ids} for an array", status: 201) { request, context in
            try await API.answer {
                let body: OneOrMany<TaskSpec> = try await API.decode(request, context: context, fields: TaskSpec.fieldNames)
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
        api.get("/api/v1/tasks", "Tasks, newest first", tag: tag,
                query: [.init(name: "state", description: "Comma-separated states to keep: \(TaskState.allCases.map(\.rawValue).joined(separator: ", "))")],
                returns: "{tasks: [TaskView]}") { request, _ in
            try await API.answer {
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
        api.get("/api/v1/tasks/:id", "One task", tag: tag, returns: "TaskView") { _, context in
            try await API.answer { (.ok, try allocator.task(try API.id(context))) }
        }
        api.get("/api/v1/tasks/:id/logs", "A task's output so far", tag: tag,
                query: [.init(name: "stream", description: "stdout (default) or stderr")],
                returns: "the text", mediaType: "text/plain") { request, context in
            do {
                let stream = request.uri.queryParameters.get("stream") ?? "stdout"
                let text = try allocator.log(try API.id(context), stream: stream)
                return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
            } catch {
                return API.failure(error)
            }
        }
        api.post("/api/v1/tasks/:id/pause", "Pause a running task (SIGSTOP; its memory stays reserved)", tag: tag, returns: "TaskView") { _, context in
            try await API.answer { _ = try allocator.pause(try API.id(context)); return (.ok, try allocator.task(try API.id(context))) }
        }
        api.post("/api/v1/tasks/:id/resume", "Resume a paused task", tag: tag, returns: "TaskView") { _, context in
            try await API.answer { _ = try allocator.resume(try API.id(context)); return (.ok, try allocator.task(try API.id(context))) }
        }
        api.post("/api/v1/tasks/:id/cancel", "Cancel a task (SIGTERM, then SIGKILL after the grace period)", tag: tag,
                 returns: "TaskView") { _, context in
            try await API.answer { _ = try allocator.cancel(try API.id(context)); return (.ok, try allocator.task(try API.id(context))) }
        }
        api.post("/api/v1/tasks/:id/priority", "Change a task's priority", tag: tag,
                 body: "{priority: low, normal, high, urgent or 0-100}", returns: "TaskView") { request, context in
            try await API.answer {
                let body: PriorityBody = try await API.decode(request, context: context, fields: ["priority"])
                _ = try allocator.setPriority(try API.id(context), body.priority)
                return (.ok, try allocator.task(try API.id(context)))
            }
        }
        api.get("/api/v1/queue", "The queue: waiting tasks with their expected start and end and the reason they wait, "
                + "running tasks, GPUs, the policy and today's cost", tag: tag, returns: "QueueView") { _, _ in
            try await API.answer { (.ok, allocator.queue()) }
        }
        api.get("/api/v1/costs", "Cost per local day and owner", tag: "reports",
                query: [.init(name: "since", description: "How far back, such as 7d (default) or 24h")],
                returns: "{days: [{day, owner, cost, gpu_hours}]}") { request, _ in
            try await API.answer {
                let rows = try allocator.costs(since: clock.now() - API.duration(request, "since", default: "7d"))
                return (.ok, CostsReply(days: rows.map { CostsReply.Day(day: $0.day, owner: $0.owner, cost: $0.cost, gpuHours: $0.gpuSeconds / 3600) }))
            }
        }
        api.post("/api/v1/drain", "Start no new task (running ones go on)", tag: tag, returns: "{drained: true}") { _, _ in
            try await API.answer { try allocator.setDrained(true); return (.ok, DrainReply(drained: true)) }
        }
        api.post("/api/v1/undrain", "Start tasks again", tag: tag, returns: "{drained: false}") { _, _ in
            try await API.answer { try allocator.setDrained(false); return (.ok, DrainReply(drained: false)) }
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
}
