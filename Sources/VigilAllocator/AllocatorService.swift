import Logging
import ServiceLifecycle
import VigilCore

/// Runs `Allocator.tick()` every `interval` once `startAfter` has returned (the first round of the
/// collectors, so GPUs are known before anything is placed). Tasks keep running when the daemon stops;
/// the next start re-adopts them.
public struct AllocatorService: Service {
    public let allocator: Allocator
    let interval: Int64
    let startAfter: @Sendable () async -> Void
    let liveness: Liveness?

    public init(allocator: Allocator, interval: Int64, startAfter: @escaping @Sendable () async -> Void = {}, liveness: Liveness? = nil) {
        self.liveness = liveness
        self.allocator = allocator
        self.interval = interval
        self.startAfter = startAfter
    }

    public func run() async throws {
        await startAfter()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                allocator.tick()
                liveness?.beat("allocator", every: interval)
                try? await Task.sleep(for: .milliseconds(interval))
            }
        }
    }
}
