#!/usr/bin/env python3
"""An HTTP proxy for S3 tests that injects faults: it forwards requests to the
real server and, when a rule says so, answers an error itself, cuts the
answer off in the middle of its body, or sends the body slowly.

  s3_fault_proxy.py --target HOST:PORT --rules FILE --log FILE [--port PORT]
                    [--tls-cert CERT --tls-key KEY --target-ca CA]

--port 0 (the default) picks a free port. Once listening it prints one line,
"listening on 127.0.0.1:PORT", on stdout; it then runs until SIGTERM/SIGINT.

FILE (--rules) holds a JSON list of rules, read again whenever its content
changes (then every rule's count starts over); a missing file means no rules.
A request takes the first rule that matches it and still has uses left:
  {"method": "GET", "key": "part-of-the-path", "times": 1, "action": ...}
  action "status": answer {"status": 503} (an S3 XML error, its <Code>
                   {"code": ...}, default InternalError for 500 and 200,
                   else SlowDown) without asking the server; status 200
                   is what CopyObject answers when it fails after it began;
  action "cut":    forward, but close the connection after {"after": N} bytes
                   of the answer's body ({"hold": seconds} later: default 0);
  action "slow":   forward, sending the body in pieces of {"piece": N} bytes
                   with {"delay": seconds} between them;
  action "hang":   never answer: keep the connection open for {"seconds": N}
                   (default 60) without asking the server, then close it.
  action "hold":   forward, and once the server has answered (the request has
                   taken effect there) hold the answer for {"seconds": N}
                   (default 60) before passing it on.
"method" and "key" are optional; "times" defaults to 1 (-1: always).
Requests no rule takes are forwarded as they are (so does a rule whose action
is "pass": with "times" it lets the first N matching requests through).

With --tls-cert and --tls-key it speaks https to its clients (a server
certificate for 127.0.0.1 that they trust) and https to the target, checked
against --target-ca: how a test puts it in front of Azurite or the Entra ID
stand-in. Then a request's body is forwarded by its Content-Length, one
connection at a time (an "Expect: 100-continue" is answered by the proxy).

Every request is logged to FILE (--log) as one JSON line: method, path,
range, if_match, length (the request body's Content-Length, null if none),
action, status (the answer's HTTP status, null if none), body_bytes (for
"cut": the body bytes sent before the cut). The line is
written before the client can see the end of the answer, so a test that
reads the log after a request finds that request there.

One request per connection: "Connection: close" is set towards both sides,
which S3 clients handle by opening a new connection for the next request.
"""
import argparse
import json
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from latency_proxy import parse_target, serve_forever  # noqa: E402  (the same listener)

PIECE = 64 * 1024
HEAD_MAX = 64 * 1024


class Rules:
    def __init__(self, path):
        self.path = path
        self.text = None
        self.rules = []
        self.lock = threading.Lock()

    def take(self, method, path):
        """The rule this request takes (its uses counted), or None."""
        with self.lock:
            try:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                text = "[]"
            if text != self.text:
                self.text = text
                self.rules = json.loads(text) if text.strip() else []
                for r in self.rules:
                    r["_left"] = r.get("times", 1)
            for r in self.rules:
                if r["_left"] == 0:
                    continue
                if r.get("method") and r["method"] != method:
                    continue
                if r.get("key") and r["key"] not in path:
                    continue
                if r["_left"] > 0:
                    r["_left"] -= 1
                return r
            return None


