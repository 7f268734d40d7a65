import ArgumentParser
import Foundation
import VigilCore
import VigilRules
import VigilServer
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

struct SilenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silence",
        abstract: "Add, list and remove silences on the running daemon (kept in its data folder; applied within a second).",
        subcommands: [Add.self, List.self, Remove.self],
        defaultSubcommand: List.self
    )

    typealias View = MonitorRoutes.SilenceView

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mute alerts matching every matcher, for a while.",
            discussion: "Example: vigil silence add alertname=GpuTooHot 'gpu=~\"0|1\"' --duration 2h --comment 'fan swap'"
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument(help: ArgumentHelp("Matchers: name=value, name!=value, name=~regex, name!~regex.", valueName: "matcher"))
        var matchers: [String]
        @Option(name: .long, help: ArgumentHelp("How long it lasts (default 1h).", valueName: "duration")) var duration = "1h"
        @Option(name: .long, help: ArgumentHelp("When it starts, as a delay from now (default now).", valueName: "duration")) var startsIn = "0s"
        @Option(name: .long, help: "Who created it (default: $USER).") var author: String?
        @Option(name: .long, help: "Why.") var comment = ""

        struct Body: Encodable {
            var matchers: String
            var duration: String
            var startsIn: String
            var createdBy: String
            var comment: String
            enum CodingKeys: String, CodingKey { case matchers, duration, startsIn = "starts_in", createdBy = "created_by", comment }
        }

        func run() async throws {
            let text = matchers.joined(separator: ",")
            do { _ = try Silences.parseMatchers(text) } catch { throw ValidationError("\(error)") }
            guard let length = DurationParser.milliseconds(duration), length > 0 else { throw ValidationError("--duration must be a duration such as 2h") }
            guard DurationParser.milliseconds(startsIn) != nil else { throw ValidationError("--starts-in must be a duration") }
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                let data = try await daemon.send("POST", "/api/v1/silences", body: Body(matchers: text, duration: duration, startsIn: startsIn,
                                                                                        createdBy: author ?? Self.userName(), comment: comment), configuration)
                print(try JSONDecoder().decode(View.self, from: data).id)
            }
        }

        /// $USER, else the account name of the real user id.
        static func userName() -> String {
            if let user = ProcessInfo.processInfo.environment["USER"], !user.isEmpty { return user }
            guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return "uid \(getuid())" }
            return String(cString: name)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "Silences in force (--all: expired too).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Flag(name: .long, help: "Include expired silences.") var all = false
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try global.loadConfiguration()
            try await reportingRefusal {
                let silences = try JSONDecoder().decode(MonitorRoutes.SilencesReply.self, from: try await daemon.send("GET", "/api/v1/silences?all=\(all)", configuration)).silences
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try encoder.encode(silences), as: UTF8.self))
                    return
                }
                var rows = [["ID", "Matchers", "State", "Ends", "Author", "Comment"]]
                for silence in silences {
                    rows.append([String(silence.id.prefix(8)), silence.matchers, silence.state, RFC3339.string(silence.endsAt), silence.createdBy, silence.comment])
                }
                print(TextTable.render(rows, rightAligned: []), terminator: "")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Expire a silence now (its id, or the first characters of it).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var daemon: DaemonOptions
        @Argument(help: "Silence id or a unique prefix.") var id: String

        func run() async throws {
            let configuration = try global.loadConfiguration()
            guard let escaped = id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-"))) else {
                throw ValidationError("\(id) is not a silence id")
            }
            try await reportingRefusal {
                let data = try await daemon.send("DELETE", "/api/v1/silences/\(escaped)", configuration)
                print("expired \(try JSONDecoder().decode(View.self, from: data).id)")
            }
        }
    }
}
