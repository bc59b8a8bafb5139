#!/usr/bin/env python3
"""A local HTTP server for the tests of mxpc.http and of webhook hooks.

    webhook_server.py DIR

Listens on 127.0.0.1 (a free port, written to DIR/port once it listens), and
appends each request as one JSON line {method, path, headers, body} to
DIR/requests.jsonl. It answers GET /missing with 404, GET /big with 2 MiB,
GET /fail (any query) with 503, and anything else with 200 and the request as JSON."""
import http.server
import json
import os
import sys

DIR = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        record = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body}
        with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        status, out = 200, json.dumps(record).encode()
        if self.path == "/missing":
            status, out = 404, b"no such hook"
        elif self.path == "/big":
            out = b"x" * (2 * 1024 * 1024)
        elif self.path.split("?")[0] == "/fail":
            status, out = 503, b"down"
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = answer

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
