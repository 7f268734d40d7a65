// Performance figures for BENCHMARKS.md. Run in release mode:
//
//   swift run -c release vigil-benchmarks            # store and Lua figures
//   swift run -c release vigil-benchmarks regex      # label regexes: the linear engine beside Swift Regex
//   swift run -c release vigil-benchmarks rules      # 1,000 alert rules every second
//   swift run -c release vigil-benchmarks serve      # the daemon's CPU and memory, beside node_exporter
//   swift run -c release vigil-benchmarks serve 60 PATH   # the same for another vigil binary
//   swift run -c release vigil-benchmarks allocator  # a scheduling pass with 10,000 queued tasks
//   swift run -c release vigil-benchmarks submit     # submits per second through a running daemon
//   swift build -c release --product VigilFakeNVML && swift run -c release vigil-benchmarks nvml
//
// Every figure is printed next to a baseline measured in the same run.

import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let which = arguments.first ?? "all"

switch which {
case "store":
    StoreBenchmarks.run()
case "windows":
    StoreBenchmarks.windows()
case "lua":
    LuaBenchmarks.run()
case "regex":
    RegexBenchmark.run()
case "rules":
    RuleBenchmark.run()
case "nvml":
    NVMLBenchmark.run()
case "serve":
    let seconds = arguments.dropFirst().first.flatMap(Int.init) ?? 60
    ServeBenchmark.run(seconds: seconds, binary: arguments.dropFirst(2).first)
case "allocator":
    AllocatorBenchmark.run()
case "submit":
    AllocatorBenchmark.submitsInProcess()
    AllocatorBenchmark.submits(binary: arguments.dropFirst().first)
case "all":
    StoreBenchmarks.run()
    RegexBenchmark.run()
    LuaBenchmarks.run()
    RuleBenchmark.run()
default:
    print("usage: vigil-benchmarks [store|windows|lua|regex|rules|nvml|allocator|submit [VIGIL-BINARY]|serve [SECONDS [VIGIL-BINARY]]|all]")
    exit(2)
}
