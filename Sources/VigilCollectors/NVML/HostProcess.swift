import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about one process: the host side of a GPU process (proc(5)).
struct HostProcess: Equatable {
    var uid: UInt32
    var command: String
    var cpuSeconds: Double
    var residentBytes: UInt64

    static let clockTicks: Double = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? Double(ticks) : 100
    }()

    static let pageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 4096))

    /// Reads /proc/<pid>/{stat,status,cmdline} below `root`. nil when the process is gone or
    /// unreadable (it exited between NVML and /proc, or hidepid hides it): skipped this round.
    static func read(pid: Int, root: String = "/") -> HostProcess? {
        let base = (root.hasSuffix("/") ? root : root + "/") + "proc/\(pid)/"
        guard let stat = readText(base + "stat"), let parsed = parseStat(stat),
              let status = readText(base + "status") else { return nil }
        let uid = parseRealUID(status) ?? 0
        let argv = readText(base + "cmdline").map(parseCommandLine) ?? []
        return HostProcess(uid: uid, command: shorten(argv, comm: parsed.comm),
                           cpuSeconds: Double(parsed.utime + parsed.stime) / clockTicks,
                           residentBytes: parsed.rssPages * pageSize)
    }

    struct Stat: Equatable {
        var comm: String
        var utime: UInt64
        var stime: UInt64
        var rssPages: UInt64
    }

    /// `/proc/<pid>/stat`. The command is in parentheses and may itself hold spaces or ")", so the
    /// fields are counted from the last ")".
    static func parseStat(_ text: String) -> Stat? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") , open < close else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        // Fields after the command start at field 3 (state); utime is 14, stime 15, rss 24.
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard rest.count >= 22, let utime = UInt64(rest[11]), let stime = UInt64(rest[12]),
              let rss = Int64(rest[21]) else { return nil }
        return Stat(comm: comm, utime: utime, stime: stime, rssPages: UInt64(max(rss, 0)))
    }

    /// The real UID from `/proc/<pid>/status` ("Uid:\treal\teffective\tsaved\tfs").
    static func parseRealUID(_ status: String) -> UInt32? {
        for line in status.split(separator: "\n") where line.hasPrefix("Uid:") {
            return line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { UInt32($0) }
        }
        return nil
    }

    /// `/proc/<pid>/cmdline`: NUL-separated arguments.
    static func parseCommandLine(_ text: String) -> [String] {
        text.split(separator: "\0", omittingEmptySubsequences: true).map(String.init)
    }

    /// The label-sized command: the program's base name and its first arguments, at most
    /// `limit` characters; the kernel's 15-character name when the command line is empty (zombies).
    static func shorten(_ argv: [String], comm: String, limit: Int = 64) -> String {
        guard let program = argv.first else { return comm }
        let name = program.split(separator: "/").last.map(String.init) ?? program
        var text = ([name] + argv.dropFirst()).joined(separator: " ")
        text = String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
        if text.count > limit { text = String(text.prefix(limit - 1)) + "…" }
        return text
    }

    /// The user name of a UID (getpwuid_r), or the number when it has none.
    static func userName(_ uid: UInt32) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let status = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil, let name = entry.pw_name else { return String(uid) }
        return String(cString: name)
    }
}
