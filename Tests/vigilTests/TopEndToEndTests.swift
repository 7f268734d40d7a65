import Foundation
import Testing

/// Runs `vigil top` in a pseudo-terminal (util-linux `script`), typing `keys` once the screen shows
/// `ready`; returns the screen output and the exit status.
private func inTerminal(_ arguments: String, environment: [String: String], keys: [(after: String, send: String)]) async throws -> (String, Int32) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
    process.arguments = ["-q", "-e", "-c", "\(try E2E.vigil().path) \(arguments)", "/dev/null"]
    // The test runner's own NO_COLOR (when it has one) must not leak into the colour check.
    var inherited = E2E.environment(environment.merging(["TERM": "xterm"]) { a, _ in a })
    if environment["NO_COLOR"] == nil { inherited["NO_COLOR"] = nil }
    process.environment = inherited
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = output
    let screen = ScreenBuffer()
    output.fileHandleForReading.readabilityHandler = { handle in screen.append(handle.availableData) }
    try process.run()
    for key in keys {
        let deadline = ContinuousClock.now + .seconds(15)
        while !screen.text.contains(key.after) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(screen.text.contains(key.after), "never showed \(key.after):\n\(screen.plain)")
        screen.mark()
        input.fileHandleForWriting.write(Data(key.send.utf8))
    }
    let deadline = ContinuousClock.now + .seconds(10)
    while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    output.fileHandleForReading.readabilityHandler = nil
    return (screen.all, process.terminationStatus)
}

/// Byte search: escape sequences next to other text do not always fall on Swift's character boundaries.
private func has(_ text: String, _ part: String) -> Bool { Data(text.utf8).range(of: Data(part.utf8)) != nil }

private final class ScreenBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var marked = 0

    func append(_ more: Data) { lock.withLock { data.append(more) } }
    /// What arrived since the last `mark()` (so a key's effect is looked for in the frames after it).
    var text: String { lock.withLock { String(decoding: data[marked...], as: UTF8.self) } }
    func mark() { lock.withLock { marked = data.count } }
    /// Everything that arrived.
    var all: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    /// The text without escape sequences.
    var plain: String { text.replacingOccurrences(of: "\u{1B}\\[[0-9;?]*[A-Za-z]", with: "", options: .regularExpression) }
}

@Suite("vigil top in a terminal", .serialized)
struct TopEndToEndTests {
    @Test("vigil top draws the fake library's 8 GPUs with bars, their processes, tasks and the host; keys sort and q quits")
    func live() async throws {
        let daemon = try TestDaemon(config: "", rules: [:])
        let library = try E2E.vigil().deletingLastPathComponent().appendingPathComponent("libVigilFakeNVML.so").path
        let scenario = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/VigilFakeNVML/eight-gpus.json").path
        daemon.environment = ["VIGIL_NVML_LIBRARY": library, "VIGIL_FAKE_NVML_CONFIG": scenario]
        try await daemon.start()
        defer { FileManager.default.createFile(atPath: daemon.root.appendingPathComponent("go").path, contents: Data()) }
        let wait = "while [ ! -e '\(daemon.root.path)/go' ]; do sleep 0.05; done"
        _ = try await daemon.cli(["submit", "--name", "preprocess", "--", "sh", "-c", wait])
        _ = try await daemon.cli(["submit", "--name", "finetune", "--gpus", "1", "--gpu-mem", "4G", "--", "sh", "-c", wait])
        for id in [1, 2] {
            _ = try await daemon.poll("/api/v1/tasks/\(id)") { ($0["task"] as? [String: Any])?["state"] as? String == "running" }
        }

        let (screen, status) = try await inTerminal("top --interval 200ms --url \(daemon.base)", environment: [:], keys: [
            (after: "sorted by index", send: "u"), (after: "sorted by util", send: "q"),
        ])
        #expect(status == 0)
        let plain = screen.replacingOccurrences(of: "\u{1B}\\[[0-9;?]*[A-Za-z]", with: "", options: .regularExpression)
        // Sorted by utilisation: GPU 0 (92 %) first, then 1 (88 %), 3 (71 %) … the A100 in MIG mode (no figure) last.
        // (Lines end in "\r\r\n" through the terminal, which Swift takes as one character: split on scalars.)
        let rows = plain.components(separatedBy: .newlines).filter { $0.contains("NVIDIA") && $0.contains("[") }
        #expect(rows.count >= 16, "a frame sorted by index, then one by utilisation:\n\(plain)")
        #expect(rows.prefix(8).compactMap { Int($0.split(separator: " ").first ?? "") } == Array(0..<8))
        #expect(rows.suffix(8).compactMap { Int($0.split(separator: " ").first ?? "") } == [0, 1, 3, 5, 6, 7, 2, 4])
        #expect(plain.contains("█") && plain.contains(" 92%]") && plain.contains("/80.0G]"), "bars with figures")
        #expect(plain.contains("preprocess") && plain.contains("finetune") && plain.contains("2 active"), "\(plain)")
        #expect(plain.contains("PROCESSES") && plain.contains("62 GiB"), "the scenario's process on GPU 0")
        #expect(has(screen, "\u{1B}[32m") && has(screen, "\u{1B}[31m"), "colours on a terminal")
        #expect(has(screen, "\u{1B}[?1049l") && has(screen, "\u{1B}[?25h"), "the screen and cursor are given back")

        // NO_COLOR: the same screen without colours.
        let (uncoloured, _) = try await inTerminal("top --interval 200ms --url \(daemon.base)", environment: ["NO_COLOR": "1"],
                                                   keys: [(after: "sorted by index", send: "q")])
        #expect(uncoloured.contains("NVIDIA H100") && !has(uncoloured, "\u{1B}[32m") && !has(uncoloured, "\u{1B}[31m"))

        // --once, for scripts: one plain frame.
        let once = try await daemon.cli(["top", "--once", "--sort", "temp"])
        #expect(once.status == 0 && !has(once.stdout, "\u{1B}["), "\(once.stderr)")
        #expect(once.stdout.split(separator: "\n").filter { $0.contains("NVIDIA") && $0.contains("°C") }.count == 8, "\(once.stdout)")
    }
}
