import ArgumentParser
import VigilAllocator
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import VigilCore
import VigilLua
import VigilRules
import VigilState
import VigilStore

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Show the running daemon's rules and their health; check or test rule files.",
        subcommands: [RulesListCommand.self, RulesCheckCommand.self, RulesTestCommand.self],
        defaultSubcommand: RulesListCommand.self
    )
}

/// Where the running daemon answers: `--url`, else the configuration's listen address.
struct DaemonOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The daemon's base URL (default: $VIGIL_URL, else http:// + the configured listen address).", valueName: "url"))
    var url: String?

    func baseURL(_ configuration: VigilConfiguration) -> String {
        let base = url ?? ProcessInfo.processInfo.environment["VIGIL_URL"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "http://\(configuration.listen.host == "0.0.0.0" ? "127.0.0.1" : configuration.listen.description)"
        return base.hasSuffix("/") ? String(base.dropLast()) : base
    }

    /// The API token: $VIGIL_TOKEN, else the file the daemon made in its data folder. Changes need it; reads send it
    /// when there is one (a daemon reached beyond loopback asks for it).
    func token(_ configuration: VigilConfiguration, required: Bool) throws -> String? {
        if let token = ProcessInfo.processInfo.environment["VIGIL_TOKEN"], !token.isEmpty { return token }
        do {
            return try APIToken.read(dataDirectory: configuration.dataDirectory)
        } catch {
            if required { throw error }
            return nil
        }
    }

    /// Sends a request to the daemon; a reply that is not 2xx becomes an error carrying the daemon's message.
    func send(_ method: String, _ path: String, body: (any Encodable)? = nil, _ configuration: VigilConfiguration) async throws -> Data {
        let base = baseURL(configuration)
        guard let url = URL(string: base + path) else { throw ValidationError("\(base) is not a URL") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = 10
        if let token = try token(configuration, required: method != "GET") {
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        if let body {
            request.httpBody = try JSONEncoder().encode(body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        var data = Data()
        var status = 0
        // 503: the daemon is starting; it answers within a few seconds.
        for attempt in 0..<50 {
            let response: URLResponse
            do {
                (data, response) = try await URLSession.shared.data(for: request)
            } catch {
                throw VigilError(.unavailable, "cannot reach the daemon at \(base) (is `vigil serve` running? --url or VIGIL_URL points elsewhere): \(error.localizedDescription)")
            }
            status = (response as? HTTPURLResponse)?.statusCode ?? 0
            guard status == 503, attempt < 49 else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        guard (200..<300).contains(status) else {
            let message = (try? JSONDecoder().decode(DaemonFailure.self, from: data))?.error ?? String(decoding: data.prefix(500), as: UTF8.self)
            throw DaemonRefusal(status: status, message: message)
        }
        return data
    }

    /// GETs `path` from the daemon and decodes the JSON reply.
    func get<T: Decodable>(_ path: String, _ configuration: VigilConfiguration, as type: T.Type) async throws -> T {
        let base = baseURL(configuration)
        guard let url = URL(string: base + path) else { throw ValidationError("\(base) is not a URL") }
        var request = URLRequest(url: url)
        request.timeoutInterval = 5
        if let token = try token(configuration, required: false) {
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw VigilError(.unavailable, "cannot reach the daemon at \(base) (is `vigil serve` running? --url points elsewhere): \(error.localizedDescription)")
        }
        guard let status = (response as? HTTPURLResponse)?.statusCode, status == 200 else {
            let message = (try? JSONDecoder().decode(DaemonFailure.self, from: data))?.error ?? String(decoding: data.prefix(300), as: UTF8.self)
            throw VigilError(.unavailable, "\(url) answered \((response as? HTTPURLResponse)?.statusCode ?? 0): \(message)")
        }
        return try JSONDecoder().decode(T.self, from: data)
    }
}

/// The API's error body.
struct DaemonFailure: Decodable { var error: String }

struct RulesReply: Decodable {
    var rules: [RuleStatus]
    var files: [RuleFileStatus]
}

struct RulesListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "The running daemon's rules: health, last evaluation, cost, and the last error.",
        discussion: "Exits with 1 when a rule is failing or quarantined, or a rule file did not load."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let reply = try await daemon.get("/api/v1/rules", configuration, as: RulesReply.self)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(reply.rules), as: UTF8.self))
        } else {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            // Active: firing alerts, or the recommendations a generator holds.
            var rows = [["Rule", "Kind", "Health", "Active", "Pending", "Every", "Last run", "Took", "Instr.", "Memory", "File"]]
            for rule in reply.rules {
                rows.append([
                    rule.name, rule.kind, rule.health.rawValue, "\(rule.firing)", "\(rule.pending)",
                    DurationParser.format(milliseconds: Int64(rule.intervalSeconds * 1000)),
                    rule.lastEvaluation.map { DurationParser.format(milliseconds: max(0, now - $0) / 1000 * 1000) + " ago" } ?? "never",
                    String(format: "%.2f ms", rule.evaluationSeconds * 1000), "\(rule.instructions)",
                    Format.bytes(Double(rule.memoryBytes)), (rule.file as NSString).lastPathComponent,
                ])
            }
            print(TextTable.render(rows, rightAligned: [3, 4, 7, 8, 9]), terminator: "")
            for rule in reply.rules where rule.lastError != nil && rule.health != .ok {
                print("\n\(rule.name) (\(rule.health.rawValue)): \(rule.lastError!)")
            }
            for file in reply.files where file.error != nil {
                print("\n\(file.path): \(file.loaded ? "the last good version runs; the new one" : "") failed to load:\n\(file.error!)")
            }
        }
        if reply.rules.contains(where: { $0.health == .error || $0.health == .quarantined }) || reply.files.contains(where: { $0.error != nil }) {
            throw ExitCode(1)
        }
    }
}

