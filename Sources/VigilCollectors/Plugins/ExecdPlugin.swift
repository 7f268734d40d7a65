import Foundation
import Logging
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// `execd`: a long-running child, as Telegraf's execd input runs it. Each round Vigil writes a newline
/// to its stdin; it answers with Prometheus text or Influx lines on stdout, ending the answer with an
/// empty line or simply going quiet for a moment (50 ms). Lines it writes to stderr starting `E!`, `W!`,
/// `I!` or `D!` go to Vigil's log at that level (others at info).
///
/// A child that exits or crashes is started again after a backoff (1 s, doubling to 60 s) and counted in
/// `vigil_plugin_restarts_total`; one that leaves three requests in a row unanswered is killed with its
/// process group and started again; one that floods past its output limit is killed.
public final class ExecdPlugin: Collector, @unchecked Sendable {
    public let name: String
    public let command: [String]
    public let directory: String
    public let format: MetricTextFormat?
    public let timeout: Int64
    public let limits: PluginLimits
    private let logger: Logger
    private let clock: any WallClock
    // Guarded by `lock`; collect runs on the collector's serial queue, deinit may run elsewhere.
    private let lock = NSLock()
    private var child: ChildProcess.Spawned?
    private var restarts = 0
    private var unanswered = 0
    private var restartAt: Timestamp = 0
    private var backoff: Int64 = 0
    private var lastExit: String?

    public init(name: String, command: [String], directory: String, format: MetricTextFormat? = nil, timeout: Int64 = 5000,
                limits: PluginLimits = PluginLimits(), clock: any WallClock = SystemWallClock(), logger: Logger) {
        self.name = name
        self.command = command
        self.directory = directory
        self.format = format
        self.timeout = timeout
        self.limits = limits
        self.clock = clock
        self.logger = logger
    }

    deinit {
        if let child { stop(child) }
    }

    public func collect() throws -> SampleBatch {
        try lock.withLock { try round() }
    }

    private func round() throws -> SampleBatch {
        if child == nil {
            let now = clock.now()
            guard now >= restartAt else {
                throw PluginError(plugin: name, "\(lastExit ?? "stopped"); starting again in \(DurationParser.format(milliseconds: restartAt - now))")
            }
            try start()
        }
        guard let running = child else { throw PluginError(plugin: name, "not running") }
        // Ask for a sample. EPIPE: it is gone.
        var newline: UInt8 = 10
        if write(running.stdin, &newline, 1) != 1 {
            throw ended(running, "closed its stdin")
        }
        let deadline = ChildProcess.monotonicMilliseconds() + timeout
        var received: [UInt8] = []
        var lastData: Int64?
        var buffer = [UInt8](repeating: 0, count: 65536)
        answer: while true {
            let now = ChildProcess.monotonicMilliseconds()
            if now >= deadline { break }
            // Quiet for 50 ms after some output: the answer is complete.
            let wait = lastData.map { max(0, $0 + 50 - now) } ?? (deadline - now)
            if lastData != nil && wait == 0 { break }
            var fd = pollfd(fd: running.stdout, events: Int16(POLLIN), revents: 0)
            let ready = poll(&fd, 1, Int32(min(wait, deadline - now)))
            if ready < 0 && errno != EINTR { break }
            if ready == 0 {
                if lastData != nil { break }
                continue
            }
            let n = read(running.stdout, &buffer, buffer.count)
            if n <= 0 { throw ended(running, "closed its stdout") }
            received.append(contentsOf: buffer[0..<n])
            lastData = ChildProcess.monotonicMilliseconds()
            if received.count > limits.outputBytes {
                stop(running)
                child = nil
                schedule("printed more than \(limits.outputBytes) bytes in one answer; its process group was killed")
                throw PluginError(plugin: name, lastExit!)
            }
            // An empty line ends an answer at once.
            if received.count >= 2 && received[received.count - 1] == 10 && received[received.count - 2] == 10 { break answer }
            if received == [10] { break answer }
        }
        guard lastData != nil else {
            unanswered += 1
            if unanswered >= 3 {
                stop(running)
                child = nil
                schedule("left \(unanswered) requests unanswered; its process group was killed")
                throw PluginError(plugin: name, lastExit!)
            }
            throw PluginError(plugin: name, "no answer within \(DurationParser.format(milliseconds: timeout))")
        }
        unanswered = 0
        backoff = 0
        var batch = try PluginError.parse(received, format: format, limits: limits, plugin: name)
        batch.counter("vigil_plugin_restarts_total", "Times a long-running plugin was started again after it ended.",
                      ["plugin": name], Double(restarts))
        return batch
    }

