import Foundation
import VigilCollectors
import VigilCore
import Yams

/// Reads `vigil.yml`. Every key is optional; an unknown key, a wrong type or a bad duration is an
/// error that names the file, the line and the key.
enum ConfigurationLoader {
    static func load(path: String) throws -> VigilConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw VigilError(.invalidConfiguration, "cannot read the configuration file: \(error.localizedDescription)", location: path)
        }
        return try parse(text, file: path)
    }

    static func parse(_ text: String, file: String) throws -> VigilConfiguration {
        var configuration = VigilConfiguration()
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw VigilError(.invalidConfiguration, "not valid YAML: \(error)", location: file)
        }
        guard let root else { return configuration }
        let reader = YAMLReader(file: file)
        try reader.mapping(root, path: "") { key, value, path in
            switch key {
            case "listen":
                let text = try reader.string(value, path)
                guard let address = ListenAddress(parsing: text) else {
                    throw reader.error(value, "\(path) must be HOST:PORT, got \"\(text)\"")
                }
                configuration.listen = address
            case "data_dir": configuration.dataDirectory = try reader.string(value, path)
            case "rules_dir": configuration.rulesDirectory = try reader.string(value, path)
            case "plugins_dir": configuration.pluginsDirectory = try reader.string(value, path)
            case "store":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "retention": configuration.store.retentionMilliseconds = try reader.duration(value, path)
                    case "lookback": configuration.store.lookbackMilliseconds = try reader.duration(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "lua":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "memory": configuration.lua.memoryBytes = try reader.bytes(value, path)
                    case "instructions": configuration.lua.instructions = try reader.integer(value, path)
                    case "deadline": configuration.lua.deadlineMilliseconds = try reader.duration(value, path)
                    case "output": configuration.lua.outputBytes = try reader.bytes(value, path)
                    case "call_depth": configuration.lua.callDepth = try reader.integer(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "collectors":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "interval": configuration.collectors.defaultIntervalMilliseconds = try reader.positiveDuration(value, path)
                    case "timeout": configuration.collectors.defaultTimeoutMilliseconds = try reader.positiveDuration(value, path)
                    default:
                        guard BuiltinCollectors.names.contains(key) else {
                            throw reader.error(value, "unknown collector '\(key)' in collectors (known: \(BuiltinCollectors.names.joined(separator: ", ")))")
                        }
                        var settings = CollectorSettings()
                        try reader.mapping(value, path: path) { key, value, path in
                            switch key {
                            case "enabled": settings.enabled = try reader.bool(value, path)
                            case "interval": settings.intervalMilliseconds = try reader.positiveDuration(value, path)
                            case "timeout": settings.timeoutMilliseconds = try reader.positiveDuration(value, path)
                            case "library" where path == "collectors.nvml.library":
                                configuration.collectors.nvmlLibrary = try reader.string(value, path)
                            default: throw reader.unknown(key, value, path)
                            }
                        }
                        configuration.collectors.overrides[key] = settings
                    }
                }
            default:
                throw reader.unknown(key, value, path)
            }
        }
        return configuration
    }
}
