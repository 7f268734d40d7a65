import Foundation
import Yams

/// Reads values out of a composed YAML document, every error naming the file, line and column (and the
/// dotted key path): the configuration file and plugin manifests share it.
public struct YAMLReader {
    public let file: String

    public init(file: String) { self.file = file }

    public func error(_ node: Node, _ message: String) -> VigilError {
        let location = node.mark.map { "\(file):\($0.line):\($0.column)" } ?? file
        return VigilError(.invalidConfiguration, message, location: location)
    }

    public func unknown(_ key: String, _ node: Node, _ path: String) -> VigilError {
        let parent = path.split(separator: ".").dropLast().joined(separator: ".")
        return error(node, "unknown key '\(key)'\(parent.isEmpty ? "" : " in \(parent)")")
    }

    public func mapping(_ node: Node, path: String, _ body: (String, Node, String) throws -> Void) throws {
        guard let mapping = node.mapping else {
            throw error(node, "\(path.isEmpty ? "the file" : path) must be a mapping of keys to values")
        }
        for (key, value) in mapping {
            guard let name = key.string else { throw error(key, "keys must be strings") }
            try body(name, value, path.isEmpty ? name : "\(path).\(name)")
        }
    }

    /// A string, or a list of strings (a command's arguments).
    public func strings(_ node: Node, _ path: String) throws -> [String] {
        if let sequence = node.sequence {
            return try sequence.map { try string($0, path) }
        }
        return [try string(node, path)]
    }

    public func string(_ node: Node, _ path: String) throws -> String {
        guard case .scalar(let scalar) = node else { throw error(node, "\(path) must be a string") }
        return scalar.string
    }

    public func integer(_ node: Node, _ path: String) throws -> Int {
        guard let value = Int(try string(node, path).replacingOccurrences(of: "_", with: "")), value >= 0 else {
            throw error(node, "\(path) must be a whole number ≥ 0")
        }
        return value
    }

    public func bool(_ node: Node, _ path: String) throws -> Bool {
        switch try string(node, path).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(node, "\(path) must be true or false")
        }
    }

    public func duration(_ node: Node, _ path: String) throws -> Int64 {
        let text = try string(node, path)
        guard let ms = DurationParser.milliseconds(text) else {
            throw error(node, "\(path) must be a duration such as 250ms, 10s, 5m or 24h (\(Bounds.durationRange)), got \"\(text)\"")
        }
        return ms
    }

    public func positiveDuration(_ node: Node, _ path: String) throws -> Int64 {
        let ms = try duration(node, path)
        guard ms > 0 else { throw error(node, "\(path) must be longer than 0") }
        return ms
    }

    public func bytes(_ node: Node, _ path: String) throws -> Int {
        let text = try string(node, path)
        guard let bytes = ByteSizeParser.bytes(text) else {
            throw error(node, "\(path) must be a size such as 8MiB or 65536, got \"\(text)\"")
        }
        return bytes
    }
}
