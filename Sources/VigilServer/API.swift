import Foundation
import Hummingbird
import NIOCore
import Synchronization
import VigilAllocator
import VigilCore
import VigilState

/// Hummingbird's basic context plus the peer's address, which decides whether reads need the token.
public struct VigilRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// A peer on this host: 127.0.0.0/8, ::1, an IPv4-mapped loopback address or a Unix socket.
    var fromLoopback: Bool {
        guard let remoteAddress else { return false }
        switch remoteAddress {
        case .unixDomainSocket: return true
        case .v4: return remoteAddress.ipAddress?.hasPrefix("127.") ?? false
        case .v6:
            let text = remoteAddress.ipAddress ?? ""
            return text == "::1" || text.hasPrefix("::ffff:127.")
        }
    }
}

/// One route of the daemon, as the OpenAPI document describes it.
public struct APIRoute: Sendable {
    public struct Parameter: Sendable {
        public var name: String
        public var description: String
        public var required = false
        /// "string", "integer", "number" or "boolean".
        public var type = "string"
    }

    public var method: HTTPRequest.Method
    /// Hummingbird's pattern: `/api/v1/tasks/:id`.
    public var path: String
    public var summary: String
    public var tag: String
    public var query: [Parameter] = []
    /// What the JSON body holds, for routes that take one.
    public var body: String?
    /// What a success returns.
    public var returns: String
    /// The status of a success.
    public var status: Int = 200
    /// The reply's media type when it is not JSON.
    public var mediaType = "application/json"
    /// Part of the JSON API (and so of the OpenAPI document); false for /metrics, /healthz and the dashboard,
    /// which anyone who can reach the port may read.
    public var api = true

    /// Mutations need the token from anywhere; API reads need it only from beyond loopback.
    var needsToken: Bool { method != .get }

    var segments: [Substring] { path.split(separator: "/") }

    func matches(_ path: [Substring]) -> Bool {
        let pattern = segments
        guard pattern.count == path.count else { return false }
        return zip(pattern, path).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
    }
}

/// The routes added so far, which the gate and the OpenAPI document read.
final class RouteTable: Sendable {
    private let routes = Mutex<[APIRoute]>([])

    func add(_ route: APIRoute) { routes.withLock { $0.append(route) } }
    var all: [APIRoute] { routes.withLock { $0 } }

    /// The routes whose path matches, whatever their method.
    func matching(_ path: String) -> [APIRoute] {
        let segments = path.split(separator: "/")
        return all.filter { $0.matches(segments) }
    }
}

/// Adds routes to the router and to the table together, so the document cannot miss one.
struct APIBuilder {
    let router: Router<VigilRequestContext>
    let table: RouteTable

    typealias Handler = @Sendable (Request, VigilRequestContext) async throws -> Response

    func add(_ route: APIRoute, _ handler: @escaping Handler) {
        table.add(route)
        router.on(RouterPath(route.path), method: route.method, use: handler)
    }

    func get(_ path: String, _ summary: String, tag: String, query: [APIRoute.Parameter] = [], returns: String,
             mediaType: String = "application/json", api: Bool = true, _ handler: @escaping Handler) {
        add(APIRoute(method: .get, path: path, summary: summary, tag: tag, query: query, returns: returns, mediaType: mediaType, api: api),
            handler)
    }

    func post(_ path: String, _ summary: String, tag: String, body: String? = nil, returns: String, status: Int = 200,
              _ handler: @escaping Handler) {
        add(APIRoute(method: .post, path: path, summary: summary, tag: tag, body: body, returns: returns, status: status), handler)
    }

    func delete(_ path: String, _ summary: String, tag: String, returns: String, _ handler: @escaping Handler) {
        add(APIRoute(method: .delete, path: path, summary: summary, tag: tag, returns: returns), handler)
    }
}

/// First in front of every route: a request whose `Host` names anything but this daemon is refused (421), and
/// every reply carries the headers that keep the dashboard's pages out of frames and other sites' reach.
///
/// DNS rebinding: a page on evil.example re-points its own name at 127.0.0.1 and reads the API from a
/// victim's browser, same-origin in the browser's eyes. Its requests still say `Host: evil.example`. IP
/// literals and loopback names are accepted (no rebinding can produce them); other names only when configured.
struct HostCheck: RouterMiddleware {
    typealias Context = VigilRequestContext
    let allowed: Set<String>

