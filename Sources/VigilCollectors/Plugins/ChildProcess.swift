import CVigilSystem
import Foundation
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// A child started with posix_spawn in a process group of its own, with a clean signal mask (threads
/// of a Swift process block signals that a child would otherwise inherit), its output read with
/// limits, and the whole group killed when it overruns.
public struct ChildProcess {
    public struct Outcome {
        /// Exit status, when it exited.
        public var status: Int32?
        /// The signal that ended it, when one did.
        public var signal: Int32?
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        public var timedOut = false
        /// stdout went past the limit and the child was killed.
        public var overflowed = false

        /// What went wrong, in words, or nil when it exited 0 within its limits.
        public func failure(timeout: Int64, limit: Int) -> String? {
            if timedOut { return "timed out after \(DurationParser.format(milliseconds: timeout)); its process group was killed" }
            if overflowed { return "printed more than \(limit) bytes; its process group was killed" }
            if let signal { return "killed by signal \(signal)\(stderrTail)" }
            if let status, status != 0 { return "exited with status \(status)\(stderrTail)" }
            return nil
        }

        private var stderrTail: String {
            let text = String(decoding: stderr.suffix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? "" : ": \(text)"
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        let command: String
        let code: Int32
        var description: String { "cannot start \(command): \(String(cString: strerror(code)))" }
    }

    /// Runs `argv` to completion (or to its deadline) and returns what it printed. `input`, when given,
    /// is written to its standard input, which is then closed.
    public static func run(_ argv: [String], directory: String? = nil, environment: [String: String]? = nil,
                           input: [UInt8]? = nil, timeout: Int64, outputLimit: Int) throws -> Outcome {
        let child = try spawn(argv, directory: directory, environment: environment, stdinPipe: input != nil)
        defer { sweep(child) }
        if let input {
            // Small payloads (an alert as JSON) fit the pipe; a child that exits early just closes it.
            var written = 0
            signal(SIGPIPE, SIG_IGN)
            while written < input.count {
                let n = input[written...].withUnsafeBytes { write(child.stdin, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                written += n
            }
            close(child.stdin)
        }
        defer {
            close(child.stdout)
            close(child.stderr)
        }
        let deadline = monotonicMilliseconds() + timeout
        var outcome = Outcome(stdout: [], stderr: [])
        var open: [Int32] = [child.stdout, child.stderr]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            let remaining = deadline - monotonicMilliseconds()
            if remaining <= 0 { outcome.timedOut = true; break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 1000)))
            if ready < 0 && errno != EINTR { break }
            for entry in fds where entry.revents != 0 {
                let n = read(entry.fd, &buffer, buffer.count)
                if n <= 0 {
                    open.removeAll { $0 == entry.fd }
                    continue
                }
                if entry.fd == child.stdout {
                    outcome.stdout.append(contentsOf: buffer[0..<n])
                    if outcome.stdout.count > outputLimit { outcome.overflowed = true }
                } else if outcome.stderr.count < 65536 {
                    outcome.stderr.append(contentsOf: buffer[0..<n])
                }
            }
            if outcome.overflowed { break }
        }
        if outcome.timedOut || outcome.overflowed { kill(-child.pid, SIGKILL) }
        // The pipes are closed (or the group killed): the child is exiting. Reap it, killing the group
        // if it lingers past the deadline with its pipes closed.
        var status: Int32 = 0
        while true {
            let reaped = waitpid(child.pid, &status, WNOHANG)
            if reaped == child.pid { break }
            if reaped < 0 && errno != EINTR { return outcome }
            if monotonicMilliseconds() > deadline && !outcome.timedOut {
                outcome.timedOut = true
                kill(-child.pid, SIGKILL)
            }
            usleep(1000)
        }
        // Whatever else the plugin started in its group goes with it.
        kill(-child.pid, SIGKILL)
        if status & 0x7f == 0 {
            outcome.status = (status >> 8) & 0xff
        } else {
            outcome.signal = status & 0x7f
        }
        return outcome
    }

