import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import ServiceLifecycle
import Synchronization
import VigilCore
import VigilStore

/// Prometheus remote write 1.0: a `prometheus.WriteRequest` in protobuf, compressed with snappy's block
/// format, POSTed with `Content-Encoding: snappy`.
public enum RemoteWriteEncoding {
    /// One series and its samples, labels sorted by name (`__name__` first, as the spec wants them sorted).
    public struct Series: Sendable {
        public var labels: [(name: String, value: String)]
        public var samples: [Sample]

        public init(labels: Labels, samples: [Sample]) {
            self.labels = labels.map { ($0.name, $0.value) }.sorted { $0.name < $1.name }
            self.samples = samples
        }
    }

    /// The protobuf bytes of a WriteRequest: `repeated TimeSeries timeseries = 1`, each with
    /// `repeated Label labels = 1` (`name = 1`, `value = 2`) and `repeated Sample samples = 2`
    /// (`double value = 1`, `int64 timestamp = 2`, milliseconds).
    public static func protobuf(_ series: [Series]) -> [UInt8] {
        var out: [UInt8] = []
        var message: [UInt8] = []
        var field: [UInt8] = []
        for one in series {
            message.removeAll(keepingCapacity: true)
            for label in one.labels {
                field.removeAll(keepingCapacity: true)
                appendBytes(&field, tag: 1, Array(label.name.utf8))
                appendBytes(&field, tag: 2, Array(label.value.utf8))
                appendBytes(&message, tag: 1, field)
            }
            for sample in one.samples {
                field.removeAll(keepingCapacity: true)
                field.append(0x09)  // field 1, fixed64
                withUnsafeBytes(of: sample.value.bitPattern.littleEndian) { field.append(contentsOf: $0) }
                field.append(0x10)  // field 2, varint
                appendVarint(&field, UInt64(bitPattern: sample.timestamp))
                appendBytes(&message, tag: 2, field)
            }
            appendBytes(&out, tag: 1, message)
        }
        return out
    }

    static func appendVarint(_ out: inout [UInt8], _ value: UInt64) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// A length-delimited field (wire type 2).
    static func appendBytes(_ out: inout [UInt8], tag: UInt64, _ bytes: [UInt8]) {
        appendVarint(&out, tag << 3 | 2)
        appendVarint(&out, UInt64(bytes.count))
        out.append(contentsOf: bytes)
    }

    /// Snappy's block format (not the framing format): the length as a varint, then literals and
    /// copies found with a hash table of 4-byte sequences, within 64 KiB blocks.
    public static func snappy(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2 + 16)
        appendVarint(&out, UInt64(input.count))
        var blockStart = 0
        var table = [Int](repeating: -1, count: 1 << 14)
        while blockStart < input.count {
            let blockEnd = min(input.count, blockStart + 65_536)
            for index in table.indices { table[index] = -1 }
            var literalStart = blockStart
            var position = blockStart
            while position + 4 <= blockEnd {
                let word = UInt32(input[position]) | UInt32(input[position + 1]) << 8 | UInt32(input[position + 2]) << 16 | UInt32(input[position + 3]) << 24
                let slot = Int((word &* 0x1E35_A7BD) >> 18)
                let candidate = table[slot]
                table[slot] = position
                if candidate >= blockStart, position - candidate <= 65_535,
                   input[candidate] == input[position], input[candidate + 1] == input[position + 1],
                   input[candidate + 2] == input[position + 2], input[candidate + 3] == input[position + 3] {
                    var length = 4
                    while position + length < blockEnd, input[candidate + length] == input[position + length] { length += 1 }
                    emitLiteral(&out, input, literalStart, position)
                    emitCopy(&out, offset: position - candidate, length: length)
                    position += length
                    literalStart = position
                } else {
                    position += 1
                }
            }
            emitLiteral(&out, input, literalStart, blockEnd)
            blockStart = blockEnd
        }
        return out
    }

    private static func emitLiteral(_ out: inout [UInt8], _ input: [UInt8], _ start: Int, _ end: Int) {
        let length = end - start
        guard length > 0 else { return }
        let n = length - 1
        if n < 60 {
            out.append(UInt8(n << 2))
        } else if n < 1 << 8 {
            out.append(60 << 2)
            out.append(UInt8(n))
        } else if n < 1 << 16 {
            out.append(61 << 2)
            out.append(UInt8(n & 0xFF))
            out.append(UInt8(n >> 8))
        } else {
            out.append(62 << 2)
            out.append(UInt8(n & 0xFF))
            out.append(UInt8((n >> 8) & 0xFF))
            out.append(UInt8(n >> 16))
        }
        out.append(contentsOf: input[start..<end])
    }

    /// Copies with a 2-byte offset, at most 64 bytes each.
    private static func emitCopy(_ out: inout [UInt8], offset: Int, length: Int) {
        var remaining = length
        while remaining > 0 {
            // Keep at least 4 for the last piece (a copy is 1…64 bytes; short tails are fine too).
            let piece = remaining > 64 ? (remaining - 64 < 4 ? 60 : 64) : remaining
            out.append(UInt8((piece - 1) << 2 | 2))
            out.append(UInt8(offset & 0xFF))
            out.append(UInt8(offset >> 8))
            remaining -= piece
        }
    }
}

