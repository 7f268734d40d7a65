import Foundation
import Logging
import Synchronization
import Testing
import VigilCore
import VigilStore
@testable import VigilCollectors

private struct Failing: Collector {
    let name = "failing"
    struct Broken: Error {}
    func collect() throws -> SampleBatch { throw Broken() }
}

private struct Hanging: Collector {
    let name = "hanging"
    func collect() throws -> SampleBatch {
        Thread.sleep(forTimeInterval: 1.5)
        return SampleBatch()
    }
}

private final class Counting: Collector {
    let name = "counting"
    let runs = Mutex(0)
    func collect() throws -> SampleBatch {
        let n = runs.withLock { $0 += 1; return $0 }
        var batch = SampleBatch()
        batch.gauge("test_runs", "Runs so far.", [:], Double(n))
        // A series that only exists in the first round.
        if n == 1 { batch.gauge("test_once", "Present in the first round only.", [:], 1) }
        return batch
    }
}

@Suite("collector scheduler")
struct CollectorSchedulerTests {
    @Test("a collector that throws or hangs does not stop the others")
    func isolation() async throws {
        let store = MetricStore()
        let counting = Counting()
        let scheduler = CollectorScheduler(
            collectors: [
                ScheduledCollector(counting, interval: 100, timeout: 1000),
                ScheduledCollector(Failing(), interval: 100, timeout: 1000),
                ScheduledCollector(Hanging(), interval: 100, timeout: 150),
            ],
            store: store, clock: SystemWallClock(), logger: Logger(label: "test")
        )
        let task = Task { try await scheduler.run() }
        // While one collector hangs past its timeout and another throws every round, the healthy one
        // keeps running: wait (polling, with a generous deadline for a loaded machine) until all three
        // have had several rounds.
        let deadline = ContinuousClock.now + .seconds(20)
        func progressed() -> Bool {
            let (_, errors) = scheduler.counts()
            return counting.runs.withLock { $0 } >= 6 && (errors["failing"] ?? 0) >= 6 && (errors["hanging"] ?? 0) >= 3
        }
        while !progressed() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        task.cancel()
        _ = try? await task.value

        let runs = counting.runs.withLock { $0 }
        #expect(runs >= 6, "the healthy collector kept running (\(runs) runs)")
        let (_, errors) = scheduler.counts()
        #expect((errors["failing"] ?? 0) >= 6)
        #expect((errors["hanging"] ?? 0) >= 3, "timeouts and overruns are counted")
        #expect(errors["counting"] == nil)
        let now = SystemWallClock().now()
        let failingErrors = store.instant(try SeriesSelector(parsing: #"vigil_collector_errors_total{collector="failing"}"#), at: now)
        #expect((failingErrors.first?.value ?? 0) >= 6)
        let success = store.instant(try SeriesSelector(parsing: #"vigil_collector_success{collector="hanging"}"#), at: now)
        #expect(success.first?.value == 0)
        #expect(store.metadata("vigil_collector_errors_total")?.kind == .counter)
    }

    @Test("samples are stamped with the tick; a series that vanishes is marked stale")
    func ticksAndStaleness() async throws {
        let store = MetricStore()
        let scheduler = CollectorScheduler(collectors: [ScheduledCollector(Counting(), interval: 1000, timeout: 1000)],
                                           store: store, clock: SystemWallClock(), logger: Logger(label: "test"))
        await scheduler.collectOnce(at: 1_000_000)
        #expect(store.instant(SeriesSelector(name: "test_once"), at: 1_000_500).map(\.value) == [1])
        await scheduler.collectOnce(at: 1_001_000)
        #expect(store.instant(SeriesSelector(name: "test_once"), at: 1_001_500).isEmpty)
        let samples = store.range(SeriesSelector(name: "test_runs"), after: 0, through: 2_000_000)
        #expect(samples.first?.samples == [Sample(1_000_000, 1), Sample(1_001_000, 2)])
        #expect(store.metadata("test_runs") == MetricMetadata(kind: .gauge, help: "Runs so far."))
    }
}

/// Reports a series while `healthy`, throws otherwise.
private final class Flaky: Collector {
    let name = "flaky"
    let healthy = Mutex(true)
    struct Down: Error {}
    func collect() throws -> SampleBatch {
        guard healthy.withLock({ $0 }) else { throw Down() }
        var batch = SampleBatch()
        batch.gauge("test_flaky", "Present while the collector works.", [:], 1)
        return batch
    }
}

@Suite("collector failures")
struct CollectorFailureTests {
    @Test("a failed run ends the collector's series at once instead of serving stale values; the next good run brings them back")
    func failedRunMarksStale() async throws {
        let store = MetricStore()
        let flaky = Flaky()
        let scheduler = CollectorScheduler(collectors: [ScheduledCollector(flaky, interval: 1000, timeout: 1000)],
                                           store: store, clock: SystemWallClock(), logger: Logger(label: "test"))
        await scheduler.collectOnce(at: 1_000_000)
        #expect(store.instant(SeriesSelector(name: "test_flaky"), at: 1_000_500).map(\.value) == [1])
        flaky.healthy.withLock { $0 = false }
        await scheduler.collectOnce(at: 1_001_000)
        #expect(store.instant(SeriesSelector(name: "test_flaky"), at: 1_001_500).isEmpty)
        #expect(store.instant(try SeriesSelector(parsing: #"vigil_collector_success{collector="flaky"}"#), at: 1_001_500).map(\.value) == [0])
        flaky.healthy.withLock { $0 = true }
        await scheduler.collectOnce(at: 1_002_000)
        #expect(store.instant(SeriesSelector(name: "test_flaky"), at: 1_002_500).map(\.value) == [1])
    }
}

/// Reports one series named after itself, with a value it was given.
private struct Constant: Collector {
    let name: String
    let value: Double
    func collect() throws -> SampleBatch {
        var batch = SampleBatch()
        batch.gauge("test_constant", "A constant per collector.", ["collector": name], value)
        return batch
    }
}

/// Waits until `condition` holds (polling), up to `seconds`; false if it never did.
private func eventually(within seconds: Double = 15, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try condition()
}

@Suite("collector registry")
struct CollectorRegistryTests {
    private func current(_ store: MetricStore, _ name: String) throws -> Double? {
        store.instant(try SeriesSelector(parsing: #"test_constant{collector="\#(name)"}"#), at: SystemWallClock().now()).first?.value
    }

    @Test("collectors added, replaced and removed while the scheduler runs take effect without a restart")
    func changesWhileRunning() async throws {
        let store = MetricStore()
        let registry = CollectorRegistry([ScheduledCollector(Constant(name: "first", value: 1), interval: 100)])
        let scheduler = CollectorScheduler(registry: registry, store: store, logger: Logger(label: "test"))
        let task = Task { try await scheduler.run() }
        defer { task.cancel() }
        #expect(try await eventually { try current(store, "first") == 1 })

        registry.add(ScheduledCollector(Constant(name: "second", value: 2), interval: 100))
        #expect(try await eventually { try current(store, "second") == 2 }, "an added collector starts")
        #expect(scheduler.names == ["first", "second"])

        registry.add(ScheduledCollector(Constant(name: "second", value: 20), interval: 100))
        let selector = try SeriesSelector(parsing: #"test_constant{collector="second"}"#)
        #expect(try await eventually {
            store.range(selector, after: 0, through: .max).first?.samples.suffix(3).map(\.value) == [20, 20, 20]
        }, "the successor reports, and the old version stopped writing")

        #expect(registry.remove(named: "first"))
        #expect(try await eventually(within: 1) { try current(store, "first") == nil }, "a removed collector's series go stale")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try current(store, "first") == nil, "and stay so: its loop stopped")
        #expect(!registry.remove(named: "first"))
        #expect(try current(store, "second") == 20)
    }
}
