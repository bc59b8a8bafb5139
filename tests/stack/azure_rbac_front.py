#!/usr/bin/env python3
"""A stand-in for Azure RBAC on Blob Storage's data plane: an HTTPS front in front of
Azurite (which takes any well-formed bearer token and checks no role assignments).

A request with a bearer token must carry an Entra v1 access token of the stack's
tenant for https://storage.azure.com: RS256-signed by a key of the Entra ID stand-in
(its JWKS over HTTPS), unexpired. Otherwise the answer is Azure's 403
AuthenticationFailed. The token's oid is then looked up in the role assignments of
DIR/config.json:

  Storage Blob Data Reader       reads: GET and HEAD (Get Blob, Get Blob Properties,
                                 List Blobs, List Containers, Get Block List, ...)
  Storage Blob Data Contributor  also writes: PUT, POST, DELETE (Put Blob, Put Block,
  Storage Blob Data Owner        Put Block List, Copy Blob, Delete Blob, Create
                                 Container, ...)
  (none)                         nothing

An operation the role lacks gets Azure's refusal, before the request's body is read
(with Expect: 100-continue, before it is sent): 403 with x-ms-error-code
AuthorizationPermissionMismatch and, except for HEAD, the XML body
  <Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not
  authorized to perform this operation using this permission.\\nRequestId:...\\nTime:...
  </Message></Error>
Everything else, and every request without a bearer token (Shared Key and SAS are not
RBAC), is forwarded to Azurite as it came, bodies streamed both ways.

DIR/config.json (written by `up`, read again when it changes, so tests can take a role
away):
  {"tenant": ID, "authority": URL, "ca": ENTRA-CA, "upstream": "https://HOST:PORT",
   "upstream_ca": CA-FILE, "roles": {OID: ROLE}}
Every decision goes to DIR/access.log (never a token).

    azure_rbac_front.py serve DIR --port P --cert C --key K

Only the Python standard library (and oidc.py, stacklib.py beside it) is used.
"""

import datetime
import http.client
import http.server
import os
import ssl
import sys
import threading
import uuid
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oidc  # noqa: E402
import stacklib  # noqa: E402

RESOURCE = "https://storage.azure.com"
READER, CONTRIBUTOR, OWNER = ("Storage Blob Data Reader", "Storage Blob Data Contributor",
                              "Storage Blob Data Owner")
CAN = {READER: {"read"}, CONTRIBUTOR: {"read", "write"}, OWNER: {"read", "write"}}
SERVER = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
CHUNK = 256 * 1024
# not forwarded: this hop's own
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "expect"}


class Refusal(Exception):
    def __init__(self, status, reason, code, message, detail=None):
        super().__init__(message)
        self.status, self.reason, self.code, self.message, self.detail = (
            status, reason, code, message, detail)


def needs(method, query):
    """The data action an operation needs: "read" or "write"."""
    if method in ("GET", "HEAD"):
        return "read"
    # Get User Delegation Key is a POST that Reader may make
    if method == "POST" and parse_qs(query).get("comp") == ["userdelegationkey"]:
        return "read"
    return "write"


