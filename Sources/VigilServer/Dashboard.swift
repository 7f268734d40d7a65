import Foundation
import Hummingbird
import NIOCore

/// The web dashboard: one page shell for six pages, a script and a style sheet compiled into the binary
/// (no build step, no npm), and Chart.js from Debian's `libjs-chart.js` at `/vendor/chart.js`. The pages
/// read the JSON API and poll it; they change things (pause, cancel, silence…) with the API token, which
/// `vigil dashboard` hands them in the URL's fragment.
public enum Dashboard {
    public struct Options: Sendable {
        /// Where Chart.js is looked for, first found wins, on every request (installing the package needs no restart).
        public var chartJS = ["/usr/share/javascript/chart.js/chart.min.js", "/usr/share/javascript/chart.js/chart.js"]
        public init() {}
    }

    /// Path and title of each page, in menu order.
    public static let pages: [(path: String, name: String, title: String)] = [
        ("/", "overview", "Overview"),
        ("/tasks", "tasks", "Tasks"),
        ("/alerts", "alerts", "Alerts"),
        ("/recommendations", "recommendations", "Recommendations"),
        ("/benchmarks", "benchmarks", "Benchmarks"),
        ("/rules", "rules", "Rules"),
    ]

    static func add(to api: APIBuilder, options: Options) {
        for page in pages {
            let html = shell(page: page.name, title: page.title)
            api.get(page.path, "The dashboard's \(page.title) page", tag: "dashboard", returns: "HTML", mediaType: "text/html", api: false) { _, _ in
                Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                         body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
            }
        }
        api.get("/assets/vigil.js", "The dashboard's script", tag: "dashboard", returns: "JavaScript", mediaType: "text/javascript",
                api: false) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "no-cache"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: DashboardAssets.script)))
        }
        api.get("/assets/vigil.css", "The dashboard's style sheet", tag: "dashboard", returns: "CSS", mediaType: "text/css",
                api: false) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "no-cache"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: DashboardAssets.style)))
        }
        api.get("/vendor/chart.js", "Chart.js 3 from Debian's libjs-chart.js", tag: "dashboard", returns: "JavaScript",
                mediaType: "text/javascript", api: false) { _, _ in
            for path in options.chartJS {
                if let data = FileManager.default.contents(atPath: path) {
                    return Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "max-age=3600"],
                                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
                }
            }
            // The page notices that `Chart` is undefined and says what to install.
            return Response(status: .notFound, headers: [.contentType: "text/javascript; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string:
                                "/* Chart.js is not installed on the daemon's host: apt-get install libjs-chart.js (looked in \(options.chartJS.joined(separator: ", "))) */\n")))
        }
    }

    static func shell(page: String, title: String) -> String {
        let menu = pages.map { item in
            #"<a href="\#(item.path)"\#(item.name == page ? #" class="current""# : "")>\#(item.title)</a>"#
        }.joined()
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · Vigil</title>
            <link rel="stylesheet" href="/assets/vigil.css">
            <script src="/vendor/chart.js"></script>
            <script src="/assets/vigil.js" defer></script>
            </head>
            <body data-page="\(page)">
            <header>
            <span class="brand">Vigil</span><span id="host"></span><span id="badge" class="badge">…</span>
            <nav>\(menu)</nav>
            <button id="token" type="button" title="The API token lets this page pause, cancel and silence">Token</button>
            </header>
            <div id="notices"></div>
            <main id="main"><p class="muted">Loading…</p></main>
            <footer><span id="updated"></span> · <a href="/api/v1/openapi.json">API</a> · <a href="/metrics">/metrics</a></footer>
            </body>
            </html>

            """
    }
}
