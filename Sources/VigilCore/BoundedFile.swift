import Foundation

/// Reads files that someone else may control (textfile collectors, Lua collectors' `read_file`) without
/// trusting them: only regular files, never blocking (a FIFO or a device is refused, not waited on), never
/// more than a cap, and, where folders are given, only when the opened file really lies inside one of them
/// (judged on the open descriptor, so a symbolic link swapped in after a check changes nothing).
public enum BoundedFile {
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case cannotOpen(errno: Int32)
        case notRegular(String)
        case tooLarge(Int)
        case outside([String])
        case readFailed(String)

        /// Says what and why; never anything of the file's content.
        public var description: String {
            switch self {
            case .cannotOpen(let code): "cannot be opened: \(String(cString: strerror(code)))"
            case .notRegular(let kind): "is not a regular file (\(kind)); only regular files are read"
            case .tooLarge(let limit): "is larger than \(limit) bytes"
            case .outside(let folders): "resolves outside the allowed folders (\(folders.joined(separator: ", ")))"
            case .readFailed(let why): "cannot be read: \(why)"
            }
        }
    }

    /// The bytes of the regular file at `path`, at most `limit` of them. `within`: canonical folders (no
    /// symbolic links in them) the file's real path must lie below; nil allows any place.
    public static func read(_ path: String, limit: Int, within folders: [String]? = nil) -> Result<[UInt8], Refusal> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return .failure(.cannotOpen(errno: errno)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(.readFailed(String(cString: strerror(errno)))) }
        guard info.st_mode & S_IFMT == S_IFREG else { return .failure(.notRegular(kind(info.st_mode))) }
        if let folders {
            guard let real = realPath(of: fd), folders.contains(where: { real.hasPrefix($0 == "/" ? "/" : $0 + "/") }) else {
                return .failure(.outside(folders))
            }
        }
        guard info.st_size <= limit else { return .failure(.tooLarge(limit)) }
        // /proc and /sys report size 0: read until the end, but never past the cap.
        var bytes = [UInt8](repeating: 0, count: min(max(Int(info.st_size), 4096), limit) + 1)
        var filled = 0
        while true {
            if filled == bytes.count {
                guard bytes.count <= limit else { return .failure(.tooLarge(limit)) }
                bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, limit + 1 - bytes.count)))
            }
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.readFailed(String(cString: strerror(errno))))
            }
            if n == 0 { break }
            filled += n
            if filled > limit { return .failure(.tooLarge(limit)) }
        }
        return .success(Array(bytes[..<filled]))
    }

    /// The path the kernel has for an open descriptor.
    static func realPath(of fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `realpath(3)` of a folder, or nil when it does not exist.
    public static func canonical(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a folder"
        case S_IFIFO: "a FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a plain file"
        }
    }
}
