#!/usr/bin/env python3
"""Records every JSON POST it receives, one file per request: DIR/<path>-<n>.json (path without slashes).

Used by .ci/alerting-check as the far end of Alertmanager's webhook (/am) and of Vigil's own (/vigil).
Usage: webhook-receiver.py PORT DIR
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, folder = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
counter = {"n": 0}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        json.loads(body)  # a body that is not JSON fails the request, and the sender retries
        with lock:
            counter["n"] += 1
            name = "%s-%04d.json" % (self.path.strip("/").replace("/", "_") or "root", counter["n"])
        with open(os.path.join(folder, name), "wb") as out:
            out.write(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
