import ArgumentParser
import Foundation
import VigilCollectors
import VigilCore
import VigilStore

struct CollectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Run the collectors and print what they see.",
        discussion: "With --once, one round of every collector; without it, a round every interval until interrupted."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case prometheus, json
    }

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "One round, then exit.")
    var once = false

    @Option(name: .long, help: "Output format: prometheus (text 0.0.4) or json.")
    var format: Format = .prometheus

    func run() async throws {
        let daemon = try Daemon(global)
        daemon.plugins.scan()
        while true {
            let failures = await daemon.scheduler.collectOnce()
            for (name, error) in failures.sorted(by: { $0.key < $1.key }) {
                FileHandle.standardError.write(Data("vigil: collector \(name) failed: \(error)\n".utf8))
            }
            print(render(daemon.store, at: daemon.clock.now()), terminator: "")
            if once { return }
            try await Task.sleep(for: .milliseconds(daemon.configuration.collectors.defaultIntervalMilliseconds))
        }
    }

    private func render(_ store: MetricStore, at time: Timestamp) -> String {
        switch format {
        case .prometheus:
            return store.exposition(at: time)
        case .json:
            let families = store.snapshot(at: time)
            struct Element: Encodable { let name: String; let type: String; let help: String; let labels: [String: String]; let value: Double? }
            let elements = families.flatMap { family in
                family.samples.map {
                    Element(name: family.name, type: family.kind.rawValue, help: family.help,
                            labels: $0.labels.removingName().dictionary, value: $0.value.isFinite ? $0.value : nil)
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return (try? String(decoding: encoder.encode(elements), as: UTF8.self) + "\n") ?? "[]\n"
        }
    }
}
