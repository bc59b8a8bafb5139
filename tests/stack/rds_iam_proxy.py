#!/usr/bin/env python3
"""A stand-in for Amazon RDS IAM database authentication, in front of the stack's
PostgreSQL.

It speaks the PostgreSQL protocol: TLS (required: an IAM token must never cross the
wire in the clear), the startup message, then asks for a cleartext password as RDS
does. The password must be an RDS IAM token (a SigV4-presigned rds-db:connect request):

  - for this endpoint (host:port), Action=connect, DBUser = the user logging in;
  - signed with AWS4-HMAC-SHA256 for rds-db in the configured region, X-Amz-Expires at
    most 900, not expired;
  - by temporary credentials the STS stand-in handed out and that are still live
    (sessions.json), with their session token;
  - whose role may rds-db:connect as that user (roles.json: the role's rds_users).

Then it logs in to the real server as that user with the user's real password (SCRAM),
and relays the session both ways. A refusal is RDS's: FATAL 28P01 `PAM authentication
failed for user "..."`; the reason goes to DIR/access.log only.

    rds_iam_proxy.py serve DIR --port P --upstream-port P --cert C --key K
                     --sts-dir D [--region R]

DIR/users.json (written by the seed) maps database users to their real passwords.
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
import time
from urllib.parse import quote, unquote

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402

SSL_REQUEST, GSS_REQUEST, CANCEL_REQUEST, PROTOCOL_3 = 80877103, 80877104, 80877102, 196608
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


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


class Proxy:
    def __init__(self, opts):
        self.dir = os.path.abspath(opts.dir)
        self.port = opts.port
        self.upstream = ("127.0.0.1", opts.upstream_port)
        self.sts_dir = os.path.abspath(opts.sts_dir)
        self.region = opts.region
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(opts.cert, opts.key)
        self.log_file = open(os.path.join(self.dir, "access.log"), "a", buffering=1)
        self.log_lock = threading.Lock()

    def log(self, line):
        with self.log_lock:
            now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.log_file.write(f"{now} {line}\n")

    # ---- the token ---------------------------------------------------------

    def verify_token(self, token, user):
        """The role that may log in as user with this token; Refused(reason) otherwise."""
        host, sep, query = token.partition("/?")
        if not sep:
            raise Refused("the password is not an RDS IAM token (no '/?')")
        if host not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            raise Refused(f"the token is for {host}, not this endpoint (127.0.0.1:{self.port})")
        params = {}
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            params[unquote(name)] = unquote(value)
        need = ["Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"]
        missing = [n for n in need if n not in params]
        if missing:
            raise Refused(f"the token lacks {', '.join(missing)}")
        if params["Action"] != "connect":
            raise Refused(f"Action is {params['Action']!r}, not connect")
        if params["DBUser"] != user:
            raise Refused(f"the token is for user {params['DBUser']!r}, the login for {user!r}")
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            raise Refused(f"algorithm {params['X-Amz-Algorithm']}")
        if params["X-Amz-SignedHeaders"] != "host":
            raise Refused(f"signed headers {params['X-Amz-SignedHeaders']!r}, expected 'host'")
        access_key, date, region, service, terminal = (params["X-Amz-Credential"].split("/") +
                                                       [""] * 5)[:5]
        if service != "rds-db" or terminal != "aws4_request":
            raise Refused(f"the credential scope is for {service!r}, not rds-db")
        if region != self.region:
            raise Refused(f"the token is signed for region {region}, the database is in "
                          f"{self.region}")
        try:
            signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ") \
                .replace(tzinfo=datetime.timezone.utc).timestamp()
            expires = int(params["X-Amz-Expires"])
        except ValueError:
            raise Refused("X-Amz-Date or X-Amz-Expires is malformed")
        if not params["X-Amz-Date"].startswith(date):
            raise Refused("X-Amz-Date does not match the credential scope's date")
        if expires > 900:
            raise Refused(f"X-Amz-Expires {expires} is more than 900")
        now = time.time()
        if now > signed_at + expires:
            raise Refused(f"the token expired {now - signed_at - expires:.0f} s ago")
        if signed_at > now + 300:
            raise Refused("the token is signed in the future")
        session = load(os.path.join(self.sts_dir, "sessions.json")).get(access_key)
        if session is None or session["expiration"] <= now:
            raise Refused(f"the access key {access_key} is unknown or expired")
        if params.get("X-Amz-Security-Token") != session["token"]:
            raise Refused("the session token does not belong to the access key")
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, v in sorted(params.items()) if k != "X-Amz-Signature")
        canonical = "\n".join(["GET", "/", canonical_query, f"host:{host}", "", "host",
                               EMPTY_SHA256])
        scope = f"{date}/{region}/rds-db/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + session["secret"]).encode()
        for part in (date, region, "rds-db", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            raise Refused("the signature does not match")
        role = load(os.path.join(self.sts_dir, "roles.json"))["roles"].get(session["role"], {})
        if user not in role.get("rds_users", []):
            raise Refused(f"role {session['role']} is not allowed rds-db:connect as {user}")
        return session["role"]

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
                role = self.verify_token(token, user)
                password = load(os.path.join(self.dir, "users.json"))[user]["password"]
            except (Refused, KeyError, OSError, ValueError) as e:
                self.log(f"{address[0]} refused user={user}: {e}")
                client.sendall(error_response("28P01",
                                              f'PAM authentication failed for user "{user}"'))
                return
            up, auth_ok = self.login_upstream(params, password)
            self.log(f"{address[0]} accepted user={user} role={role}")
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


def main():
    opts = stacklib.daemon_options(
        __doc__, ("--upstream-port", {"type": int, "required": True}),
        ("--cert", {"required": True}), ("--key", {"required": True}),
        ("--sts-dir", {"required": True}), ("--region", {"default": "us-east-1"}))
    os.makedirs(opts.dir, exist_ok=True)
    if not os.path.exists(os.path.join(opts.dir, "users.json")):
        with open(os.path.join(opts.dir, "users.json"), "w") as f:
            json.dump({}, f)
    Proxy(opts).serve()


if __name__ == "__main__":
    main()
