import ArgumentParser
import Foundation
import VigilCore
import VigilRules
import VigilState
import VigilStore

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "The running daemon's alerts: firing, pending and recently resolved, with silences.",
        discussion: "Add --history to read the state changes recorded in the data folder instead."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Flag(name: .long, help: "Show the recorded history of state changes (from the database, no daemon needed).") var history = false
    @Option(name: .long, help: ArgumentHelp("Rows of history.", valueName: "n")) var limit = 50

    struct Reply: Decodable {
        var alerts: [AlertView]
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if history {
            let database = try StateDatabase(dataDirectory: configuration.dataDirectory)
            let entries = try database.alertHistory(limit: limit)
            if json {
                print(String(decoding: try encoder.encode(entries), as: UTF8.self))
                return
            }
            var rows = [["Time", "Rule", "Change", "Value", "Labels"]]
            for entry in entries {
                rows.append([RFC3339.string(entry.time), entry.rule, "\(entry.fromState) → \(entry.toState)", Format.number(entry.value),
                             Self.labels(entry.labels)])
            }
            print(TextTable.render(rows, rightAligned: [3]), terminator: "")
            return
        }
        let reply = try await daemon.get("/api/v1/alerts", configuration, as: Reply.self)
        if json {
            print(String(decoding: try encoder.encode(reply.alerts), as: UTF8.self))
            return
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var rows = [["Alert", "State", "Severity", "Since", "Value", "Labels", "Summary"]]
        let order: [AlertState: Int] = [.firing: 0, .pending: 1, .inactive: 2]
        for alert in reply.alerts.sorted(by: { (order[$0.state]!, $0.rule) < (order[$1.state]!, $1.rule) }) {
            var state = alert.state == .inactive ? "resolved" : alert.state.rawValue
            if !alert.silencedBy.isEmpty { state += " (silenced)" } else if alert.inhibited { state += " (inhibited)" }
            if alert.flapping { state += " (flapping)" }
            let since = alert.state == .inactive ? alert.resolvedAt ?? alert.activeAt : alert.activeAt
            var labels = alert.labels
            labels["alertname"] = nil
            labels["severity"] = nil
            rows.append([alert.rule, state, alert.labels["severity"] ?? "", DurationParser.format(milliseconds: max(0, now - since) / 1000 * 1000),
                         Format.number(alert.value), Labels(dictionary: labels).description, alert.annotations["summary"] ?? ""])
        }
        print(TextTable.render(rows, rightAligned: [4]), terminator: "")
        if reply.alerts.isEmpty { print("no alerts") }
    }

    static func labels(_ json: String) -> String {
        let decoded = (try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))) ?? [:]
        return Labels(dictionary: decoded).description
    }
}

struct SilenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silence",
        abstract: "Add, list and remove silences (kept in the data folder; the daemon applies them within a second).",
        subcommands: [Add.self, List.self, Remove.self],
        defaultSubcommand: List.self
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mute alerts matching every matcher, for a while.",
            discussion: "Example: vigil silence add alertname=GpuTooHot 'gpu=~\"0|1\"' --duration 2h --comment 'fan swap'"
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("Matchers: name=value, name!=value, name=~regex, name!~regex.", valueName: "matcher"))
        var matchers: [String]
        @Option(name: .long, help: ArgumentHelp("How long it lasts (default 1h).", valueName: "duration")) var duration = "1h"
        @Option(name: .long, help: ArgumentHelp("When it starts, as a delay from now (default now).", valueName: "duration")) var startsIn = "0s"
        @Option(name: .long, help: "Who created it (default: $USER).") var author: String?
        @Option(name: .long, help: "Why.") var comment = ""

        func run() throws {
            let configuration = try global.loadConfiguration()
            let text = matchers.joined(separator: ",")
            do { _ = try Silences.parseMatchers(text) } catch { throw ValidationError("\(error)") }
            guard let length = DurationParser.milliseconds(duration), length > 0 else { throw ValidationError("--duration must be a duration such as 2h") }
            guard let delay = DurationParser.milliseconds(startsIn) else { throw ValidationError("--starts-in must be a duration") }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let silence = SilenceRecord(matchers: text, startsAt: now + delay, endsAt: now + delay + length,
                                        createdBy: author ?? Self.userName(),
                                        comment: comment, createdAt: now)
            try StateDatabase(dataDirectory: configuration.dataDirectory).saveSilence(silence)
            print(silence.id)
        }

        /// $USER, else the account name of the real user id.
        static func userName() -> String {
            if let user = ProcessInfo.processInfo.environment["USER"], !user.isEmpty { return user }
            guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return "uid \(getuid())" }
            return String(cString: name)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "Silences in force (--all: expired too).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Include expired silences.") var all = false
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            let configuration = try global.loadConfiguration()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let database = try StateDatabase(dataDirectory: configuration.dataDirectory)
            let silences = try all ? database.silences() : database.silences().filter { $0.endsAt > now }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(silences), as: UTF8.self))
                return
            }
            var rows = [["ID", "Matchers", "State", "Ends", "Author", "Comment"]]
            for silence in silences {
                let state = silence.endsAt <= now ? "expired" : silence.startsAt > now ? "pending" : "active"
                rows.append([String(silence.id.prefix(8)), silence.matchers, state, RFC3339.string(silence.endsAt), silence.createdBy, silence.comment])
            }
            print(TextTable.render(rows, rightAligned: []), terminator: "")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Expire a silence now (its id, or the first characters of it).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Silence id or a unique prefix.") var id: String

        func run() throws {
            let configuration = try global.loadConfiguration()
            let database = try StateDatabase(dataDirectory: configuration.dataDirectory)
            let ids = try database.silenceIDs(prefix: id)
            guard ids.count == 1 else {
                throw ValidationError(ids.isEmpty ? "no silence has an id starting with \(id)" : "\(id) is the start of \(ids.count) silences; give more characters")
            }
            try database.expireSilence(id: ids[0], at: Int64(Date().timeIntervalSince1970 * 1000))
            print("expired \(ids[0])")
        }
    }
}