/// Sends the store's new samples to a remote-write receiver on an interval. What could not be sent waits
/// in a bounded in-memory queue and is retried with exponential backoff (1 s to 1 min), so an outage shorter
/// than the queue loses nothing; beyond it the oldest samples are dropped and counted.
public final class RemoteWriter: Service, Sendable {
    public struct Options: Sendable {
        public var url: URL
        public var interval: Int64
        public var timeout: Int64
        /// Samples kept at most while the receiver is down.
        public var queueSamples: Int
        /// Samples per request at most.
        public var batchSamples: Int = 10_000

        public init(url: URL, interval: Int64 = 5_000, timeout: Int64 = 10_000, queueSamples: Int = 1_000_000) {
            self.url = url
            self.interval = interval
            self.timeout = timeout
            self.queueSamples = queueSamples
        }
    }

    struct State {
        /// Per series, the newest timestamp already taken from the store.
        var taken: [SeriesRef: Timestamp] = [:]
        var queue: [RemoteWriteEncoding.Series] = []
        var queued = 0
        var sent = 0
        var failed = 0
        var dropped = 0
        var lastSuccess: Timestamp?
    }

    let options: Options
    private let store: MetricStore
    private let clock: any WallClock
    private let logger: Logger
    private let startAfter: (@Sendable () async -> Void)?
    private let state = Mutex(State())
    private let labelValue: String

    public init(options: Options, store: MetricStore, clock: any WallClock, startAfter: (@Sendable () async -> Void)? = nil, logger: Logger) {
        self.options = options
        self.store = store
        self.clock = clock
        self.logger = logger
        self.startAfter = startAfter
        labelValue = options.url.absoluteString
        store.describe("vigil_remote_write_samples_total", kind: .counter, help: "Samples the remote-write receiver accepted.")
        store.describe("vigil_remote_write_failures_total", kind: .counter, help: "Remote-write requests that failed (retried).")
        store.describe("vigil_remote_write_dropped_samples_total", kind: .counter, help: "Samples dropped: the queue was full, or the receiver refused them.")
        store.describe("vigil_remote_write_pending_samples", kind: .gauge, help: "Samples waiting to be sent.")
        store.describe("vigil_remote_write_last_success_timestamp_seconds", kind: .gauge, help: "When a request last succeeded.")
    }

    /// Samples waiting in the queue.
    public var pending: Int { state.withLock { $0.queued } }

