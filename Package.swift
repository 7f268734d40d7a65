// swift-tools-version: 6.0
import PackageDescription

// Applied to every target: explicit existential types, imports visible only where written,
// and complete concurrency checking (the Swift 6 language mode makes the last one the default).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableExperimentalFeature("StrictConcurrency"),
]

let package = Package(
    name: "vigil",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vigil", targets: ["vigil"]),
        // Fuzz targets for the parsers of outside input: libFuzzer under `.ci/fuzz`, a corpus replayer otherwise.
        .executable(name: "vigil-fuzz", targets: ["VigilFuzz"]),
        .library(name: "VigilStore", targets: ["VigilStore"]),
        .library(name: "VigilLua", targets: ["VigilLua"]),
        .library(name: "VigilCollectors", targets: ["VigilCollectors"]),
        // The fake libnvidia-ml.so.1 the GPU tests (and demos without a GPU) load with dlopen.
        .library(name: "VigilFakeNVML", type: .dynamic, targets: ["VigilFakeNVML"]),
        // The example native collector plugin (plugins/native-example), and one built for another ABI (tests).
        .library(name: "VigilExamplePlugin", type: .dynamic, targets: ["VigilExamplePlugin"]),
        .library(name: "VigilWrongABIPlugin", type: .dynamic, targets: ["VigilWrongABIPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // NIOHTTPTypes: the request and response parts the connection guard sees (Hummingbird's own pipeline types).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .executableTarget(
            name: "VigilFuzz",
            dependencies: ["VigilCore", "VigilStore", "VigilCollectors", "VigilAllocator"],
            swiftSettings: swiftSettings
        ),
        // Lua 5.4 from the system (Debian: liblua5.4-dev). shim.h wraps Lua's macros and holds every
        // piece of C that may longjmp (error raising, the count hook, the capped allocator).
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        .target(
            name: "VigilCore",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "VigilStore",
            dependencies: ["VigilCore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "VigilLua",
            dependencies: [
                "VigilCore", "CLua",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Vigil's own declarations of the NVML structs it reads (nvml.h is not vendored), size-asserted.
        .target(name: "CVigilNVML"),
        // The hot loops of `vigil bench`, optimised in every build (a debug build would measure the compiler).
        .target(name: "CVigilBench", cSettings: [.unsafeFlags(["-O3"])]),
        // `vigil bench`: host facts, the benchmarks, statistics, scores, history and comparisons.
        .target(
            name: "VigilBench",
            dependencies: ["VigilCore", "VigilState", "VigilCollectors", "CVigilBench", "CVigilSystem"],
            swiftSettings: swiftSettings
        ),
        // glibc's GNU extensions the plugin runner needs (pipe2, posix_spawn's chdir action).
        .target(name: "CVigilSystem"),
        // A fake NVML with the same C ABI, scripted by a JSON scenario; see the README's testing section.
        .target(
            name: "VigilFakeNVML",
            dependencies: ["CVigilNVML"],
            exclude: ["eight-gpus.json"],
            linkerSettings: [.linkedLibrary("pthread"), .linkedLibrary("dl")]
        ),
        // The native plugin C ABI (plugins/include/vigil_plugin.h), compiled on its own in every build.
        .target(name: "VigilPluginABI", path: "plugins/include", sources: ["vigil_plugin_abi.c"], publicHeadersPath: "."),
        .target(name: "VigilExamplePlugin", dependencies: ["VigilPluginABI"], path: "plugins/native-example",
                exclude: ["plugin.yml"], sources: ["example.c"], publicHeadersPath: "."),
        .target(name: "VigilWrongABIPlugin", dependencies: ["VigilPluginABI"], path: "Tests/Fixtures/wrong-abi-plugin",
                publicHeadersPath: "."),
        .target(
            name: "VigilCollectors",
            dependencies: [
                "VigilCore", "VigilStore", "VigilLua", "CVigilNVML", "CVigilSystem", "VigilPluginABI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // State that survives a restart, in SQLite through GRDB: alert states, history, silences.
        .target(
            name: "VigilState",
            dependencies: [
                "VigilCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // The `vigil` Lua module scripts see, the alert rule engine, notifications and silences.
        .target(
            name: "VigilRules",
            dependencies: [
                "VigilCore", "VigilStore", "VigilLua", "VigilState", "VigilCollectors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // The task allocator: tasks, the ledger, strategies, the Lua policy, the runner, persistence, replay.
        .target(
            name: "VigilAllocator",
            dependencies: [
                "VigilCore", "VigilStore", "VigilLua", "VigilRules", "VigilState", "VigilCollectors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "VigilServer",
            dependencies: [
                "VigilCore", "VigilStore", "VigilCollectors", "VigilRules", "VigilAllocator", "VigilState", "VigilBench",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "vigil",
            dependencies: [
                "VigilCore", "VigilStore", "VigilLua", "VigilCollectors", "VigilRules", "VigilServer", "VigilState", "VigilBench",
                "VigilAllocator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // Performance figures for BENCHMARKS.md: `swift run -c release vigil-benchmarks`.
        .executableTarget(
            name: "vigil-benchmarks",
            dependencies: [
                "VigilCore", "VigilStore", "VigilLua", "VigilRules", "VigilCollectors", "VigilAllocator", "VigilState",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/VigilBenchmarks",
            swiftSettings: swiftSettings
        ),
        // The test kit: the fake NVML library copied per test with its scenario, shared by test targets.
        .target(
            name: "VigilTesting",
            dependencies: ["VigilCore", "VigilCollectors", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VigilAllocatorTests",
            dependencies: ["VigilAllocator", "VigilTesting", "VigilCollectors", "VigilStore", "VigilState", "VigilCore", "VigilLua"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "VigilCoreTests", dependencies: ["VigilCore"], swiftSettings: swiftSettings),
        .testTarget(name: "VigilBenchTests", dependencies: ["VigilBench", "VigilState", "VigilCollectors"], swiftSettings: swiftSettings),
        .testTarget(name: "VigilStoreTests", dependencies: ["VigilStore", "VigilCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "VigilRulesTests",
            dependencies: ["VigilRules", "VigilLua", "VigilStore", "VigilCore", "VigilCollectors"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VigilLuaTests",
            dependencies: ["VigilLua", "VigilCore"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VigilCollectorsTests",
            dependencies: ["VigilCollectors", "VigilStore", "VigilCore", "VigilLua", "VigilTesting"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        // The executable end to end: a real `vigil` process, real sockets, real signals.
        .testTarget(
            name: "vigilTests",
            dependencies: ["vigil", "VigilCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VigilServerTests",
            dependencies: [
                "VigilServer", "VigilStore", "VigilCollectors", "VigilCore", "VigilRules", "VigilState",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
