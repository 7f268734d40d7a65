import ArgumentParser
import VigilCore

/// Prints the dashboard's address with the API token in the fragment (which browsers do not send to the
/// server): the page keeps the token and can then pause, cancel and silence.
struct DashboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Print the dashboard's URL, carrying the API token so its buttons work.",
        discussion: """
            Reading the dashboard needs no token on this host; its controls (pause, resume, cancel, priority, silence)
            do. Open the printed URL once: the page stores the token in the browser and drops it from the address bar.
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .customLong("no-token"), help: "Print the plain URL, without the token.") var noToken = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let base = daemon.baseURL(configuration) + "/"
        if noToken {
            print(base)
        } else {
            print(base + "#token=" + (try daemon.token(configuration, required: true) ?? ""))
        }
    }
}
