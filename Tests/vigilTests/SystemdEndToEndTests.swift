import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket standing in for systemd's notify socket.
final class NotifyListener {
    let path: String
    private let fd: Int32

    init() throws {
        path = NSTemporaryDirectory() + "vigil-notify-\(UUID().uuidString.prefix(8))"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Messages until one contains `text` (15 s at most); all of them, in order.
    func receive(until text: String) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(15)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { continue }
            let message = String(decoding: buffer[..<count], as: UTF8.self)
            messages.append(message)
            if message.contains(text) { break }
        }
        return messages
    }
}

@Suite("the daemon under systemd", .serialized)
struct SystemdEndToEndTests {
    static func rule(_ name: String) -> String {
        """
        local vigil = require "vigil"
        vigil.alert "\(name)" {
          every = "1s",
          query = function(q) return q.count_over_time("vigil_store_series", "6s") end,
          summary = "{{value}} samples in 6 s",
        }
        """
    }

    @Test("sd_notify READY, RELOADING and STOPPING; SIGHUP makes a changed rule live (file watching off) with no gap in samples")
    func reloadAndNotify() async throws {
        let listener = try NotifyListener()
        // The rules folder is not watched (1 h): only SIGHUP can bring the edit in.
        let daemon = try TestDaemon(config: "rules:\n  watch_interval: 1h\n", rules: ["r.lua": Self.rule("Before")])
        daemon.environment["NOTIFY_SOCKET"] = listener.path
        try await daemon.start()
        let ready = listener.receive(until: "READY=1")
        #expect(ready.last?.hasPrefix("READY=1") == true, "\(ready)")
        // Until the 6 s window is full of the self collector's 1 s samples.
        let full = try await daemon.poll("/api/v1/alerts") { Double(daemon.summary($0, "Before")?.split(separator: " ").first ?? "") ?? 0 >= 6 }
        #expect(daemon.summary(full, "Before") == "6 samples in 6 s", "\(full)")

        try daemon.write("r.lua", Self.rule("After"))
        try await Task.sleep(for: .seconds(1.5))
        let unchanged = try await daemon.poll("/api/v1/alerts") { _ in true }
        #expect(daemon.alert(unchanged, "After") == nil, "without SIGHUP the edit waits (watching is off)")

        let pid = try #require(daemon.process?.processIdentifier)
        kill(pid, SIGHUP)
        let reload = listener.receive(until: "READY=1")
        #expect(reload.first?.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") == true && reload.last?.hasPrefix("READY=1") == true, "\(reload)")
        let after = try await daemon.poll("/api/v1/alerts") { daemon.summary($0, "After") != nil }
        #expect(daemon.alert(after, "Before") == nil || daemon.alert(after, "Before")?["state"] as? String == "inactive")
        // The store went on through the reload: the self collector's 1 s samples over the last 6 s are there
        // (one may be late on a loaded machine; a restart, or a pause in collection, would leave a few).
        for _ in 0..<3 {
            try await Task.sleep(for: .seconds(1))
            let reply = try await daemon.poll("/api/v1/alerts") { _ in true }
            let count = Double(daemon.summary(reply, "After")?.split(separator: " ").first ?? "") ?? 0
            #expect(count >= 5, "\(count) samples in the 6 s around the reload")
        }
        #expect(daemon.process?.processIdentifier == pid && daemon.process?.isRunning == true, "the same process")

        daemon.stop()
        let stopping = listener.receive(until: "STOPPING=1")
        #expect(stopping.last?.hasPrefix("STOPPING=1") == true, "\(stopping)")
    }
}

@Suite("shell completions")
struct CompletionTests {
    @Test("bash, zsh and fish completion scripts come from the command definitions and name every command")
    func completions() async throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try await E2E.run(["--generate-completion-script", shell])
            #expect(script.status == 0)
            for command in ["serve", "submit", "queue", "report", "recommendations", "service-unit", "status", "cost"] {
                #expect(script.stdout.contains(command), "\(shell) completion lacks \(command)")
            }
            #expect(script.stdout.contains("markdown"), "\(shell): --format's values are offered")
        }
        // The bash script parses, and completes subcommands of `vigil report`.
        let file = NSTemporaryDirectory() + "vigil-completion-\(UUID().uuidString).bash"
        try (try await E2E.run(["--generate-completion-script", "bash"])).stdout.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let bash = Process()
        bash.executableURL = URL(fileURLWithPath: "/bin/bash")
        bash.arguments = ["-c", """
            shopt -s extglob; source '\(file)'
            COMP_LINE='vigil report c'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(vigil report c); COMP_CWORD=2; COMPREPLY=()
            _vigil; echo "${COMPREPLY[*]}"
            """]
        let out = Pipe()
        bash.standardOutput = out
        bash.environment = ["PATH": URL(fileURLWithPath: try E2E.vigil().path).deletingLastPathComponent().path + ":/usr/bin:/bin"]
        try bash.run()
        bash.waitUntilExit()
        let offered = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(bash.terminationStatus == 0 && offered.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.contains("cost"),
                "\(offered)")
    }
}
