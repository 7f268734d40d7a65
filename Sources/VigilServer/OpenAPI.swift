import Foundation
import HTTPTypes

/// The OpenAPI 3.1 document of `/api/v1`, made from the route table the router was built from.
enum OpenAPIDocument {
    static func make(routes: [APIRoute], version: String) -> Data {
        var paths: [String: [String: Any]] = [:]
        for route in routes where route.api {
            let path = route.segments.map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
            var parameters: [[String: Any]] = route.segments.filter { $0.hasPrefix(":") }.map { segment in
                ["name": String(segment.dropFirst()), "in": "path", "required": true, "schema": ["type": "string"]]
            }
            parameters += route.query.map { parameter in
                ["name": parameter.name, "in": "query", "required": parameter.required, "description": parameter.description,
                 "schema": ["type": parameter.type]]
            }
            let success: [String: Any] = [
                "description": route.returns,
                "content": [route.mediaType: ["schema": route.mediaType == "application/json" ? ["type": "object"] : ["type": "string"]]],
            ]
            var responses: [String: Any] = ["\(route.status)": success, "default": ["$ref": "#/components/responses/Error"]]
            if route.needsToken { responses["401"] = ["$ref": "#/components/responses/Error"] }
            var operation: [String: Any] = [
                "summary": route.summary,
                "operationId": operationID(route),
                "tags": [route.tag],
                "parameters": parameters,
                "responses": responses,
            ]
            if let body = route.body {
                operation["requestBody"] = [
                    "required": true,
                    "description": body + " (at most \(API.bodyLimit) bytes)",
                    "content": ["application/json": ["schema": ["type": ["object", "array"]]]],
                ]
            }
            operation["security"] = route.needsToken ? [["bearer": [String]()]] : [[String: [String]](), ["bearer": [String]()]]
            paths["/" + path, default: [:]][route.method.rawValue.lowercased()] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": [
                "title": "Vigil",
                "version": version,
                "description": "Metrics, GPUs, tasks, alerts, recommendations, reports and benchmarks of one Vigil daemon. "
                    + "Reads are open from this host; changes, and reads from elsewhere, need the bearer token in the daemon's "
                    + "data folder (api-token). Errors are {\"error\": message}.",
            ],
            "servers": [["url": "/"]],
            "paths": paths,
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
                "responses": [
                    "Error": [
                        "description": "What went wrong and how to fix it",
                        "content": ["application/json": ["schema": [
                            "type": "object", "required": ["error"], "properties": ["error": ["type": "string"]],
                        ]]],
                    ],
                ],
            ],
        ]
        return (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
    }

    /// `getApiV1TasksById`-style names, unique per method and path.
    static func operationID(_ route: APIRoute) -> String {
        let words = route.segments.map { segment -> String in
            let name = segment.hasPrefix(":") ? "by " + segment.dropFirst() : String(segment)
            return name.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        }
        return route.method.rawValue.lowercased() + words.joined()
    }
}
