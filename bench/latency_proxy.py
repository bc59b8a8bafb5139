#!/usr/bin/env python3
"""A TCP forwarder on 127.0.0.1 that holds every piece of data for a fixed
delay in each direction, so that one request and its answer cost about
2 x DELAY more than without it: how a server 10-50 ms away behaves.

  latency_proxy.py --target HOST:PORT --delay MS [--port PORT]

--port 0 (the default) picks a free port. Once listening it prints one line,
"listening on 127.0.0.1:PORT", on stdout; it then runs until SIGTERM/SIGINT.

Each connection gets one upstream connection and, per direction, a reader
thread that stamps each piece with the time it arrived and a sender thread
that forwards it once its time has come. Order is kept; an end of stream
(half-close) is forwarded after the same delay. The queue between them is
bounded, so a slow receiver slows the sender down instead of filling memory.
"""
import argparse
import queue
import signal
import socket
import sys
import threading
import time

PIECE = 64 * 1024
QUEUE_PIECES = 256  # at most 16 MiB held per direction
END = b""


def reader(src, q):
    """Reads pieces from src and queues (due, data); END on end of stream or error."""
    try:
        while True:
            data = src.recv(PIECE)
            if not data:
                break
            q.put((time.monotonic(), data))
    except OSError:
        pass
    q.put((time.monotonic(), END))


def sender(q, dst, delay, on_done):
    try:
        while True:
            arrived, data = q.get()
            wait = arrived + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if data is END:
                dst.shutdown(socket.SHUT_WR)
                break
            dst.sendall(data)
    except OSError:
        # the receiver went away: make the other side see it too
        try:
            dst.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    on_done()


def serve_connection(client, target, delay):
    try:
        upstream = socket.create_connection(target)
    except OSError as e:
        print(f"latency_proxy: cannot connect to {target[0]}:{target[1]}: {e}", file=sys.stderr)
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    left = [2]
    lock = threading.Lock()

    def done():
        with lock:
            left[0] -= 1
            if left[0] == 0:
                client.close()
                upstream.close()

    for src, dst in ((client, upstream), (upstream, client)):
        q = queue.Queue(QUEUE_PIECES)
        threading.Thread(target=reader, args=(src, q), daemon=True).start()
        threading.Thread(target=sender, args=(q, dst, delay, done), daemon=True).start()


def parse_target(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def serve_forever(name, port, handle):
    """Listens on 127.0.0.1:port (0: any free port), prints "listening on
    127.0.0.1:PORT" and runs handle(client socket) in a thread for each
    connection, until SIGTERM or SIGINT. Also used by tests/faults."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as e:
        sys.exit(f"{name}: cannot listen on 127.0.0.1:{port}: {e}")
    listener.listen(128)
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    try:
        while True:
            client, _ = listener.accept()
            threading.Thread(target=handle, args=(client,), daemon=True).start()
    except KeyboardInterrupt:
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", type=parse_target, required=True, help="HOST:PORT to forward to")
    p.add_argument("--delay", type=float, required=True, help="milliseconds added in each direction")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    opts = p.parse_args()
    if opts.delay < 0:
        p.error("--delay must not be negative")
    serve_forever("latency_proxy", opts.port, lambda client: serve_connection(client, opts.target, opts.delay / 1000))


if __name__ == "__main__":
    main()
