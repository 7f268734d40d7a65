import Dispatch
import Synchronization
import VigilCore

/// Runs blocking work on a serial dispatch queue of its own, off Swift's cooperative pool, and gives
/// up waiting after a timeout. Work that is still running when the next run is due makes that run
/// fail at once (an overrun), so one stuck collector never piles up work or delays the others.
final class BlockingRunner: Sendable {
    private let queue: DispatchQueue
    private let busy = Atomic<Bool>(false)

    init(label: String) {
        queue = DispatchQueue(label: "vigil.collector.\(label)")
    }

    struct Overrun: Error, CustomStringConvertible {
        var description: String { "previous run is still going (overrun): this run was skipped" }
    }

    struct TimedOut: Error, CustomStringConvertible {
        let milliseconds: Int64
        var description: String { "timed out after \(DurationParser.format(milliseconds: milliseconds))" }
    }

    func run<T: Sendable>(timeout milliseconds: Int64, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            throw Overrun()
        }
        let once = ResumeOnce<T>()
        return try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            queue.async { [self] in
                let result = Result { try body() }
                self.busy.store(false, ordering: .releasing)
                once.resume(with: result)
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(milliseconds))) {
                once.resume(with: .failure(TimedOut(milliseconds: milliseconds)))
            }
        }
    }
}

/// Resumes a continuation once; later resumptions are ignored.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let state = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0 = continuation }
    }

    func resume(with result: Result<T, any Error>) {
        let continuation = state.withLock { value -> CheckedContinuation<T, any Error>? in
            defer { value = nil }
            return value
        }
        continuation?.resume(with: result)
    }
}
