import Foundation
import Logging
import VigilAllocator
import VigilCore
import VigilLua
import VigilState
import VigilStore

/// The allocator's targets: one scheduling pass with 10,000 queued tasks on 8 GPUs, Lua policy included,
/// ≤ 10 ms; ≥ 5,000 submits/s through the daemon's submit path (HTTP, validation, SQLite).
enum AllocatorBenchmark {
    static func run(policyPath: String = "rules/policy.lua") {
        print("== allocator: one scheduling pass, 10,000 queued tasks, 8 GPUs (median of 21)")
        var generator = Generator(state: 42)
        let gpus = (0..<8).map { index -> GPUSlot in
            var slot = GPUSlot(index: index, uuid: "GPU-bench-\(index)", model: "NVIDIA H100 80GB HBM3", memoryTotal: 80 << 30)
            slot.clockSMMax = 1980
            slot.utilization = Double(generator.below(100)) / 100
            slot.temperature = Double(40 + generator.below(45))
            slot.pricePerHour = 2
            return slot
        }
        let tasks = (0..<10_000).map { i -> PlanTask in
            let count = generator.chance(4) ? 1 << generator.below(4) : 1
            let memory = generator.chance(3) ? 0 : Int64(4 + generator.below(36)) << 30
            return PlanTask(id: Int64(i + 1), owner: "user\(generator.below(20))", submitted: 1_000_000 + Int64(i) * 100,
                            gpus: count, gpuMemory: memory, priority: [25, 50, 75, 100][generator.below(4)],
                            duration: Int64(60_000 + generator.below(4 * 3_600_000)))
        }
        var fairShare = FairShare(halfLife: 7 * 86_400_000, at: 0)
        for owner in 0..<20 { fairShare.charge("user\(owner)", gpuMilliseconds: Double(generator.below(100)) * 3_600_000, at: 0) }
        let now: Timestamp = 2_000_000
        let busy = (0..<8).map { ActiveTask(id: Int64(100_000 + $0), gpus: [$0], gpuMemory: 0, expectedEnd: now + Int64($0 + 1) * 600_000) }

        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let script = PolicyScript(path: policyPath, store: MetricStore(), clock: ManualWallClock(now), limits: .default, logger: logger)
        script.reloadIfChanged()
        if let error = script.lastError { print("  policy \(policyPath) not loaded: \(error)"); return }

        func pass(policy: Policy, active: [ActiveTask], scorer: inout some PlacementScorer) -> (Double, PassResult) {
            let planner = Planner(policy: policy, gpus: gpus)
            var result = PassResult()
            let seconds = median(runs: 21) {
                let (ordered, _) = planner.order(tasks, now: now, fairShare: fairShare)
                result = planner.pass(now: now, active: active, ordered: ordered, scorer: &scorer)
            }
            return (seconds, result)
        }
        var none = NoScorer()
        var lua = script
        let (fifoFree, _) = pass(policy: .fifo, active: [], scorer: &none)
        let (builtinFree, _) = pass(policy: script.policy, active: [], scorer: &none)
        let callsBefore = script.scoreCalls
        let (luaFree, luaResult) = pass(policy: script.policy, active: [], scorer: &lua)
        let (luaBusy, busyResult) = pass(policy: script.policy, active: busy, scorer: &lua)
        row("baseline: FIFO order, built-in score, free GPUs", "\(format(fifoFree * 1000, 3)) ms")
        row("priority order (multifactor), built-in score, free GPUs", "\(format(builtinFree * 1000, 3)) ms")
        row("priority + Lua score (\(policyPath)), free GPUs", "\(format(luaFree * 1000, 3)) ms",
            "\(luaResult.placements.count) placed, \(luaResult.scored) pairs in \((script.scoreCalls - callsBefore) / 21) Lua call per pass; \(format(luaFree / fifoFree, 2))× FIFO")
        row("priority + Lua score, every GPU busy (reservation + backfill)", "\(format(luaBusy * 1000, 3)) ms",
            "\(busyResult.placements.count) placed, reservation for task \(busyResult.reservation.map { String($0.task) } ?? "none")")
        if let error = script.lastError { print("  the score failed: \(error)") }

        print("== allocator: queue forecast (estimated start of the first 500 queued tasks), every GPU busy")
        let planner = Planner(policy: script.policy, gpus: gpus)
        var planned = 0
        let forecast = median(runs: 5) { planned = planner.forecast(now: now, active: busy, waiting: tasks, fairShare: fairShare).count }
        row("forecast", "\(format(forecast * 1000, 1)) ms", "\(planned) tasks given a start")
    }

