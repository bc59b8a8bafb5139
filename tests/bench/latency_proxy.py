#!/usr/bin/env python3
"""bench/latency_proxy.py: adds the delay in each direction (a round trip costs
2 x DELAY more), keeps every byte in order, forwards a half-close, lets
connections wait at the same time rather than one after the other, and
refuses a bad command line.

usage: latency_proxy.py SOURCE_DIR
"""
import concurrent.futures
import os
import socket
import subprocess
import sys
import threading
import time

DELAY_MS = 60
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def echo_server():
    """Echoes what it reads; after the client's end of stream, sends b"bye" and closes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def one(c):
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)
            c.sendall(b"bye")

    def loop():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=one, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def round_trip(port, payload=b"ping"):
    """Seconds from sending payload to having it back, and the whole reply after a half-close."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        s.sendall(payload[:4])
        got = b""
        while len(got) < 4:
            got += s.recv(4)
        rtt = time.monotonic() - t0
        sender = threading.Thread(target=lambda: (s.sendall(payload[4:]), s.shutdown(socket.SHUT_WR)))
        sender.start()
        chunks = [got]
        while True:
            data = s.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
        sender.join()
        return rtt, b"".join(chunks)


def main():
    src = os.path.abspath(sys.argv[1])
    proxy = os.path.join(src, "bench", "latency_proxy.py")
    target = echo_server()
    p = subprocess.Popen([sys.executable, proxy, "--target", f"127.0.0.1:{target}", "--delay", str(DELAY_MS)],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        check(line.startswith("listening on 127.0.0.1:"), f"the proxy says where it listens: {line!r}")
        port = int(line.rsplit(":", 1)[1])

        direct, _ = round_trip(target)
        rtt, _ = round_trip(port)
        check(2 * DELAY_MS / 1000 <= rtt < 2 * DELAY_MS / 1000 + direct + 0.5,
              f"a round trip through the proxy takes 2 x {DELAY_MS} ms more "
              f"({rtt * 1000:.1f} ms, {direct * 1000:.1f} ms without it)")

        payload = os.urandom(5 << 20)
        _, reply = round_trip(port, payload)
        check(reply == payload + b"bye",
              f"5 MiB come back byte for byte, then the half-close is forwarded ({len(reply)} bytes)")

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda i: round_trip(port, b"conn%d" % i)[1], range(16)))
        elapsed = time.monotonic() - t0
        check(replies == [b"conn%d" % i + b"bye" for i in range(16)], "16 connections at once each get their own bytes")
        check(elapsed < 16 * 2 * DELAY_MS / 1000 / 2,
              f"16 concurrent connections wait together, not one after the other ({elapsed:.2f} s)")
    finally:
        p.terminate()
        p.wait(10)

    r = subprocess.run([sys.executable, proxy, "--target", "nowhere", "--delay", "10"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 2 and "HOST:PORT" in r.stderr, f"a bad --target is refused: {r.stderr.strip()}")
    r = subprocess.run([sys.executable, proxy, "--target", "127.0.0.1:1", "--delay", "-1"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 2 and "negative" in r.stderr, f"a negative --delay is refused: {r.stderr.strip()}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