    struct Spawned {
        let pid: pid_t
        let stdin: Int32
        let stdout: Int32
        let stderr: Int32
        /// `VIGIL_RUN=…` in the environment of the child and everything it starts: the mark by which `sweep` finds
        /// what left the process group (a `setsid`, a double fork).
        let mark: [UInt8]
    }

    /// The variable that marks a run's processes.
    static let runVariable = "VIGIL_RUN"

    /// Kills every process that carries the run's mark: the process-group kill misses what called `setsid` or
    /// otherwise left the group, and such a process would outlive its plugin. The daemon's own processes never
    /// carry a mark (it is set only in children's environments).
    static func sweep(_ child: Spawned) {
        let own = getpid()
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != own,
                  case .success(let bytes) = BoundedFile.read("/proc/\(pid)/environ", limit: 1 << 20) else { continue }
            if bytes.split(separator: 0, omittingEmptySubsequences: true).contains(where: { $0.elementsEqual(child.mark) }) {
                kill(pid, SIGKILL)
            }
        }
    }

    /// Starts `argv` (looked up on PATH) in a new process group, with pipes for stdout and stderr
    /// (and stdin when asked; /dev/null otherwise).
    static func spawn(_ argv: [String], directory: String?, environment: [String: String]?, stdinPipe: Bool) throws -> Spawned {
        guard let program = argv.first else { throw SpawnError(command: "(empty command)", code: EINVAL) }
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [-1, -1]
        guard vigil_pipe_cloexec(&outPipe) == 0, vigil_pipe_cloexec(&errPipe) == 0,
              !stdinPipe || vigil_pipe_cloexec(&inPipe) == 0 else { throw SpawnError(command: program, code: errno) }
        let run = "\(runVariable)=\(UUID().uuidString)"
        var marked = environment ?? ProcessInfo.processInfo.environment
        marked[runVariable] = String(run.dropFirst(runVariable.count + 1))
        let (pid, result) = spawnInGroup(argv, directory: directory, environment: marked) { actions in
            if stdinPipe {
                posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
            } else {
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            }
            posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
            posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        }
        close(outPipe[1])
        close(errPipe[1])
        if stdinPipe { close(inPipe[0]) }
        guard result == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            if stdinPipe { close(inPipe[1]) }
            throw SpawnError(command: program, code: result)
        }
        return Spawned(pid: pid, stdin: inPipe[1], stdout: outPipe[0], stderr: errPipe[0], mark: Array(run.utf8))
    }

    /// posix_spawnp of `argv` (looked up on PATH) as the leader of a new process group, with a clean
    /// signal mask, default dispositions for the signals a daemon handles, every descriptor above 2 closed
    /// (a child outliving the daemon must not hold its sockets), in `directory`. `files` sets up 0, 1 and 2.
    /// Returns the pid and posix_spawn's result (0 on success).
    public static func spawnInGroup(_ argv: [String], directory: String?, environment: [String: String],
                                    files: (inout posix_spawn_file_actions_t) -> Void) -> (pid_t, Int32) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        files(&actions)
        if let directory { vigil_spawn_file_actions_addchdir(&actions, directory) }
        vigil_spawn_file_actions_addclosefrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let env = environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        var result: Int32 = 0
        // ETXTBSY: the program was just written and a file descriptor open for writing it is still held
        // by a child some other thread forked in that moment. It passes at once; retry briefly.
        for attempt in 0..<5 {
            result = withCStrings(argv) { argvPointers in
                withCStrings(env) { envPointers in
                    posix_spawnp(&pid, argv[0], &actions, &attributes, argvPointers, envPointers)
                }
            }
            guard result == ETXTBSY else { break }
            usleep(UInt32(5_000 << attempt))
        }
        return (pid, result)
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    static func monotonicMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
