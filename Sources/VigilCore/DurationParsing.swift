/// Parses Prometheus-style durations: `250ms`, `90s`, `5m`, `1h30m`, `2d`, `1w`. A bare number is seconds.
public enum DurationParser {
    /// The duration in milliseconds, or nil when `text` is not a duration or is longer than `Bounds.maxDuration`
    /// (100 years), so that no caller can overflow a time by adding it.
    public static func milliseconds(_ text: String) -> Int64? {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty, trimmed.utf8.count <= 64 else { return nil }
        if let seconds = Double(trimmed) {
            return Bounds.milliseconds(seconds: seconds)
        }
        var total: Int64 = 0
        var index = trimmed.startIndex
        var sawUnit = false
        while index < trimmed.endIndex {
            var digits = ""
            while index < trimmed.endIndex, trimmed[index].isNumber || trimmed[index] == "." {
                digits.append(trimmed[index])
                index = trimmed.index(after: index)
            }
            var unit = ""
            while index < trimmed.endIndex, trimmed[index].isLetter {
                unit.append(trimmed[index])
                index = trimmed.index(after: index)
            }
            guard let number = Double(digits), number.isFinite, number >= 0 else { return nil }
            let scale: Double
            switch unit {
            case "ms": scale = 1
            case "s": scale = 1000
            case "m": scale = 60_000
            case "h": scale = 3_600_000
            case "d": scale = 86_400_000
            case "w": scale = 604_800_000
            case "y": scale = 31_536_000_000
            default: return nil
            }
            let part = (number * scale).rounded()
            guard part <= Double(Bounds.maxDuration - total) else { return nil }
            total += Int64(part)
            sawUnit = true
        }
        return sawUnit ? total : nil
    }

    /// A short human form: `250ms`, `90s` → `1m30s`, `3600000` → `1h`.
    public static func format(milliseconds: Int64) -> String {
        if milliseconds == 0 { return "0s" }
        if milliseconds < 0 { return "-" + format(milliseconds: milliseconds == .min ? .max : -milliseconds) }
        var rest = milliseconds
        var out = ""
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            if rest >= size {
                out += "\(rest / size)\(unit)"
                rest %= size
            }
        }
        return out
    }
}

/// Parses byte sizes: `8MiB`, `64KiB`, `1GB`, `512` (bytes).
public enum ByteSizeParser {
    public static func bytes(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces()
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).trimmingSpaces()
        guard let number = Double(digits), number.isFinite, number >= 0 else { return nil }
        let scale: Double
        switch unit.lowercased() {
        case "", "b": scale = 1
        case "kib", "k": scale = 1024
        case "mib", "m": scale = 1024 * 1024
        case "gib", "g": scale = 1024 * 1024 * 1024
        case "kb": scale = 1000
        case "mb": scale = 1_000_000
        case "gb": scale = 1_000_000_000
        default: return nil
        }
        let bytes = (number * scale).rounded()
        // A petabyte: more than any memory or file Vigil sizes, and far from Int's end.
        guard bytes <= 1e15 else { return nil }
        return Int(bytes)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view = view.dropFirst() }
        while let last = view.last, last.isWhitespace { view = view.dropLast() }
        return String(view)
    }
}