struct RulesCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Load rule files and report mistakes: syntax, unknown fields, bad durations, template errors.",
        discussion: "Without paths, checks every *.lua in the rules folder. Exits with 1 when any file fails."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: ArgumentHelp("Rule files or folders.", valueName: "path")) var paths: [String] = []

    func run() throws {
        let configuration = try global.loadConfiguration()
        var logger = global.makeLogger()
        logger.logLevel = .critical
        var files: [String] = []
        var policies: [String] = []
        for path in paths.isEmpty ? [configuration.rulesDirectory] : paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                print("\(path): no such file or folder")
                throw ExitCode(1)
            }
            if isDirectory.boolValue {
                files += try RuleEngine.ruleFiles(in: path)
                let policy = (path as NSString).appendingPathComponent(RuleEngine.policyFileName)
                if FileManager.default.fileExists(atPath: policy) { policies.append(policy) }
            } else if (path as NSString).lastPathComponent == RuleEngine.policyFileName {
                policies.append(path)
            } else {
                files.append(path)
            }
        }
        var failed = false
        for file in policies {
            let script = PolicyScript(path: file, store: MetricStore(), clock: SystemWallClock(), limits: .init(configuration.lua), logger: logger)
            script.reloadIfChanged()
            if let error = script.lastError {
                failed = true
                print("\(file): FAILED\n\(error.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))")
            } else {
                let policy = script.policy
                print("\(file): ok, allocator policy (\(policy.strategy.rawValue), \(policy.target.rawValue)\(script.hasScore ? ", custom score" : ""))")
            }
        }
        for file in files {
            switch RuleEngine.check(path: file, rulesDirectory: paths.isEmpty ? configuration.rulesDirectory : nil,
                                    limits: .init(configuration.lua), logger: logger) {
            case .success(let summary):
                print("\(file): ok, \(summary.description)")
            case .failure(let error):
                failed = true
                print("\(file): FAILED\n\(error.description.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))")
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct RulesTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run rule tests in promtool's format, on virtual time, without a daemon.",
        discussion: """
            Each file names rule_files (Lua) and tests with input_series ('0+10x100', '_', 'stale') and \
            alert_rule_test entries (eval_time, alertname, exp_alerts; Vigil adds exp_pending). Exits with 1 \
            when a test fails, printing what was expected (-) and what came (+).
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("run"), help: ArgumentHelp("Run only test groups whose name matches (repeatable).", valueName: "regex"))
    var runFilters: [String] = []
    @Option(name: .long, help: ArgumentHelp("Also write the results as JUnit XML.", valueName: "file"))
    var junit: String?
    @Argument(help: ArgumentHelp("Test files (YAML).", valueName: "file")) var files: [String]

    func run() throws {
        let logger = global.makeLogger()
        let runner: RuleTestRunner
        do {
            runner = try RuleTestRunner(runFilters: runFilters, logger: logger)
        } catch {
            throw ValidationError("--run: \(error)")
        }
        var results: [RuleTestRunner.CaseResult] = []
        for file in files {
            let fileResults = runner.run(path: file)
            results += fileResults
            let failed = fileResults.filter { !$0.passed }
            print("\(file): \(failed.isEmpty ? "SUCCESS" : "FAILED") (\(fileResults.count - failed.count)/\(fileResults.count) passed)")
            for result in failed {
                print("  \(result.name):")
                for failure in result.failures { print(failure.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")) }
            }
        }
        if let junit {
            try RuleTestRunner.junit(results).write(toFile: junit, atomically: true, encoding: .utf8)
        }
        if results.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}
