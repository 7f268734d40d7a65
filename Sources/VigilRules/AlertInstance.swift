import Foundation
import VigilCore

/// One alert instance: a rule and the label set of one series. The transitions follow Prometheus
/// (`rules/alerting.go`) with Vigil's additions: levels with hysteresis, `keep`, and flapping.
final class AlertInstance {
    /// Series labels (without `__name__`), the rule's labels and `alertname`: the instance's identity.
    let identity: Labels
    var state: AlertState = .inactive
    /// The current level (1 info … 3 critical; a single-level rule uses 1); 0 when inactive.
    var level = 0
    var severity = ""
    var value = 0.0
    var activeAt: Timestamp = 0
    var firedAt: Timestamp?
    var resolvedAt: Timestamp?
    var keepSince: Timestamp?
    var annotations: [String: String] = [:]
    /// The levels of the most recent evaluations (0 unless firing), oldest first.
    var history: [Int] = []
    var flapping = false
    /// Set when something a restart must keep changed since the last save.
    var dirty = true
    /// Came back from the database and its series has not been seen since.
    var restored = false

    init(identity: Labels) {
        self.identity = identity
    }

    /// All labels as receivers see them.
    var labels: [String: String] {
        var labels = identity.dictionary
        labels["severity"] = severity
        return labels
    }

    /// A change of state, for the history table and the log.
    struct Transition {
        var from: AlertState
        var to: AlertState
    }

    /// The series is present and its conditions put it at `newLevel` (> 0) at `ts`.
    func activate(level newLevel: Int, severity newSeverity: String, value: Double, at ts: Timestamp,
                  pending: Int64) -> Transition? {
        let before = state
        self.value = value
        if newLevel != level || newSeverity != severity { dirty = true }
        level = newLevel
        severity = newSeverity
        switch state {
        case .inactive:
            state = .pending
            activeAt = ts
            firedAt = nil
            resolvedAt = nil
            keepSince = nil
            dirty = true
            if pending <= 0 {
                state = .firing
                firedAt = ts
            }
        case .pending:
            if ts - activeAt >= pending {
                state = .firing
                firedAt = ts
                dirty = true
            }
        case .firing:
            if keepSince != nil { keepSince = nil; dirty = true }
            if ts - activeAt < pending {
                // The rule was reloaded with a longer `pending`.
                state = .pending
                firedAt = nil
                dirty = true
            }
        }
        return before == state ? nil : Transition(from: before, to: state)
    }

    /// The series is absent, or its conditions no longer hold, at `ts`.
    func deactivate(at ts: Timestamp, keep: Int64) -> Transition? {
        switch state {
        case .inactive:
            return nil
        case .pending:
            reset()
            return Transition(from: .pending, to: .inactive)
        case .firing:
            if keep > 0 {
                if keepSince == nil { keepSince = ts; dirty = true }
                if ts - keepSince! < keep { return nil }
            }
            reset()
            resolvedAt = ts
            return Transition(from: .firing, to: .inactive)
        }
    }

    /// Back to inactive; `firedAt` stays, as the resolved notification's `startsAt`.
    private func reset() {
        state = .inactive
        level = 0
        keepSince = nil
        dirty = true
    }

    /// Records this evaluation's level and updates `flapping`; returns the new flapping state when it changed.
    func recordHistory(_ settings: FlappingSettings) -> Bool? {
        history.append(state == .firing ? max(level, 1) : 0)
        if history.count > settings.history { history.removeFirst(history.count - settings.history) }
        guard history.count >= 2 else { return nil }
        let ratio = Self.changeRatio(history, capacity: settings.history)
        if !flapping && ratio > settings.high {
            flapping = true
            dirty = true
            return true
        }
        if flapping && ratio < settings.low {
            flapping = false
            dirty = true
            return false
        }
        return nil
    }

    /// The Nagios weighted state-change ratio over `levels` (oldest first): each of the transitions
    /// counts with a weight rising linearly from 0.8 (oldest) to 1.2 (newest), divided by the number
    /// of transitions a full history holds.
    static func changeRatio(_ levels: [Int], capacity: Int) -> Double {
        let transitions = capacity - 1
        guard levels.count >= 2, transitions > 0 else { return 0 }
        let first = 0.8, last = 1.2
        var total = 0.0
        // Transitions are numbered so the newest is transitions-1 whatever the history's length.
        let offset = transitions - (levels.count - 1)
        for i in 1..<levels.count where levels[i] != levels[i - 1] {
            let position = Double(offset + i - 1)
            let weight = transitions == 1 ? last : first + (last - first) * position / Double(transitions - 1)
            total += weight
        }
        return total / Double(transitions)
    }
}
