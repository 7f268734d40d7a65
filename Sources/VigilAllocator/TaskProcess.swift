import Foundation
import VigilCollectors
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// The processes of tasks: started with posix_spawn in a process group of their own, bound to their GPUs
/// by UUID, output to files; signalled as a group; recognised after a daemon restart by pid and start time.
///
/// The command runs under `/bin/sh`, which waits for it and writes its exit status to a file, so a task
/// re-adopted after a daemon restart (no longer our child, so no `waitpid`) still reports how it ended.
public enum TaskProcess {
    public struct Started: Sendable {
        public var pid: Int32
        public var startTicks: UInt64?
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The folder of one task's files: `stdout`, `stderr` and `exit` (its exit status once it ended).
    public static func folder(logs: String, id: Int64) -> String { (logs as NSString).appendingPathComponent(String(id)) }

    /// Marks the start (so a restart can tell "never ran" from "ran and vanished"), runs the command and writes
    /// its exit status where the daemon finds it, atomically.
    static let wrapper = #"""
        : > "$VIGIL_TASK_DIR/started"
        "$@"
        status=$?
        printf '%s\n' "$status" > "$VIGIL_TASK_DIR/exit.tmp" && mv "$VIGIL_TASK_DIR/exit.tmp" "$VIGIL_TASK_DIR/exit"
        exit "$status"
        """#

    /// Starts the task on `gpuUUIDs` (empty: no GPU visible). `user`, when the daemon runs as root and it
    /// names another account, is switched to with `setpriv`.
    public static func spawn(_ record: TaskRecord, logs: String, gpuUUIDs: [String]) throws -> Started {
        let folder = folder(logs: logs, id: record.id)
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw SpawnError(description: "cannot create \(folder): \(error.localizedDescription)")
        }
        var environment = record.spec.environment
        environment["CUDA_VISIBLE_DEVICES"] = gpuUUIDs.joined(separator: ",")
        environment["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        environment["VIGIL_TASK_ID"] = String(record.id)
        environment["VIGIL_TASK_DIR"] = folder
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        var argv = ["/bin/sh", "-c", wrapper, "vigil-task-\(record.id)"] + record.spec.command
        if geteuid() == 0, record.spec.owner != "root", getpwnam(record.spec.owner) != nil {
            argv = ["setpriv", "--reuid=\(record.spec.owner)", "--regid=\(record.spec.owner)", "--init-groups", "--"] + argv
        }

        let (pid, result) = ChildProcess.spawnInGroup(argv, directory: record.spec.directory, environment: environment) { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, (folder as NSString).appendingPathComponent("stdout"), O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_addopen(&actions, 2, (folder as NSString).appendingPathComponent("stderr"), O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        guard result == 0 else {
            let reason = String(cString: strerror(result))
            if result == ENOENT, !FileManager.default.fileExists(atPath: record.spec.directory) {
                throw SpawnError(description: "cannot start: the working folder \(record.spec.directory) does not exist")
            }
            throw SpawnError(description: "cannot start \(argv[0]): \(reason)")
        }
        return Started(pid: pid, startTicks: startTicks(pid))
    }

    /// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
    public static func startTicks(_ pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, so start time (22) is at offset 19.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// The process state letter (R, S, T for stopped, Z…) from /proc/PID/stat.
    public static func stateLetter(_ pid: Int32) -> Character? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ").first?.first
    }

    /// Whether `pid` is still the process we started (same start time), and not a zombie.
    public static func isAlive(_ pid: Int32, startTicks: UInt64?) -> Bool {
        guard let ticks = Self.startTicks(pid) else { return false }
        if let startTicks, ticks != startTicks { return false }
        return stateLetter(pid) != "Z"
    }

    /// How a child of ours ended, if it has: (exit status, signal). Nil while it runs (or when not our child).
    public static func reap(_ pid: Int32) -> (status: Int32?, signal: Int32?)? {
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        guard reaped == pid else { return nil }
        if status & 0x7f == 0 { return ((status >> 8) & 0xff, nil) }
        return (nil, status & 0x7f)
    }

    public static func signalGroup(_ pid: Int32, _ signal: Int32) {
        kill(-pid, signal)
    }

    /// The task's process (its group leader) found by the `VIGIL_TASK_DIR` in its environment: for a task the
    /// daemon started but could not record the pid of before it was killed. Nil when no such process runs.
    public static func findStarted(logs: String, id: Int64) -> Int32? {
        let marker = Array("VIGIL_TASK_DIR=\(folder(logs: logs, id: id))".utf8)
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), getpgid(pid) == pid,
                  case .success(let bytes) = BoundedFile.read("/proc/\(pid)/environ", limit: 1 << 20) else { continue }
            if bytes.split(separator: 0, omittingEmptySubsequences: true).contains(where: { $0.elementsEqual(marker) }),
               stateLetter(pid) != "Z" {
                return pid
            }
        }
        return nil
    }

    /// Whether the task's wrapper began (it marks that first thing).
    public static func hasStarted(logs: String, id: Int64) -> Bool {
        FileManager.default.fileExists(atPath: (folder(logs: logs, id: id) as NSString).appendingPathComponent("started"))
    }

    /// The exit status the wrapper wrote, when the task ended.
    public static func recordedExit(logs: String, id: Int64) -> Int32? {
        let path = (folder(logs: logs, id: id) as NSString).appendingPathComponent("exit")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