    public func run() async throws {
        await startAfter?()
        var backoff: Int64 = 0
        var nextAttempt: Timestamp = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = clock.now()
            take(at: now)
            if now >= nextAttempt {
                if await sendQueued() {
                    backoff = 0
                } else {
                    backoff = backoff == 0 ? 1000 : min(backoff * 2, 60_000)
                    nextAttempt = now + backoff
                }
            }
            publish(at: now)
            try? await Task.sleep(for: .milliseconds(options.interval))
        }
        // On the way out, one last try for what is waiting.
        take(at: clock.now())
        _ = await sendQueued()
    }

    /// Moves the samples appended since the last call (per series) into the queue.
    func take(at now: Timestamp) {
        let refs = store.select(try! SeriesSelector(parsing: #"{__name__=~".+"}"#))
        state.withLock { state in
            // Series the store dropped (retention) leave the table too.
            var taken: [SeriesRef: Timestamp] = [:]
            taken.reserveCapacity(refs.count)
            for ref in refs {
                let after = state.taken[ref] ?? (now - options.interval * 2)
                let samples = store.samples(ref, after: after, through: now)
                taken[ref] = samples.last?.timestamp ?? after
                guard !samples.isEmpty else { continue }
                state.queue.append(RemoteWriteEncoding.Series(labels: ref.labels, samples: samples))
                state.queued += samples.count
            }
            state.taken = taken
            while state.queued > options.queueSamples, !state.queue.isEmpty {
                let oldest = state.queue.removeFirst()
                state.queued -= oldest.samples.count
                state.dropped += oldest.samples.count
            }
        }
    }

    /// Sends the queue in batches; false when the receiver could not be reached or failed (the rest waits).
    func sendQueued() async -> Bool {
        while true {
            let batch: [RemoteWriteEncoding.Series] = state.withLock { state in
                var count = 0
                var end = 0
                while end < state.queue.count, count < options.batchSamples {
                    count += state.queue[end].samples.count
                    end += 1
                }
                return Array(state.queue.prefix(end))
            }
            guard !batch.isEmpty else { return true }
            let samples = batch.reduce(0) { $0 + $1.samples.count }
            switch await post(batch) {
            case .accepted, .refused:
                state.withLock { state in
                    state.queue.removeFirst(min(batch.count, state.queue.count))
                    state.queued -= samples
                }
            case .retry:
                state.withLock { $0.failed += 1 }
                return false
            }
        }
    }

    enum Outcome { case accepted, refused, retry }

    private func post(_ batch: [RemoteWriteEncoding.Series]) async -> Outcome {
        var request = URLRequest(url: options.url)
        request.httpMethod = "POST"
        request.timeoutInterval = Double(options.timeout) / 1000
        request.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
        request.setValue("snappy", forHTTPHeaderField: "Content-Encoding")
        request.setValue("0.1.0", forHTTPHeaderField: "X-Prometheus-Remote-Write-Version")
        request.setValue("vigil", forHTTPHeaderField: "User-Agent")
        request.httpBody = Data(RemoteWriteEncoding.snappy(RemoteWriteEncoding.protobuf(batch)))
        let samples = batch.reduce(0) { $0 + $1.samples.count }
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            if (200..<300).contains(status) {
                state.withLock { state in
                    state.sent += samples
                    state.lastSuccess = clock.now()
                }
                return .accepted
            }
            // 4xx but 429: the receiver will never take these samples; retrying would block the queue.
            if (400..<500).contains(status) && status != 429 {
                state.withLock { $0.dropped += samples }
                logger.error("remote write refused; samples dropped", metadata: [
                    "url": "\(options.url)", "status": "\(status)", "samples": "\(samples)",
                    "answer": "\(String(decoding: data.prefix(300), as: UTF8.self))",
                ])
                return .refused
            }
            logger.warning("remote write failed; will retry", metadata: ["url": "\(options.url)", "status": "\(status)"])
            return .retry
        } catch {
            logger.warning("remote write failed; will retry", metadata: ["url": "\(options.url)", "error": "\(error.localizedDescription)"])
            return .retry
        }
    }

    private func publish(at now: Timestamp) {
        let (sent, failed, dropped, queued, lastSuccess) = state.withLock { ($0.sent, $0.failed, $0.dropped, $0.queued, $0.lastSuccess) }
        let labels = ["url": labelValue]
        store.append(Labels(name: "vigil_remote_write_samples_total", labels), now, Double(sent))
        store.append(Labels(name: "vigil_remote_write_failures_total", labels), now, Double(failed))
        store.append(Labels(name: "vigil_remote_write_dropped_samples_total", labels), now, Double(dropped))
        store.append(Labels(name: "vigil_remote_write_pending_samples", labels), now, Double(queued))
        if let last = lastSuccess {
            store.append(Labels(name: "vigil_remote_write_last_success_timestamp_seconds", labels), now, Double(last) / 1000)
        }
    }
}