    /// The submit path without HTTP: decode, Allocator.submit (validation, SQLite), encode the reply.
    static func submitsInProcess(count: Int = 5_000) {
        let folder = NSTemporaryDirectory() + "vigil-submit-inproc-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let store = MetricStore()
        let clock = SystemWallClock()
        guard let database = try? StateDatabase(dataDirectory: folder),
              let allocator = try? Allocator(database: database, store: store, clock: clock,
                                             policy: PolicyScript(path: folder + "/none.lua", store: store, clock: clock, logger: logger),
                                             options: .init(logs: folder + "/tasks", costs: CostModel(CostsConfiguration())), logger: logger)
        else { print("  cannot open the allocator"); return }
        try? allocator.setDrained(true)
        allocator.tick()  // the first tick makes the GPU inventory known; submits wait for it
        let body = Data(#"{"command":["true"],"directory":"/tmp","owner":"bench","gpus":0,"priority":"normal"}"#.utf8)
        var decode = 0.0, submit = 0.0, encode = 0.0
        for _ in 0..<count {
            var decoded: TaskSpec!
            decode += measure { decoded = try! JSONDecoder().decode(TaskSpec.self, from: body) }
            let spec = decoded!
            var record: TaskRecord!
            submit += measure { record = waitFor { try await allocator.submit(spec) } }
            encode += measure { consume(try! JSONEncoder().encode(["id": record.id])) }
        }
        let each = { (seconds: Double) in format(seconds / Double(count) * 1e6, 1) + " µs" }
        row("in process, one thread: decode the body", each(decode))
        row("in process, one at a time: Allocator.submit (checks, SQLite)", each(submit))
        row("in process, one thread: encode the reply ({\"id\": N})", each(encode))
    }

    /// Submits through a running `vigil serve` (drained, so nothing starts): HTTP/1.1 keep-alive
    /// connections, each sending POST /api/v1/tasks one after another.
    static func submits(binary: String?, count: Int = 20_000, connections: Int = 8) {
        let vigil = binary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vigil").path
        print("== allocator: submits through the daemon (\(count) over \(connections) keep-alive connections; \(vigil))")
        let folder = NSTemporaryDirectory() + "vigil-submit-bench-\(getpid())"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = folder + "/vigil.yml"
        try? "listen: 127.0.0.1:19490\ndata_dir: \(folder)/data\nrules_dir: \(folder)/rules\nplugins_dir: \(folder)/plugins\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: vigil)
        process.arguments = ["serve", "--config", config]
        process.environment = ProcessInfo.processInfo.environment.merging(["VIGIL_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"]) { _, new in new }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { print("  cannot start \(vigil): \(error)"); return }
        defer { process.terminate(); process.waitUntilExit() }
        var ready = false
        for _ in 0..<100 where !ready {
            Thread.sleep(forTimeInterval: 0.1)
            ready = (try? HTTPClient(port: 19490).request("GET", "/healthz", body: nil).status) == 200
        }
        guard ready, (try? HTTPClient(port: 19490).request("POST", "/api/v1/drain", body: nil).status) == 200 else {
            print("  the daemon did not answer")
            return
        }
        // The daemon's CPU time per request, from /proc, beside the rate.
        var cpuPerRequest = 0.0
        func hammer(_ method: String, _ path: String, _ body: String?, expect: Int, count: Int = count) -> (Double, Int) {
            let before = ServeBenchmark.cpuSeconds(pid: process.processIdentifier)
            defer { cpuPerRequest = (ServeBenchmark.cpuSeconds(pid: process.processIdentifier) - before) / Double(count) * 1e6 }
            let failures = AtomicCounter()
            let seconds = measure {
                DispatchQueue.concurrentPerform(iterations: connections) { _ in
                    guard let client = try? HTTPClient(port: 19490) else { failures.add(count / connections); return }
                    for _ in 0..<(count / connections) {
                        if (try? client.request(method, path, body: body).status) != expect { failures.add(1) }
                    }
                }
            }
            return (Double(count) / seconds, failures.value)
        }
        let (baseline, _) = hammer("GET", "/healthz", nil, expect: 200)
        row("baseline: GET /healthz on the same connections", "\(format(baseline, 0)) /s", "daemon CPU \(format(cpuPerRequest, 0)) µs each")
        let body = #"{"command":["true"],"directory":"/tmp","owner":"bench","gpus":0,"priority":"normal"}"#
        // Submits are answered 503 until the allocator's first tick.
        for _ in 0..<100 where (try? HTTPClient(port: 19490).request("POST", "/api/v1/tasks", body: body).status) != 201 {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let (rate, failures) = hammer("POST", "/api/v1/tasks", body, expect: 201)
        row("submits, one task per POST (validated → SQLite → 201)", "\(format(rate, 0)) /s",
            "\(failures) failed; daemon CPU \(format(cpuPerRequest, 0)) µs each; \(format(rate / baseline, 2))× the baseline's rate")
        let array = "[" + Array(repeating: body, count: 100).joined(separator: ",") + "]"
        let (batches, batchFailures) = hammer("POST", "/api/v1/tasks", array, expect: 201, count: count / 100)
        row("submits, job arrays of 100 per POST", "\(format(batches * 100, 0)) /s",
            "\(batchFailures) failed; daemon CPU \(format(cpuPerRequest / 100, 0)) µs per task")
        var pass = "?"
        if let metrics = try? HTTPClient(port: 19490).request("GET", "/metrics", body: nil).text {
            pass = metrics.split(separator: "\n").first { $0.hasPrefix("vigil_allocator_pass_seconds ") }.map { String($0.split(separator: " ")[1]) } ?? "?"
        }
        row("the daemon's last pass with \(count * 2) queued (drained)", "\(pass) s")
    }
}

/// Runs async work to completion from synchronous benchmark code.
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        box.value = try! await body()
        done.signal()
    }
    done.wait()
    return box.value!
}

final class ResultBox<T>: @unchecked Sendable { var value: T? }

final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}

/// A minimal HTTP/1.1 client on one keep-alive socket, so the client costs little next to the server.
final class HTTPClient {
    let fd: Int32

    struct Reply { var status: Int; var text: String }

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    func request(_ method: String, _ path: String, body: String?) throws -> Reply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" } else { head += "Content-Length: 0\r\n" }
        let bytes = Array((head + "\r\n" + (body ?? "")).utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { throw POSIXError(.EPIPE) }
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = buffer.firstRange(of: [13, 10, 13, 10]) {
                let header = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                let status = Int(header.split(separator: " ").dropFirst().first ?? "") ?? 0
                let length = header.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if buffer.count - end.upperBound >= length {
                    return Reply(status: status, text: String(decoding: buffer[end.upperBound..<(end.upperBound + length)], as: UTF8.self))
                }
            }
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw POSIXError(.ECONNRESET) }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}
