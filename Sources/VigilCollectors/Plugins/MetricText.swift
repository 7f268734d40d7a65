import VigilCore

/// The text formats plugins print: Prometheus' exposition format (text 0.0.4) and Influx line protocol.
public enum MetricTextFormat: String, Sendable, CaseIterable {
    case prometheus, influx
}

/// A line a plugin printed that is not valid in its format.
public struct MetricTextError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let message: String

    public init(line: Int, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

/// The series one plugin run has reported: each at most once, and no more than the plugin's limit.
struct SeriesAdmission {
    private var seen = Set<Labels>()
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Records `series`; returns why it is refused, or nil.
    mutating func admit(_ series: Labels) -> String? {
        guard seen.insert(series).inserted else { return "duplicate series \(series)" }
        return seen.count > limit ? "more than \(limit) series (the plugin's limit)" : nil
    }
}

/// Parsers of plugin output into a `SampleBatch`. Samples are stamped by the scheduler's tick, so
/// timestamps in the text are accepted and ignored. The first bad line stops the parse with its
/// number: a plugin's output is taken whole or not at all.
public enum MetricText {
    /// Prometheus text when the first meaningful line is a `#` comment or a `name{…} value` sample;
    /// Influx line protocol when it has a `key=value` field set after the measurement.
    public static func detect(_ text: String) -> MetricTextFormat {
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty { continue }
            if line.first == "#" { return .prometheus }
            if line.contains("{") { return .prometheus }
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            if parts.count >= 2 && parts[1].contains("=") { return .influx }
            return .prometheus
        }
        return .prometheus
    }

    /// Parses `text` in `format` (detected when nil), appending to `batch`; at most `maxSeries`
    /// samples (a flood is an error, not a truncation).
    public static func parse(_ text: String, format: MetricTextFormat? = nil, maxSeries: Int = .max,
                             into batch: inout SampleBatch) throws {
        switch format ?? detect(text) {
        case .prometheus: try parsePrometheus(text, maxSeries: maxSeries, into: &batch)
        case .influx: try parseInflux(text, maxSeries: maxSeries, into: &batch)
        }
    }

    // MARK: - Prometheus text 0.0.4

    static func parsePrometheus(_ text: String, maxSeries: Int, into batch: inout SampleBatch) throws {
        var kinds: [String: MetricKind] = [:]
        var helps: [String: String] = [:]
        var admission = SeriesAdmission(limit: maxSeries)
        for var line in lines(text) {
            let number = line.line
            if line.atEnd { continue }
            if line.peek == UInt8(ascii: "#") {
                line.advance()
                line.skipSpaces()
                let keyword = line.word()
                guard keyword == "HELP" || keyword == "TYPE" else { continue }
                line.skipSpaces()
                let name = line.word()
                guard isMetricName(name) else { throw MetricTextError(line: number, "\(keyword) names no valid metric (\"\(name)\")") }
                line.skipSpaces()
                let rest = line.rest()
                if keyword == "HELP" {
                    helps[name] = unescapeHelp(rest)
                } else {
                    switch rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? "" {
                    case "counter": kinds[name] = .counter
                    case "gauge": kinds[name] = .gauge
                    case "untyped", "histogram", "summary": kinds[name] = .untyped
                    default: throw MetricTextError(line: number, "unknown metric type \"\(rest)\" for \(name)")
                    }
                }
                continue
            }
            let name = line.word(until: [UInt8(ascii: "{"), UInt8(ascii: " "), UInt8(ascii: "\t")])
            guard isMetricName(name) else { throw MetricTextError(line: number, "invalid metric name \"\(name)\"") }
            var labels: [String: String] = [:]
            if line.peek == UInt8(ascii: "{") {
                line.advance()
                labels = try line.labelSet()
            }
            line.skipSpaces()
            let valueText = line.word()
            guard let value = parseValue(valueText) else {
                throw MetricTextError(line: number, valueText.isEmpty ? "sample \(name) has no value" : "invalid value \"\(valueText)\" for \(name)")
            }
            line.skipSpaces()
            let timestamp = line.word()
            guard timestamp.isEmpty || Int64(timestamp) != nil else { throw MetricTextError(line: number, "invalid timestamp \"\(timestamp)\"") }
            line.skipSpaces()
            guard line.atEnd else { throw MetricTextError(line: number, "unexpected text after the sample: \"\(line.rest())\"") }
            let family = familyName(name, kinds: kinds)
            if let refusal = admission.admit(Labels(name: name, labels)) { throw MetricTextError(line: number, refusal) }
            let kind = kinds[family] ?? .untyped
            batch.add(name, family == name ? kind : .untyped, help: helps[family] ?? "", labels: labels, value)
        }
    }

    /// The family a sample belongs to: histogram and summary samples carry suffixes.
    private static func familyName(_ name: String, kinds: [String: MetricKind]) -> String {
        if kinds[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if kinds[base] != nil { return base }
        }
        return name
    }

    static func parseValue(_ text: String) -> Double? {
        switch text {
        case "NaN": return .nan
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        default:
            guard let first = text.utf8.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return nil }
            return Double(text)
        }
    }

    private static func unescapeHelp(_ text: String) -> String {
        var out = ""
        var escaped = false
        for character in text {
            if escaped {
                out.append(character == "n" ? "\n" : character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                out.append(character)
            }
        }
        return out
    }

    static func isMetricName(_ name: String) -> Bool {
        guard let first = name.utf8.first, isNameStart(first) || first == UInt8(ascii: ":") else { return false }
        return name.utf8.allSatisfy { isNameStart($0) || isDigit($0) || $0 == UInt8(ascii: ":") }
    }

    static func isLabelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, isNameStart(first) else { return false }
        return name.utf8.allSatisfy { isNameStart($0) || isDigit($0) }
    }

    private static func isNameStart(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || byte == UInt8(ascii: "_")
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    /// Any text as a valid metric or label name: other characters become `_`, a leading digit gets one.
    static func sanitize(_ text: String, metric: Bool) -> String {
        var bytes = text.utf8.map { byte -> UInt8 in
            isNameStart(byte) || isDigit(byte) || (metric && byte == UInt8(ascii: ":")) ? byte : UInt8(ascii: "_")
        }
        if let first = bytes.first, isDigit(first) { bytes.insert(UInt8(ascii: "_"), at: 0) }
        return bytes.isEmpty ? "_" : String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Influx line protocol

    /// `measurement[,tag=value…] field=value[,field=value…] [timestamp]`. Each numeric or boolean
    /// field becomes the series `measurement_field` with the tags as labels (as Telegraf's Prometheus
    /// output names them); string fields are not numbers and are left out.
    static func parseInflux(_ text: String, maxSeries: Int, into batch: inout SampleBatch) throws {
        var admission = SeriesAdmission(limit: maxSeries)
        for var line in lines(text) {
            let number = line.line
            if line.atEnd || line.peek == UInt8(ascii: "#") { continue }
            let measurement = line.influxToken(stops: [UInt8(ascii: ","), UInt8(ascii: " ")])
            guard !measurement.isEmpty else { throw MetricTextError(line: number, "missing measurement") }
            var tags: [String: String] = [:]
            while line.peek == UInt8(ascii: ",") {
                line.advance()
                let key = line.influxToken(stops: [UInt8(ascii: "=")])
                guard line.peek == UInt8(ascii: "="), !key.isEmpty else { throw MetricTextError(line: number, "tag without '=' in \(measurement)") }
                line.advance()
                let value = line.influxToken(stops: [UInt8(ascii: ","), UInt8(ascii: " ")])
                tags[sanitize(key, metric: false)] = value
            }
            guard line.peek == UInt8(ascii: " ") else { throw MetricTextError(line: number, "missing field set after \(measurement)") }
            line.skipSpaces()
            var fields = 0
            repeat {
                if line.peek == UInt8(ascii: ",") { line.advance() }
                let key = line.influxToken(stops: [UInt8(ascii: "=")])
                guard line.peek == UInt8(ascii: "="), !key.isEmpty else { throw MetricTextError(line: number, "field without '=' in \(measurement)") }
                line.advance()
                fields += 1
                if line.peek == UInt8(ascii: "\"") {
                    try line.skipQuoted()
                    continue
                }
                let text = line.influxToken(stops: [UInt8(ascii: ","), UInt8(ascii: " ")])
                guard let value = influxValue(text) else {
                    throw MetricTextError(line: number, "invalid value \"\(text)\" for field \(key) of \(measurement)")
                }
                let name = sanitize("\(measurement)_\(key)", metric: true)
                if let refusal = admission.admit(Labels(name: name, tags)) { throw MetricTextError(line: number, refusal) }
                batch.add(name, .untyped, help: "", labels: tags, value)
            } while line.peek == UInt8(ascii: ",")
            guard fields > 0 else { throw MetricTextError(line: number, "no fields in \(measurement)") }
            line.skipSpaces()
            let timestamp = line.word()
            guard timestamp.isEmpty || Int64(timestamp) != nil else { throw MetricTextError(line: number, "invalid timestamp \"\(timestamp)\"") }
            line.skipSpaces()
            guard line.atEnd else { throw MetricTextError(line: number, "unexpected text at the end: \"\(line.rest())\"") }
        }
    }

    private static func influxValue(_ text: String) -> Double? {
        switch text {
        case "t", "T", "true", "True", "TRUE": return 1
        case "f", "F", "false", "False", "FALSE": return 0
        default: break
        }
        if text.hasSuffix("i") { return Int64(text.dropLast()).map { Double($0) } }
        if text.hasSuffix("u") { return UInt64(text.dropLast()).map { Double($0) } }
        guard let value = parseValue(text), value.isFinite || text.lowercased().contains("inf") == false else { return nil }
        return value
    }

    // MARK: - Scanning

    /// Every line of `text` with its number, positioned after its leading blanks.
    static func lines(_ text: String) -> [Scanner] {
        text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map { index, raw in
            var line = Scanner(raw.utf8, line: index + 1)
            line.skipSpaces()
            return line
        }
    }

    /// A cursor over one line's bytes.
    struct Scanner {
        let bytes: [UInt8]
        var at = 0
        let line: Int

        init(_ bytes: Substring.UTF8View, line: Int) {
            var array = Array(bytes)
            if array.last == UInt8(ascii: "\r") { array.removeLast() }
            self.bytes = array
            self.line = line
        }

        var atEnd: Bool { at >= bytes.count }
        var peek: UInt8? { at < bytes.count ? bytes[at] : nil }
        mutating func advance() { at += 1 }

        mutating func skipSpaces() {
            while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { at += 1 }
        }

        mutating func word(until stops: Set<UInt8> = [UInt8(ascii: " "), UInt8(ascii: "\t")]) -> String {
            let start = at
            while let byte = peek, !stops.contains(byte) { at += 1 }
            return String(decoding: bytes[start..<at], as: UTF8.self)
        }

        mutating func rest() -> String {
            defer { at = bytes.count }
            return String(decoding: bytes[min(at, bytes.count)...], as: UTF8.self)
        }

        /// `name="value",…}` after the opening brace, with `\\`, `\"` and `\n` escapes.
        mutating func labelSet() throws -> [String: String] {
            var labels: [String: String] = [:]
            while true {
                skipSpaces()
                if peek == UInt8(ascii: "}") { advance(); return labels }
                let name = word(until: [UInt8(ascii: "="), UInt8(ascii: " "), UInt8(ascii: "}")])
                guard MetricText.isLabelName(name) else { throw MetricTextError(line: line, "invalid label name \"\(name)\"") }
                skipSpaces()
                guard peek == UInt8(ascii: "=") else { throw MetricTextError(line: line, "expected '=' after label \(name)") }
                advance()
                skipSpaces()
                guard peek == UInt8(ascii: "\"") else { throw MetricTextError(line: line, "label \(name) needs a quoted value") }
                advance()
                var value: [UInt8] = []
                while true {
                    guard let byte = peek else { throw MetricTextError(line: line, "unterminated value of label \(name)") }
                    advance()
                    if byte == UInt8(ascii: "\"") { break }
                    if byte == UInt8(ascii: "\\") {
                        guard let next = peek else { throw MetricTextError(line: line, "unterminated value of label \(name)") }
                        advance()
                        value.append(next == UInt8(ascii: "n") ? UInt8(ascii: "\n") : next)
                    } else {
                        value.append(byte)
                    }
                }
                guard labels.updateValue(String(decoding: value, as: UTF8.self), forKey: name) == nil else {
                    throw MetricTextError(line: line, "label \(name) given twice")
                }
                skipSpaces()
                if peek == UInt8(ascii: ",") { advance(); continue }
                guard peek == UInt8(ascii: "}") else { throw MetricTextError(line: line, "expected ',' or '}' in the label set") }
            }
        }

        /// An Influx token up to an unescaped stop byte; `\` escapes the next byte.
        mutating func influxToken(stops: Set<UInt8>) -> String {
            var out: [UInt8] = []
            while let byte = peek, !stops.contains(byte) {
                advance()
                if byte == UInt8(ascii: "\\"), let next = peek {
                    advance()
                    out.append(next)
                } else {
                    out.append(byte)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func skipQuoted() throws {
            advance()
            while let byte = peek {
                advance()
                if byte == UInt8(ascii: "\\") { advance(); continue }
                if byte == UInt8(ascii: "\"") { return }
            }
            throw MetricTextError(line: line, "unterminated string field")
        }
    }
}