class Log:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, entry):
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def read_head(sock, buf):
    """Reads up to the end of an HTTP head. Returns (head bytes, rest) or (None, buf) at EOF."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > HEAD_MAX:
            raise ValueError("HTTP head too large")
        data = sock.recv(PIECE)
        if not data:
            return None, buf
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end], buf[end:]


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return first, headers


def header(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def build_head(first, headers):
    kept = [(k, v) for k, v in headers if k.lower() not in ("connection", "keep-alive", "proxy-connection")]
    kept.append(("Connection", "close"))
    return (first + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept) + "\r\n").encode("latin-1")


def answer_status(client, status, reason):
    body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{reason}</Code>"
            f"<Message>injected by the test proxy</Message></Error>").encode()
    names = {200: "OK", 500: "Internal Server Error", 503: "Service Unavailable"}
    client.sendall((f"HTTP/1.1 {status} {names.get(status, 'Error')}\r\nContent-Type: application/xml\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)


def pump(src, dst):
    """Copies src to dst until either side ends."""
    try:
        while True:
            data = src.recv(PIECE)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def forward_body(client, upstream, first, headers, rest):
    """Sends the request to upstream: its head, then exactly Content-Length
    bytes of body read from the client (answering "Expect: 100-continue"
    here). Nothing else runs on either socket meanwhile: an SSL socket must
    not be read and written from two threads at once."""
    if header(headers, "transfer-encoding"):
        raise ValueError("a chunked request body is not supported over TLS")
    length = int(header(headers, "content-length") or 0)
    expect = (header(headers, "expect") or "").lower() == "100-continue"
    kept = [(k, v) for k, v in headers if k.lower() != "expect"]
    upstream.sendall(build_head(first, kept) + rest[:length])
    if expect and len(rest) < length:
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    left = length - min(len(rest), length)
    while left > 0:
        data = client.recv(min(PIECE, left))
        if not data:
            raise ValueError("the client closed the connection in the middle of the request body")
        upstream.sendall(data)
        left -= len(data)


def serve(client, target, rules, log, tls=None):
    """tls: None, or (server context for the client, client context towards the target)."""
    entry = {}
    logged = [False]
    upstream = None

    def log_once():
        # before the client can see the end of the answer, so a test reading
        # the log after a request finds the request there
        if entry and not logged[0]:
            logged[0] = True
            log.write(entry)

    try:
        if tls:
            client = tls[0].wrap_socket(client, server_side=True)
        head, rest = read_head(client, b"")
        if head is None:
            return
        first, headers = parse_head(head)
        method, path = first.split(" ")[:2]
        length = header(headers, "content-length")
        entry = {"method": method, "path": path, "range": header(headers, "range"),
                 "if_match": header(headers, "if-match"), "length": int(length) if length else None,
                 "action": "pass", "status": None, "body_bytes": 0}
        rule = rules.take(method, path)
        action = rule["action"] if rule else "pass"
        entry["action"] = action
        if action == "hang":
            log_once()
            time.sleep(rule.get("seconds", 60))
            return
        if action == "status":
            # take the body the client sends anyway, so that closing does not reset the connection
            length = int(header(headers, "content-length") or 0)
            if (header(headers, "expect") or "").lower() != "100-continue":
                while len(rest) < length:
                    data = client.recv(PIECE)
                    if not data:
                        break
                    rest += data
            entry["status"] = rule.get("status", 503)
            log_once()
            status = rule.get("status", 503)
            answer_status(client, status, rule.get("code") or ("InternalError" if status in (200, 500) else "SlowDown"))
            return
        upstream = socket.create_connection(target)
        if tls:
            upstream = tls[1].wrap_socket(upstream, server_hostname=target[0])
            forward_body(client, upstream, first, headers, rest)
        else:
            upstream.sendall(build_head(first, headers) + rest)
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        buf = b""
        while True:
            rhead, buf = read_head(upstream, buf)
            if rhead is None:
                return
            rfirst, rheaders = parse_head(rhead)
            status = int(rfirst.split(" ")[1])
            if status == 100:
                client.sendall(rhead)
                continue
            break
        entry["status"] = status
        if action != "cut":
            log_once()
        if action == "hold":
            time.sleep(rule.get("seconds", 60))
        client.sendall(build_head(rfirst, rheaders))
        limit = rule.get("after") if action == "cut" else None
        piece = rule.get("piece", PIECE) if action == "slow" else PIECE
        delay = rule.get("delay", 0) if action == "slow" else 0
        sent = 0
        while True:
            if not buf:
                buf = upstream.recv(PIECE)
                if not buf:
                    break
            chunk, buf = buf[:piece], buf[piece:]
            if limit is not None and sent + len(chunk) >= limit:
                client.sendall(chunk[:limit - sent])
                sent = limit
                entry["body_bytes"] = sent
                log_once()
                time.sleep(rule.get("hold", 0))
                break  # cut: the connection is closed mid-body
            client.sendall(chunk)
            sent += len(chunk)
            if delay:
                time.sleep(delay)
        entry["body_bytes"] = sent
    except (OSError, ValueError) as e:  # (ssl.SSLError is an OSError)
        entry["error"] = str(e)
    finally:
        for s in (client, upstream):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        log_once()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", type=parse_target, required=True, help="HOST:PORT of the S3 server")
    p.add_argument("--rules", required=True, help="JSON file of fault rules")
    p.add_argument("--log", required=True, help="file the requests are logged to (JSON lines)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    p.add_argument("--tls-cert", help="https towards the clients: the server certificate (PEM)")
    p.add_argument("--tls-key", help="... and its key (PEM)")
    p.add_argument("--target-ca", help="https towards the target: the CA its certificate is checked against")
    opts = p.parse_args()
    if bool(opts.tls_cert) != bool(opts.tls_key) or bool(opts.tls_cert) != bool(opts.target_ca):
        p.error("--tls-cert, --tls-key and --target-ca go together")
    tls = None
    if opts.tls_cert:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(opts.tls_cert, opts.tls_key)
        tls = (server, ssl.create_default_context(cafile=opts.target_ca))
    rules, log = Rules(opts.rules), Log(opts.log)
    serve_forever("s3_fault_proxy", opts.port, lambda client: serve(client, opts.target, rules, log, tls))

if __name__ == "__main__":
    main()
