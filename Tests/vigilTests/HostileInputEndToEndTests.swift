import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A socket to the daemon, for what URLSession will not send: a Host header of our choosing, half a request,
/// a connection held open and idle.
private final class RawConnection {
    let fd: Int32

    /// `from`: the local address to connect from (127.0.0.2 is another peer of this host).
    init?(port: Int, from source: String? = nil) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                close(fd)
                return nil
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything until the peer closes or 5 s pass; nil when the read failed at once (reset).
    func readAll() -> String? {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { out += buffer[..<n] } else { return n == 0 || !out.isEmpty ? String(decoding: out, as: UTF8.self) : nil }
        }
    }

    /// Whether the daemon closed this connection (a read returns end of file) within the socket's 5 s.
    var closedByPeer: Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }
}

/// One request on its own connection; the status line's code and the reply.
private func raw(_ port: Int, _ request: String) -> (status: Int, reply: String) {
    guard let connection = RawConnection(port: port) else { return (0, "") }
    connection.send(request)
    let reply = connection.readAll() ?? ""
    let status = reply.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
    return (status, reply)
}

/// The daemon as an adversary meets it (issue: nothing from outside takes Vigil down). Every attack ends with
/// the daemon up, `/healthz` answering within a second, and every refusal saying what and where.
@Suite("hostile input against the running daemon", .serialized)
struct HostileInputEndToEndTests {
    static func healthy(_ daemon: TestDaemon, sourceLocation: SourceLocation = #_sourceLocation) async {
        await healthy(daemon, from: nil, sourceLocation: sourceLocation)
    }

    /// `/healthz` answered within a second, from `source` (a local address; nil: 127.0.0.1), on a connection of its own.
    static func healthy(_ daemon: TestDaemon, from source: String?, sourceLocation: SourceLocation = #_sourceLocation) async {
        let started = ContinuousClock.now
        let connection = RawConnection(port: daemon.port, from: source)
        connection?.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        let reply = connection?.readAll() ?? ""
        #expect(reply.hasPrefix("HTTP/1.1 200"), "healthz from \(source ?? "127.0.0.1"): \(reply)", sourceLocation: sourceLocation)
        #expect(ContinuousClock.now - started < .seconds(1), "healthz answered within 1 s", sourceLocation: sourceLocation)
        #expect(daemon.process?.isRunning == true, "the daemon is still running", sourceLocation: sourceLocation)
    }

