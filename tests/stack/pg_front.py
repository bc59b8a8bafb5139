"""A PostgreSQL front for the stack's token-as-password stand-ins (RDS IAM, Entra ID).

It speaks the PostgreSQL protocol: TLS (required: a token must never cross the wire in
the clear), the startup message, then asks for a cleartext password as RDS and Azure
Database for PostgreSQL do. A subclass decides whether the password is a valid token
for the user logging in. Then it logs in to the real server as that user with the
user's real password (SCRAM; DIR/users.json, written by the seed, maps database users
to {"password": ...}), and relays the session both ways. A refusal is a FATAL 28P01
in the real service's words; the reason goes to DIR/access.log only.

Only the Python standard library is used.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import socket
import ssl
import struct
import sys
import threading

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402

SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST, PROTOCOL_3 = 80877103, 80877104, 80877102, 196608


class Refused(Exception):
    pass


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def read_message(sock):
    kind = read_exact(sock, 1)
    (length,) = struct.unpack("!I", read_exact(sock, 4))
    return kind, read_exact(sock, length - 4)


def message(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def error_response(code, text):
    fields = b"".join(t + v.encode() + b"\0" for t, v in
                      ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", text)))
    return message(b"E", fields + b"\0")


def load(path):
    with open(path) as f:
        return json.load(f)


class PgFront:
    """Subclasses define verify(token, user) -> who (for the log) or raise Refused, and
    refusal(user) -> the FATAL message the real service sends."""

    def __init__(self, opts):
        self.dir = os.path.abspath(opts.dir)
        self.port = opts.port
        self.upstream = ("127.0.0.1", opts.upstream_port)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(opts.cert, opts.key)
        self.log_file = open(os.path.join(self.dir, "access.log"), "a", buffering=1)
        self.log_lock = threading.Lock()

    def log(self, line):
        with self.log_lock:
            now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.log_file.write(f"{now} {line}\n")

    # ---- upstream login (SCRAM-SHA-256) --------------------------------------

    def login_upstream(self, params, password):
        up = socket.create_connection(self.upstream, timeout=30)
        body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
        up.sendall(struct.pack("!II", len(body) + 9, PROTOCOL_3) + body + b"\0")
        nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        first_bare = f"n=,r={nonce}"
        while True:
            kind, data = read_message(up)
            if kind == b"E":
                raise Refused(f"the server refused the real login: {data!r}")
            if kind != b"R":
                raise Refused(f"unexpected message {kind!r} during the real login")
            (auth,) = struct.unpack("!I", data[:4])
            if auth == 0:
                return up, message(kind, data)
            if auth == 10:
                initial = ("n,," + first_bare).encode()
                up.sendall(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(initial)) +
                                   initial))
            elif auth == 11:
                server_first = data[4:].decode()
                attrs = dict(a.split("=", 1) for a in server_first.split(","))
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                             base64.b64decode(attrs["s"]), int(attrs["i"]))
                client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
                stored = hashlib.sha256(client_key).digest()
                without_proof = f"c=biws,r={attrs['r']}"
                auth_message = f"{first_bare},{server_first},{without_proof}".encode()
                signature = hmac.new(stored, auth_message, hashlib.sha256).digest()
                proof = bytes(a ^ b for a, b in zip(client_key, signature))
                up.sendall(message(b"p", f"{without_proof},p={base64.b64encode(proof).decode()}"
                                   .encode()))
            elif auth == 12:
                pass   # SASL final: AuthenticationOk follows
            elif auth == 3:
                up.sendall(message(b"p", password.encode() + b"\0"))
            else:
                raise Refused(f"the real server asks for authentication method {auth}")

    # ---- one connection --------------------------------------------------------

    def handle(self, client, address):
        client.settimeout(60)
        try:
            (length, code) = struct.unpack("!II", read_exact(client, 8))
            tls = False
            while code in (SSL_REQUEST, GSS_REQUEST):
                if code == SSL_REQUEST:
                    client.sendall(b"S")
                    client = self.context.wrap_socket(client, server_side=True)
                    tls = True
                else:
                    client.sendall(b"N")
                (length, code) = struct.unpack("!II", read_exact(client, 8))
            rest = read_exact(client, length - 8)
            if code == CANCEL_REQUEST:   # backend keys are the real server's: pass it on
                with socket.create_connection(self.upstream, timeout=10) as up:
                    up.sendall(struct.pack("!II", length, code) + rest)
                return
            if code != PROTOCOL_3:
                client.sendall(error_response("0A000", "unsupported frontend protocol"))
                return
            words = rest.split(b"\0")
            params = {words[i].decode(): words[i + 1].decode()
                      for i in range(0, len(words) - 1, 2) if words[i]}
            user = params.get("user", "")
            if not tls:
                self.log(f"{address[0]} refused user={user}: no TLS")
                client.sendall(error_response(
                    "28000", f'pg_hba.conf rejects connection for host "{address[0]}", user '
                             f'"{user}", database "{params.get("database", user)}", no encryption'))
                return
            client.sendall(message(b"R", struct.pack("!I", 3)))   # cleartext password
            kind, data = read_message(client)
            if kind != b"p":
                return
            token = data.rstrip(b"\0").decode("utf-8", "replace")
            try:
                who = self.verify(token, user)
                password = load(os.path.join(self.dir, "users.json"))[user]["password"]
            except (Refused, KeyError, OSError, ValueError) as e:
                self.log(f"{address[0]} refused user={user}: {e}")
                client.sendall(error_response("28P01", self.refusal(user)))
                return
            try:
                up, auth_ok = self.login_upstream(params, password)
            except Refused as e:   # e.g. the seed changed the password meanwhile
                self.log(f"{address[0]} refused user={user}: {e}")
                client.sendall(error_response("28P01", self.refusal(user)))
                return
            self.log(f"{address[0]} accepted user={user} {who}")
            client.sendall(auth_ok)
            self.relay(client, up)
        except (ConnectionError, OSError, ssl.SSLError, struct.error, Refused) as e:
            self.log(f"{address[0]} connection ended: {e}")
        finally:
            try:
                client.close()
            except OSError:
                pass

    def relay(self, client, up):
        client.settimeout(None)
        up.settimeout(None)

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        t = threading.Thread(target=pump, args=(up, client), daemon=True)
        t.start()
        pump(client, up)
        t.join()
        up.close()

    def serve(self):
        listener = socket.create_server(("127.0.0.1", self.port), backlog=64)
        self.log(f"listening on 127.0.0.1:{self.port}, upstream 127.0.0.1:{self.upstream[1]}")
        while True:
            client, address = listener.accept()
            threading.Thread(target=self.handle, args=(client, address), daemon=True).start()


def main(cls, doc, *options):
    """Parse `serve DIR --port P --upstream-port P --cert C --key K` plus options, create
    DIR/users.json if missing, and serve with cls."""
    opts = stacklib.daemon_options(
        doc, ("--upstream-port", {"type": int, "required": True}),
        ("--cert", {"required": True}), ("--key", {"required": True}), *options)
    os.makedirs(opts.dir, exist_ok=True)
    if not os.path.exists(os.path.join(opts.dir, "users.json")):
        with open(os.path.join(opts.dir, "users.json"), "w") as f:
            json.dump({}, f)
    cls(opts).serve()
