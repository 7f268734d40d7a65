import Synchronization
import VigilCore

/// The collectors Vigil runs, by name. Built-ins are registered at start; plugins are added, replaced
/// and removed while the daemon runs. The scheduler follows every change: a new collector starts on
/// its own cadence, a removed one stops and its series are marked stale.
public final class CollectorRegistry: Sendable {
    /// One registration. Replacing a collector makes a new entry, so the old one's loop can tell it
    /// is no longer current.
    public struct Entry: Sendable {
        public let id: Int
        public let scheduled: ScheduledCollector
        public var name: String { scheduled.name }
    }

    public enum Change: Sendable {
        case added(Entry)
        /// The first entry gave way to the second, under the same name.
        case replaced(Entry, by: Entry)
        case removed(Entry)
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var nextID = 1
        var listeners: [Int: AsyncStream<Change>.Continuation] = [:]
        var nextListener = 1
    }

    private let state = Mutex(State())

    public init(_ collectors: [ScheduledCollector] = []) {
        for collector in collectors { add(collector) }
    }

    deinit {
        state.withLock { state in state.listeners.values.forEach { $0.finish() } }
    }

    /// Adds a collector, replacing one of the same name.
    @discardableResult
    public func add(_ scheduled: ScheduledCollector) -> Entry {
        let (entry, replaced, listeners) = state.withLock { state in
            let entry = Entry(id: state.nextID, scheduled: scheduled)
            state.nextID += 1
            let replaced = state.entries.updateValue(entry, forKey: scheduled.name)
            return (entry, replaced, Array(state.listeners.values))
        }
        for listener in listeners {
            listener.yield(replaced.map { .replaced($0, by: entry) } ?? .added(entry))
        }
        return entry
    }

    /// Removes the collector named `name`; false when there is none.
    @discardableResult
    public func remove(named name: String) -> Bool {
        let (removed, listeners) = state.withLock { state in
            (state.entries.removeValue(forKey: name), Array(state.listeners.values))
        }
        guard let removed else { return false }
        for listener in listeners { listener.yield(.removed(removed)) }
        return true
    }

    /// The collectors registered now, by name.
    public var entries: [Entry] {
        state.withLock { $0.entries.values.sorted { $0.name < $1.name } }
    }

    public var names: [String] { entries.map(\.name) }

    /// Whether `entry` is still the registration for its name.
    public func isCurrent(_ entry: Entry) -> Bool {
        state.withLock { $0.entries[entry.name]?.id == entry.id }
    }

    /// The registrations now, and every change after them, atomically: nothing is missed between.
    public func subscribe() -> (current: [Entry], changes: AsyncStream<Change>) {
        let (stream, continuation) = AsyncStream<Change>.makeStream()
        let (current, id) = state.withLock { state in
            let id = state.nextListener
            state.nextListener += 1
            state.listeners[id] = continuation
            return (state.entries.values.sorted { $0.name < $1.name }, id)
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.listeners.removeValue(forKey: id) }
        }
        return (current, stream)
    }
}