class Front:
    def __init__(self, directory, url):
        self.url = url
        self.conf = stacklib.JsonFile(os.path.join(directory, "config.json"))
        self.issuer_keys = oidc.IssuerKeys()
        self.lock = threading.Lock()
        self.log_file = open(os.path.join(directory, "access.log"), "a", buffering=1)

    def log(self, line):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.lock:
            self.log_file.write(f"{stamp} {line}\n")

    def config(self):
        return self.conf.get()

    def caller(self, token):
        """The verified claims of a bearer token, or Refusal (AuthenticationFailed)."""
        conf = self.config()
        issuer = f"https://sts.windows.net/{conf['tenant']}/"

        def refuse(why):
            return Refusal(403, "Server failed to authenticate the request. Make sure the "
                           "value of Authorization header is formed correctly including the "
                           "signature.", "AuthenticationFailed",
                           "Server failed to authenticate the request. Make sure the value of "
                           "Authorization header is formed correctly including the signature.",
                           why)
        try:
            keys = self.issuer_keys.get(
                issuer, conf["ca"],
                f"{conf['authority']}/{conf['tenant']}/.well-known/openid-configuration")
            claims = oidc.verify(token, keys)
        except ValueError as e:
            if "expired" in str(e):
                raise refuse("Lifetime validation failed. The token is expired.")
            raise refuse(f"Signature validation failed: {e}")
        if claims.get("iss") != issuer:
            raise refuse(f"Issuer validation failed. Issuer did not match: {claims.get('iss')}")
        if claims.get("aud") not in (RESOURCE, RESOURCE + "/"):
            raise refuse(f"Audience validation failed. Audience did not match: "
                         f"{claims.get('aud')}")
        return claims

    def authorize(self, method, path, query, authorization):
        """None to forward, or the Refusal to answer."""
        if not authorization.lower().startswith("bearer "):
            return None   # Shared Key, SAS or anonymous: Azurite decides
        claims = self.caller(authorization[7:].strip())
        role = self.config().get("roles", {}).get(claims.get("oid"))
        action = needs(method, query)
        who = f"oid={claims.get('oid')} appid={claims.get('appid')} role={role or '(none)'}"
        if action in CAN.get(role, ()):
            self.log(f"allowed {method} {path} ({action}) {who}")
            return None
        self.log(f"refused {method} {path} ({action}) {who}")
        return Refusal(403, "This request is not authorized to perform this operation "
                       "using this permission.", "AuthorizationPermissionMismatch",
                       "This request is not authorized to perform this operation using "
                       "this permission.")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    upstream = None

    def version_string(self):
        return SERVER

    def handle_expect_100(self):
        # answered after the role check (forward), or never (a refusal)
        return True

    def refuse(self, e, has_body):
        now = datetime.datetime.now(datetime.timezone.utc)
        request_id = str(uuid.uuid4())
        message = (f"{e.message}\nRequestId:{request_id}\n"
                   f"Time:{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}0Z")
        detail = (f"<AuthenticationErrorDetail>{e.detail}</AuthenticationErrorDetail>"
                  if e.detail else "")
        body = ("\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>"
                f"{e.code}</Code><Message>{message}</Message>{detail}</Error>").encode()
        expect = self.headers.get("Expect", "").lower() == "100-continue"
        if has_body and not expect:
            self.drain()
        self.send_response(e.status, e.reason)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        if self.command != "HEAD":
            self.send_header("Content-Type", "application/xml")
        self.send_header("x-ms-request-id", request_id)
        for h in ("x-ms-client-request-id", "x-ms-version"):
            if self.headers.get(h):
                self.send_header(h, self.headers[h])
        self.send_header("x-ms-error-code", e.code)
        if has_body and expect:   # the body was never asked for
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drain(self):
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            got = self.rfile.read(min(CHUNK, left))
            if not got:
                break
            left -= len(got)

    def connect(self):
        conf = self.server.front.config()
        if self.upstream is None:
            u = urlsplit(conf["upstream"])
            self.upstream = http.client.HTTPSConnection(
                u.hostname, u.port, timeout=300,
                context=ssl.create_default_context(cafile=conf["upstream_ca"]))
        return self.upstream

    def send_upstream(self, has_body):
        """The upstream's response to this request, its body streamed from the client."""
        conn = self.connect()
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP:
                conn.putheader(k, v)
        conn.endheaders()
        if self.headers.get("Expect", "").lower() == "100-continue" and has_body:
            self.send_response_only(100)
            self.end_headers()
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            got = self.rfile.read(min(CHUNK, left))
            if not got:
                raise ConnectionError("the client closed the request body early")
            conn.send(got)
            left -= len(got)
        return conn.getresponse()

    def forward(self, has_body):
        if has_body and self.upstream is not None:
            # a kept-alive connection Azurite closed meanwhile would lose the body
            self.upstream.close()
            self.upstream = None
        for attempt in (1, 2):
            reused = self.upstream is not None
            try:
                resp = self.send_upstream(has_body)
                break
            except (OSError, http.client.HTTPException) as e:
                self.upstream.close()
                self.upstream = None
                if reused and not has_body and attempt == 1:
                    continue   # Azurite closed the idle connection: once more on a new one
                self.server.front.log(f"upstream error {self.command} {self.path}: {e!r}")
                self.close_connection = True
                self.send_error(502, "Azurite does not answer")
                return
        conn = self.upstream
        self.send_response_only(resp.status, resp.reason)
        chunked = resp.getheader("Content-Length") is None and self.command != "HEAD" \
            and resp.status not in (204, 304)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            data = resp.read(CHUNK)   # b"" at once for HEAD, which ends the response
            if not data:
                break
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        if resp.will_close:
            conn.close()
            self.upstream = None

    def serve(self):
        front = self.server.front
        if self.headers.get("Transfer-Encoding"):
            # Azure Storage wants Content-Length on every request with a body
            self.close_connection = True
            return self.send_error(411, "Content-Length Required")
        has_body = int(self.headers.get("Content-Length") or 0) > 0
        url = urlsplit(self.path)
        try:
            refusal = front.authorize(self.command, url.path, url.query,
                                      self.headers.get("Authorization", ""))
        except Refusal as e:
            front.log(f"refused {self.command} {url.path} {e.code}: {e.detail}")
            refusal = e
        except Exception as e:   # a bug here must still answer
            front.log(f"internal error: {e!r}")
            self.close_connection = True
            return self.send_error(500, repr(e))
        if refusal:
            return self.refuse(refusal, has_body)
        self.forward(has_body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = serve

    def date_time_string(self, timestamp=None):
        return formatdate(timestamp, usegmt=True)

    def log_message(self, fmt, *args):
        pass

    def finish(self):
        if self.upstream is not None:
            self.upstream.close()
        super().finish()


def main():
    opts = stacklib.daemon_options(__doc__, ("--cert", {"required": True}),
                                   ("--key", {"required": True}))
    front = Front(os.path.abspath(opts.dir), f"https://127.0.0.1:{opts.port}")
    front.log(f"listening on {front.url}")
    stacklib.serve(Handler, opts.port, "front", front, opts.cert, opts.key)


if __name__ == "__main__":
    main()