    @Test("numbers, regexes, unknown fields and foreign Host names are refused with what and where; the daemon stays up")
    func requests() async throws {
        let daemon = try TestDaemon(config: "", rules: [:])
        try await daemon.start()
        let token = try daemon.token()
        func get(_ path: String) async throws -> APIEndToEndTests.Reply { try await APIEndToEndTests.request(daemon, "GET", path) }
        func post(_ path: String, _ body: String) async throws -> APIEndToEndTests.Reply {
            try await APIEndToEndTests.request(daemon, "POST", path, body: body, token: token)
        }
        // Numbers that used to trap the process: each is a 400 naming the field and its range.
        for (path, words) in [
            ("/api/v1/query?query=node_load1&time=1e300", "time must be a time in Unix seconds, such as 1764320000 (0 to 253402300799"),
            ("/api/v1/query?query=node_load1&time=-5", "time must be a time in Unix seconds"),
            ("/api/v1/query?query=node_load1&time=nan", "time must be a time in Unix seconds"),
            ("/api/v1/query_range?query=node_load1&start=0&end=1e300", "end must be a time in Unix seconds"),
            ("/api/v1/query_range?query=node_load1&since=1e300&step=1s", "since must be a duration such as 7d, 2h or 90s (0s to 100y)"),
            ("/api/v1/query_range?query=node_load1&since=1h&step=9999999999y", "step must be a duration"),
            ("/api/v1/query?query=node_load1&function=rate&window=1e300", "window must be a duration"),
            ("/api/v1/query?query=node_load1&aggregate=topk&k=99999999999999999999", "topk needs k"),
            ("/api/v1/alerts/history?limit=1e300", "limit must be a whole number from 1 to 10000"),
        ] {
            let reply = try await get(path)
            #expect(reply.status == 400 && reply.body.contains(words), "\(path): \(reply.status) \(reply.body)")
        }
        for (body, words) in [
            (#"{"matchers": "alertname=X", "duration": "1e300"}"#, "duration must be a duration such as 7d, 2h or 90s (0s to 100y)"),
            (#"{"matchers": "alertname=X", "starts_in": "1e300"}"#, "starts_in must be a duration"),
            (#"{"matchers": "alertname=X", "duraton": "2h"}"#, "unknown field duraton (known: comment, created_by, duration, matchers, starts_in)"),
        ] {
            let reply = try await post("/api/v1/silences", body)
            #expect(reply.status == 400 && reply.body.contains(words), "\(body): \(reply.status) \(reply.body)")
        }
        let folder = daemon.root.path
        for (body, words) in [
            (#"{"command": ["true"], "directory": "\#(folder)", "time_limit_ms": 9223372036854775807}"#,
             "time_limit_ms must be from 1 to 3153600000000 (100 years), not 9223372036854775807"),
            (#"{"command": ["true"], "directory": "\#(folder)", "expected_duration_ms": -1}"#, "expected_duration_ms must be from 1"),
            (#"{"command": ["true"], "directory": "\#(folder)", "gpus": 100000}"#, "gpus must be from 0 to 1024"),
            (#"{"command": ["true"], "directory": "\#(folder)", "cost_limit": 1e300}"#, "cost_limit must be a number from 0 to 1e15"),
            (#"{"command": ["true"], "directory": "\#(folder)", "time_limit": 5}"#, "unknown field time_limit (known: after, command"),
            (#"[{"command": ["true"], "directory": "\#(folder)"}, {"command": ["true"], "directory": "\#(folder)", "gpu": 1}]"#,
             "task 2: unknown field gpu"),
        ] {
            let reply = try await post("/api/v1/tasks", body)
            #expect(reply.status == 400 && reply.body.contains(words), "\(body): \(reply.status) \(reply.body)")
        }
        // A matcher that pins a backtracking engine for minutes is one linear pass here.
        let started = ContinuousClock.now
        let regex = try await get("/api/v1/query?query=" + #"{__name__=~"(.*.*.*.*.*.*.*)X"}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
        #expect(regex.status == 200 && regex.json["result"] as? [Any] != nil, "\(regex.body)")
        #expect(ContinuousClock.now - started < .seconds(5))
        let badRegex = try await get("/api/v1/query?query=" + #"{job=~"(a"}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
        #expect(badRegex.status == 400 && badRegex.body.contains("invalid regular expression") && badRegex.body.contains("missing )"))

        // DNS rebinding: another name in Host is refused; loopback names and addresses are this daemon.
        let foreign = raw(daemon.port, "GET /api/v1/gpus HTTP/1.1\r\nHost: evil.example:\(daemon.port)\r\nConnection: close\r\n\r\n")
        #expect(foreign.status == 421 && foreign.reply.contains("does not answer for the host name evil.example"), "\(foreign.reply)")
        for host in ["localhost:\(daemon.port)", "127.0.0.1:\(daemon.port)", "127.0.0.1"] {
            let mine = raw(daemon.port, "GET /healthz HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
            #expect(mine.status == 200, "\(host): \(mine.reply)")
        }
        // The dashboard's headers: a strict CSP, no frames, no sniffing, no referrer.
        let page = raw(daemon.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").reply.lowercased()
        for header in ["content-security-policy: default-src 'none'; script-src 'self'", "x-frame-options: deny",
                       "x-content-type-options: nosniff", "referrer-policy: no-referrer"] {
            #expect(page.contains(header), "\(header) in \(page.prefix(600))")
        }
        await Self.healthy(daemon)
    }

    @Test("a slow header is cut off, a flood from one peer is capped, and /healthz answers beside both")
    func connections() async throws {
        let daemon = try TestDaemon(config: "http:\n  header_timeout: 1s\n  max_connections_per_peer: 8\n", rules: [:])
        try await daemon.start()
        // A client that sends half a header and waits is closed after the header timeout.
        let slow = try #require(RawConnection(port: daemon.port))
        slow.send("GET /healthz HTTP/1.1\r\nHo")
        #expect(slow.closedByPeer, "the daemon closed a connection whose header never finished")
        // 20 idle connections from 127.0.0.1: the 9th and later are closed at once; the first 8 stay open.
        let flood = (0..<20).compactMap { _ in RawConnection(port: daemon.port) }
        try await Task.sleep(for: .milliseconds(300))
        let closed = flood.suffix(12).filter(\.closedByPeer).count
        #expect(closed == 12, "connections beyond the per-peer cap are closed (\(closed) of 12)")
        // Another peer address of this host is not held back by the flood (the flooding address is, until it lets go).
        await Self.healthy(daemon, from: "127.0.0.2")
        withExtendedLifetime(flood) {}
        for connection in flood { shutdown(connection.fd, Int32(SHUT_RDWR)) }
        try await Task.sleep(for: .milliseconds(300))
        await Self.healthy(daemon)
    }

    /// The daemon runs from its folder with the default relative data_dir; the tasks run in another folder.
    /// Every task records each start; its exit status is its id modulo 3.
    @Test("kill -9 loop: 20 restarts with 30 tasks started from another folder; each runs once and ends with its true status")
    func killLoop() async throws {
        let daemon = try TestDaemon(config: "", rules: [:])
        let elsewhere = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-e2e-elsewhere-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        try await daemon.start()
        // The CLI runs in the other folder too, where the relative data folder has no token: it is given.
        let client = ["VIGIL_URL": daemon.base, "VIGIL_TOKEN": try daemon.token()]
        let starts = elsewhere.appendingPathComponent("starts.log").path
        var expected: [Int: Int] = [:]
        for index in 1...30 {
            let status = index % 3
            let script = "echo \"$VIGIL_TASK_ID\" >> '\(starts)'; sleep 0.\(index % 7 + 2); exit \(status)"
            let submitted = try await E2E.run(["submit", "--name", "t\(index)", "--", "sh", "-c", script],
                                              environment: client, directory: elsewhere)
            #expect(submitted.status == 0, "\(submitted.stderr)")
            expected[Int(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0] = status
        }
        for round in 0..<20 {
            try await Task.sleep(for: .milliseconds(150 + (round % 4) * 100))
            daemon.crash()
            try await daemon.start()
        }
        let all = try await daemon.poll("/api/v1/tasks") { reply in
            ((reply["tasks"] as? [[String: Any]]) ?? []).allSatisfy { (($0["task"] as? [String: Any])?["state"] as? String).map(Self.finished.contains) ?? false }
        }
        let tasks = ((all["tasks"] as? [[String: Any]]) ?? []).compactMap { $0["task"] as? [String: Any] }
        #expect(tasks.count == 30)
        for task in tasks {
            let id = task["id"] as? Int ?? 0
            let status = expected[id] ?? -1
            #expect(task["state"] as? String == (status == 0 ? "succeeded" : "failed"), "task \(id): \(task)")
            #expect(task["exit_code"] as? Int == status, "task \(id): \(task)")
        }
        let started = try String(contentsOfFile: starts, encoding: .utf8).split(separator: "\n").map { Int($0) ?? 0 }
        #expect(started.sorted() == Array(1...30), "each task started exactly once: \(started.sorted())")
    }

    static let finished: Set<String> = ["succeeded", "failed", "cancelled", "stopped", "lost"]
}

/// The fuzz targets' seeds (and any input a fuzzing run once crashed on, once added there) replayed through the
/// ordinary build of `vigil-fuzz`: what libFuzzer found stays a regression test without libFuzzer.
@Suite("fuzz corpora replayed")
struct FuzzCorpusTests {
    @Test("every fuzz target takes its seeds without crashing", arguments: ["exposition", "line-protocol", "selector", "duration", "manifest", "api"])
    func replay(target: String) async throws {
        let fuzz = try E2E.vigil().deletingLastPathComponent().appendingPathComponent("vigil-fuzz")
        let seeds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/fuzz/\(target)")
        let process = Process()
        process.executableURL = fuzz
        process.arguments = [target, seeds.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let count = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        #expect(count > 0, "\(text)")
    }
}