    /// A strict policy: the pages load only the daemon's own script, style sheet and Chart.js, and talk only to it.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        if let host = request.head.authority, !accepts(host) {
            response = API.error(.misdirectedRequest, "this daemon does not answer for the host name \(host.prefix(200)); "
                + "use 127.0.0.1 or localhost, or add the name to allowed_hosts in the configuration")
        } else {
            response = try await next(request, context)
        }
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.init("X-Frame-Options")!] = "DENY"
        response.headers[.init("Referrer-Policy")!] = "no-referrer"
        if response.headers[.contentSecurityPolicy] == nil { response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy }
        return response
    }

    /// `host[:port]`, `[v6]:port`: loopback names, IP literals and the configured names pass.
    func accepts(_ header: String) -> Bool {
        var name = Substring(header.lowercased())
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            return isIPv6(name[name.index(after: name.startIndex)..<close])
        }
        if let colon = name.lastIndex(of: ":") {
            guard name[name.index(after: colon)...].allSatisfy(\.isASCIIDigit) else { return false }
            name = name[..<colon]
        }
        if name.hasSuffix(".") { name = name.dropLast() }
        if name == "localhost" || name.hasSuffix(".localhost") || allowed.contains(String(name)) { return true }
        return !name.contains(":") && (try? SocketAddress(ipAddress: String(name), port: 0)) != nil
    }

    private func isIPv6(_ text: Substring) -> Bool {
        text.contains(":") && (try? SocketAddress(ipAddress: String(text), port: 0)) != nil
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// In front of every route: 404 for paths no route has, 405 (with `Allow`) for a known path asked with
/// another method, 401 when the token is needed and missing or wrong, and JSON for every error.
struct APIGate: RouterMiddleware {
    typealias Context = VigilRequestContext
    let table: RouteTable
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let candidates = table.matching(path)
        guard let route = candidates.first(where: { $0.method == request.method }) else {
            if candidates.isEmpty {
                return API.error(.notFound, "nothing is at \(path); the API's routes are listed in /api/v1/openapi.json")
            }
            let allowed = Array(Set(candidates.map(\.method.rawValue))).sorted()
            var response = API.error(.methodNotAllowed, "\(path) answers \(allowed.joined(separator: ", ")), not \(request.method.rawValue)")
            response.headers[.allow] = allowed.joined(separator: ", ")
            return response
        }
        if let token, route.needsToken || (route.api && !context.fromLoopback) {
            let header = request.headers[.authorization] ?? ""
            let given = header.hasPrefix("Bearer ") ? String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces) : ""
            guard APIToken.matches(given, token) else {
                let why = header.isEmpty ? "this needs the API token" : "the API token does not match"
                let what = route.needsToken ? "changes" : "reads from beyond this host"
                var response = API.error(.unauthorized, "\(why): \(what) need the header Authorization: Bearer TOKEN, "
                    + "with the token from the daemon's data folder (DATA_DIR/\(APIToken.fileName)), which the vigil CLI reads itself")
                response.headers[.wwwAuthenticate] = #"Bearer realm="vigil""#
                return response
            }
        }
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            return API.error(error.status, error.body ?? error.status.reasonPhrase)
        }
    }
}

/// Replies, request decoding and errors shared by every route.
enum API {
    /// Request bodies are small JSON documents; anything larger is refused with 413.
    static let bodyLimit = 1 << 20

    struct ErrorReply: Encodable { var error: String }

    /// A refusal with a status of its own (413, 415).
    struct Failure: Error {
        var status: HTTPResponse.Status
        var message: String
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(ErrorReply(error: message), status: status)
    }

    static func id(_ context: VigilRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw AllocatorError(.invalid, "task ids are positive integers")
        }
        return id
    }

    /// The body as `T`. `fields`: the keys an object (or each object of a top-level array) may have; any other
    /// is a 400 naming it and the known ones.
    static func decode<T: Decodable>(_ request: Request, context: VigilRequestContext, fields: Set<String>) async throws -> T {
        guard let type = request.headers[.contentType] else {
            throw Failure(status: .unsupportedMediaType, message: "say what the body is: Content-Type: application/json")
        }
        guard type.lowercased().hasPrefix("application/json") else {
            throw Failure(status: .unsupportedMediaType, message: "send JSON (Content-Type: application/json), not \(type)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: bodyLimit)
        } catch {
            throw Failure(status: .contentTooLarge, message: "the request body is over \(bodyLimit) bytes")
        }
        let data = Data(buffer.readableBytesView)
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw AllocatorError(.invalid, "the body is not a valid request: \(describe(error))")
        }
        let objects: [[String: Any]] = switch try? JSONSerialization.jsonObject(with: data) {
        case let object as [String: Any]: [object]
        case let array as [Any]: array.compactMap { $0 as? [String: Any] }
        default: []
        }
        for (index, object) in objects.enumerated() {
            if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
                let place = objects.count > 1 ? "task \(index + 1): " : ""
                throw AllocatorError(.invalid, "\(place)unknown field \(unknown) (known: \(fields.sorted().joined(separator: ", ")))")
            }
        }
        return value
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String { keys.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context.codingPath)) has the wrong type: \(context.debugDescription)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    static func answer(_ body: () async throws -> (HTTPResponse.Status, any Encodable)) async throws -> Response {
        do {
            let (status, value) = try await body()
            return json(value, status: status)
        } catch {
            return failure(error)
        }
    }

    /// 507: a change that could not be written because the disk is full (WebDAV's status; HTTPTypes has no name for it).
    static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")

    static func failure(_ error: any Error) -> Response {
        switch error {
        case let error as AllocatorError:
            let status: HTTPResponse.Status = switch error.kind {
            case .invalid: .badRequest
            case .notFound: .notFound
            case .conflict: .conflict
            case .unavailable: .serviceUnavailable
            case .storageFull: insufficientStorage
            }
            return self.error(status, error.description)
        case let error as Failure:
            return self.error(error.status, error.message)
        case let error where StateDatabase.isStorageFull(error):
            return self.error(insufficientStorage, "the daemon's data folder is full; nothing was changed (\(error))")
        default:
            return self.error(.internalServerError, "\(error)")
        }
    }

    static func json(_ value: any Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A duration query parameter (`7d`, `90s`), or `fallback` when absent.
    static func duration(_ request: Request, _ name: String, default fallback: String) throws -> Int64 {
        try duration(request.uri.queryParameters.get(name).map { String($0) } ?? fallback, name)
    }

    /// A duration a request gives (`2h`), longer than 0 unless `zero` is allowed; the error names the field.
    static func duration(_ text: String, _ name: String, zero: Bool = false) throws -> Int64 {
        guard let value = DurationParser.milliseconds(text), value > 0 || zero && value == 0 else {
            throw AllocatorError(.invalid, "\(name) must be a duration such as 7d, 2h or 90s (\(Bounds.durationRange)), not \(text)")
        }
        return value
    }
}
