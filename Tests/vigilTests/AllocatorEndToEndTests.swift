import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("tasks through the running daemon", .serialized)
struct AllocatorEndToEndTests {
    /// The repository's eight-GPU scenario with no processes on the GPUs, written beside the daemon.
    static func scenario(in root: URL) throws -> String {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/VigilFakeNVML/eight-gpus.json")
        var scenario = try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as! [String: Any]
        scenario["gpus"] = (scenario["gpus"] as! [[String: Any]]).map { gpu in
            var gpu = gpu
            gpu["processes"] = []
            return gpu
        }
        let path = root.appendingPathComponent("fake-nvml.json").path
        try JSONSerialization.data(withJSONObject: scenario).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func daemon() throws -> TestDaemon {
        let daemon = try TestDaemon(config: "", rules: [:])
        let library = try E2E.vigil().deletingLastPathComponent().appendingPathComponent("libVigilFakeNVML.so").path
        daemon.environment = ["VIGIL_NVML_LIBRARY": library, "VIGIL_FAKE_NVML_CONFIG": try scenario(in: daemon.root)]
        return daemon
    }

    @Test("vigil submit, queue and task logs; a kill -9 of the daemon loses no task, starts none twice, and re-adopts the running one")
    func restart() async throws {
        let daemon = try Self.daemon()
        try await daemon.start()
        defer { FileManager.default.createFile(atPath: daemon.root.appendingPathComponent("go").path, contents: Data()) }
        let starts = daemon.root.appendingPathComponent("starts.log").path
        let script = "echo \"$VIGIL_TASK_ID\" >> '\(starts)'; echo \"gpus=$CUDA_VISIBLE_DEVICES\"; "
            + "while [ ! -e '\(daemon.root.path)/go' ]; do sleep 0.05; done"
        var ids: [String] = []
        for index in 0..<4 {
            let submitted = try await daemon.cli(["submit", "--gpus", "8", "--name", "job\(index)", "--", "sh", "-c", script])
            #expect(submitted.status == 0, "\(submitted.stderr)")
            ids.append(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(ids == ["1", "2", "3", "4"])
        let refused = try await daemon.cli(["submit", "--gpus", "9", "--", "true"])
        #expect(refused.status == 1 && refused.stderr.contains("this task can never run here: it asks for 9 GPUs; this host has 8"))

        let running = try await daemon.poll("/api/v1/tasks/1") { ($0["task"] as? [String: Any])?["state"] as? String == "running" }
        let pid = try #require((running["task"] as? [String: Any])?["pid"] as? Int)
        var log = ""
        for _ in 0..<100 where !log.contains("gpus=") {
            log = try await daemon.cli(["task", "logs", "1"]).stdout
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(log.hasPrefix("gpus=GPU-") && log.split(separator: ",").count == 8, "\(log)")
        let queue = try await daemon.cli(["queue"])
        #expect(queue.status == 0)
        let rows = queue.stdout.split(separator: "\n").filter { $0.first?.isNumber == true }
        #expect(rows.count == 4 && rows[0].contains("running") && rows[1].contains("queued") && rows[1].contains("Resources"),
                "\(queue.stdout)")

        daemon.crash()
        #expect(kill(Int32(pid), 0) == 0, "the task outlives the daemon")
        try await daemon.start()
        let readopted = try await daemon.poll("/api/v1/queue") { ($0["active"] as? [[String: Any]])?.count == 1 }
        let active = try #require((readopted["active"] as? [[String: Any]])?.first?["task"] as? [String: Any])
        #expect(active["id"] as? Int == 1 && active["pid"] as? Int == pid && active["state"] as? String == "running")
        #expect((readopted["waiting"] as? [[String: Any]])?.compactMap { ($0["task"] as? [String: Any])?["id"] as? Int } == [2, 3, 4])

        FileManager.default.createFile(atPath: daemon.root.appendingPathComponent("go").path, contents: Data())
        let last = try await daemon.poll("/api/v1/tasks/4") { ($0["task"] as? [String: Any])?["state"] as? String == "succeeded" }
        #expect((last["task"] as? [String: Any])?["state"] as? String == "succeeded")
        let first = try await daemon.poll("/api/v1/tasks/1") { ($0["task"] as? [String: Any])?["state"] as? String == "succeeded" }
        #expect((first["task"] as? [String: Any])?["reason"] as? String == "exited with status 0")
        let started = try String(contentsOfFile: starts, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(started == ["1", "2", "3", "4"], "each task started exactly once")
        let show = try await daemon.cli(["task", "show", "4"])
        #expect(show.stdout.contains("state:      succeeded") && show.stdout.contains("gpus:       8×whole on"), "\(show.stdout)")
    }

    @Test("without an NVIDIA driver, GPU tasks are refused at submit and CPU tasks run")
    func noGPU() async throws {
        let daemon = try TestDaemon(config: "", rules: [:])
        try await daemon.start()
        // Submits wait (503, retried by the CLI) until the first collection round has shown what the host has.
        let refused = try await daemon.cli(["submit", "--gpus", "1", "--", "true"])
        #expect(refused.status == 1 && refused.stderr.contains("this task can never run here: it asks for 1 GPU; this host has none"),
                "\(refused.stderr)")
        let cpu = try await daemon.cli(["submit", "--", "sh", "-c", "echo cpu-only"])
        let id = cpu.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let done = try await daemon.poll("/api/v1/tasks/\(id)") { ($0["task"] as? [String: Any])?["state"] as? String == "succeeded" }
        #expect((done["task"] as? [String: Any])?["state"] as? String == "succeeded")
        #expect(try await daemon.cli(["task", "logs", id]).stdout == "cpu-only\n")
        // Options before `--` are vigil's; `--help` is help, not a command to queue.
        let help = try await daemon.cli(["submit", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: vigil submit"))
        let none = try await daemon.cli(["submit", "--gpus", "0"])
        #expect(none.status != 0 && none.stderr.contains("give the command after --"))
        let tasks = try await daemon.poll("/api/v1/tasks") { _ in true }
        #expect((tasks["tasks"] as? [[String: Any]])?.count == 1, "only the CPU task was queued")
    }

    @Test("the task API answers mistakes with JSON errors and the right status")
    func apiErrors() async throws {
        let daemon = try Self.daemon()
        try await daemon.start()
        func post(_ path: String, _ body: String, type: String = "application/json") async throws -> (Int, String) {
            var request = URLRequest(url: URL(string: daemon.base + path)!)
            request.httpMethod = "POST"
            request.setValue("Bearer \(try daemon.token())", forHTTPHeaderField: "Authorization")
            request.httpBody = Data(body.utf8)
            request.setValue(type, forHTTPHeaderField: "Content-Type")
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
        }
        let missing = try await post("/api/v1/tasks", #"{"directory":"/tmp"}"#)
        #expect(missing.0 == 400 && missing.1.contains("command is missing"), "\(missing)")
        let relative = try await post("/api/v1/tasks", #"{"command":["true"],"directory":"tmp"}"#)
        #expect(relative.0 == 400 && relative.1.contains("directory must be an absolute path"))
        let priority = try await post("/api/v1/tasks", #"{"command":["true"],"directory":"/tmp","priority":"asap"}"#)
        #expect(priority.0 == 400 && priority.1.contains("priority must be low, normal, high, urgent"), "\(priority)")
        let text = try await post("/api/v1/tasks", "true", type: "text/plain")
        #expect(text.0 == 415)
        let huge = try await post("/api/v1/tasks", String(repeating: " ", count: 2 << 20))
        #expect(huge.0 == 413)
        let unknown = try await post("/api/v1/tasks/77/cancel", "")
        #expect(unknown.0 == 404 && unknown.1 == #"{"error":"no task 77"}"#)
        let array = try await post("/api/v1/tasks", #"[{"command":["true"],"directory":"/tmp"},{"command":["true"],"directory":"/tmp"}]"#)
        #expect(array.0 == 201 && array.1 == #"{"ids":[1,2]}"#)
        _ = try await daemon.poll("/api/v1/tasks/1") { ($0["task"] as? [String: Any])?["state"] as? String == "succeeded" }
        let done = try await post("/api/v1/tasks/1/cancel", "")
        #expect(done.0 == 409 && done.1.contains("already ended (succeeded)"), "\(done)")
    }
}