    private func start() throws {
        let spawned: ChildProcess.Spawned
        do {
            spawned = try ChildProcess.spawn(command, directory: directory, environment: nil, stdinPipe: true)
        } catch {
            schedule("\(error)")
            throw PluginError(plugin: name, "\(error)")
        }
        // Writes to a child that is gone fail with EPIPE instead of killing the daemon.
        signal(SIGPIPE, SIG_IGN)
        child = spawned
        unanswered = 0
        let logger = self.logger, name = self.name, stderr = spawned.stderr
        let thread = Thread { ExecdPlugin.relay(stderr, plugin: name, logger: logger) }
        thread.name = "vigil-plugin-\(name)-stderr"
        thread.start()
        logger.info("plugin started", metadata: ["plugin": "\(name)", "plugin.pid": "\(spawned.pid)"])
    }

    /// The child ended (or must): reap it, schedule the restart, and describe what happened.
    private func ended(_ running: ChildProcess.Spawned, _ what: String) -> PluginError {
        let exit = stop(running, expectingExit: true)
        child = nil
        schedule(exit.map { "\(what): it \($0)" } ?? what)
        return PluginError(plugin: name, lastExit!)
    }

    private func schedule(_ what: String) {
        restarts += 1
        backoff = min(max(backoff * 2, 1000), 60_000)
        restartAt = clock.now() + backoff
        lastExit = what
        logger.warning("plugin ended; starting it again after a backoff", metadata: [
            "plugin": "\(name)", "plugin.reason": "\(what)", "plugin.restart_in": "\(DurationParser.format(milliseconds: backoff))",
        ])
    }

    /// Kills the child's process group and reaps it. With `expectingExit` (it closed its pipes) it is
    /// given a moment to finish exiting, and how it ended is returned.
    @discardableResult
    private func stop(_ running: ChildProcess.Spawned, expectingExit: Bool = false) -> String? {
        var status: Int32 = 0
        var reaped = false
        for _ in 0..<(expectingExit ? 40 : 0) {
            if waitpid(running.pid, &status, WNOHANG) == running.pid {
                reaped = true
                break
            }
            usleep(5000)
        }
        kill(-running.pid, SIGKILL)
        ChildProcess.sweep(running)
        if !reaped {
            while waitpid(running.pid, &status, 0) < 0 && errno == EINTR {}
        }
        close(running.stdin)
        close(running.stdout)
        guard reaped else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
    }

    /// Copies the child's stderr to the log, by Telegraf's level prefixes, until it closes.
    private static func relay(_ fd: Int32, plugin: String, logger: Logger) {
        defer { close(fd) }
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending.append(contentsOf: buffer[0..<n])
            while let end = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeSubrange(...end)
                guard !line.isEmpty else { continue }
                let level: Logger.Level
                var text = Substring(line)
                switch line.prefix(2) {
                case "E!": level = .error
                case "W!": level = .warning
                case "I!": level = .info
                case "D!": level = .debug
                default: level = .info
                }
                if level != .info || line.hasPrefix("I!") { text = text.dropFirst(2).drop { $0 == " " } }
                logger.log(level: level, "\(text)", metadata: ["plugin": "\(plugin)"])
            }
        }
    }
}
