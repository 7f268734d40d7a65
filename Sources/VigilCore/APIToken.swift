import Foundation

/// The bearer token that API mutations need: 32 random bytes in hex, in `DATA_DIR/api-token` (mode 0600),
/// made by the daemon at its first start and read by the CLI from the same folder.
public enum APIToken {
    public static let fileName = "api-token"

    public static func path(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent(fileName)
    }

    /// The token in the data folder, made (with mode 0600, never overwriting) when there is none.
    /// A token file readable by others is narrowed to 0600; a malformed one is an error naming the file.
    public static func loadOrCreate(dataDirectory: String) throws -> String {
        let path = path(dataDirectory: dataDirectory)
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            var bytes = [UInt8](repeating: 0, count: 32)
            var generator = SystemRandomNumberGenerator()
            for index in bytes.indices { bytes[index] = generator.next() }
            let token = bytes.map { String(format: "%02x", $0) }.joined()
            let line = Array((token + "\n").utf8)
            let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == line.count else {
                unlink(path)
                throw VigilError(.io, "cannot write the API token to \(path): \(String(cString: strerror(errno)))")
            }
            return token
        }
        guard errno == EEXIST else {
            throw VigilError(.io, "cannot create the API token file \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o077 != 0 { chmod(path, 0o600) }
        return try read(path: path)
    }

    /// The token the daemon made, for the CLI. The error says what to do when the file cannot be read.
    public static func read(dataDirectory: String) throws -> String {
        try read(path: path(dataDirectory: dataDirectory))
    }

    static func read(path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = access(path, F_OK) == 0
                ? "it is not readable by this user (run as the daemon's user, or set VIGIL_TOKEN)"
                : "it does not exist (has `vigil serve` started with this data folder?)"
            throw VigilError(.io, "cannot read the API token \(path): \(reason)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 16, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw VigilError(.parse, "\(path) does not hold a token (16 or more characters on one line); delete it and restart the daemon to make a new one")
        }
        return token
    }

    /// Compares in time independent of where the first difference is.
    public static func matches(_ given: String, _ token: String) -> Bool {
        let a = Array(given.utf8), b = Array(token.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
