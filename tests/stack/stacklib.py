"""Helpers shared by the stack's seed tool and its Python tests (standard library only):
reading env.sh, a Kubernetes API client, an S3 client with AWS Signature V4, an Azure
Blob Storage client with Shared Key, a Vault KV v2 client, psql, the tests' pass/fail
bookkeeping, and what the stand-in daemons share (their JSON files, their server)."""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import shlex
import ssl
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from email.utils import formatdate
from urllib.parse import quote, unquote, urlsplit


# --------------------------------------------------------------------------
# env.sh
# --------------------------------------------------------------------------

def default_env_file():
    if os.environ.get("MXPC_STACK_ENV"):
        return os.environ["MXPC_STACK_ENV"]
    return os.path.join(os.environ.get("MXPC_STACK_DIR", "/tmp/mxpc-stack"), "env.sh")


def load_env(path):
    """Parse the `export NAME=value` lines that `up` writes (values shell-quoted)."""
    env = {}
    with open(path) as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                name, value = words[1].split("=", 1)
                env[name] = value
    return env


class JsonFile:
    """A JSON file read again whenever it changes (the stand-ins' configuration, which
    tests edit while they run)."""

    def __init__(self, path):
        self.path, self.mtime, self.doc = path, None, None

    def get(self):
        mtime = os.stat(self.path).st_mtime_ns
        if mtime != self.mtime:
            with open(self.path) as f:
                self.doc = json.load(f)
            self.mtime = mtime
        return self.doc


# --------------------------------------------------------------------------
# Kubernetes API
# --------------------------------------------------------------------------

class K8sError(Exception):
    def __init__(self, code, status):
        super().__init__(f"{code}: {status.get('message', status)}")
        self.code = code
        self.status = status


class K8s:
    """A small Kubernetes API client: JSON in and out, one keep-alive connection."""

    def __init__(self, url, ca_file, token=None, cert=None, key=None):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 443
        self.context = ssl.create_default_context(cafile=ca_file)
        if cert:
            self.context.load_cert_chain(cert, key)
        self.token = token
        self.conn = None

    def request(self, method, path, body=None, content_type="application/json",
                accept="application/json"):
        """Returns (status code, decoded JSON body or text)."""
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):   # one retry when a kept-alive connection was closed
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port,
                                                        context=self.context, timeout=30)
            try:
                self.conn.request(method, path, data, headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def call(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        """Like request() but raises K8sError unless the status code is in ok."""
        code, obj = self.request(method, path, body, content_type)
        if code not in ok:
            raise K8sError(code, obj if isinstance(obj, dict) else {"message": obj})
        return obj


def core_path(namespace, plural, name=""):
    return f"/api/v1/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def mendix_path(namespace, plural, name="", sub=""):
    path = f"/apis/privatecloud.mendix.com/v1alpha1/namespaces/{namespace}/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


# --------------------------------------------------------------------------
# S3 with AWS Signature Version 4
# --------------------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _uri_encode(text, keep_slash):
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def sigv4_headers(method, host, path, query, headers, payload_sha256, access_key, secret_key,
                  region, now=None, service="s3"):
    """Headers to add for a SigV4-signed request (Authorization, x-amz-date,
    x-amz-content-sha256, Host). path is unencoded; query a list of (name, value)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed.update({"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256})
    names = sorted(signed)
    canonical_query = "&".join(f"{_uri_encode(k, False)}={_uri_encode(v, False)}"
                               for k, v in sorted(query))
    canonical = "\n".join([method, _uri_encode(path, True), canonical_query,
                           "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names),
                           payload_sha256])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"Host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                             f"SignedHeaders={';'.join(names)}, Signature={signature}"}


def presign_url(endpoint, bucket, key, access_key, secret_key, region, expires, now=None):
    """A presigned GET URL (SigV4 in the query string, as S3 clients' presign does),
    valid for `expires` seconds."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    host = urlsplit(endpoint).netloc
    path = f"/{bucket}/{key}"
    query = sorted([("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", f"{access_key}/{scope}"),
                    ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", "host")])
    canonical_query = "&".join(f"{_uri_encode(k, False)}={_uri_encode(v, False)}" for k, v in query)
    canonical = "\n".join(["GET", _uri_encode(path, True), canonical_query, f"host:{host}\n", "host",
                           "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret_key).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{endpoint.rstrip('/')}{_uri_encode(path, True)}?{canonical_query}&X-Amz-Signature={signature}"


class KeepAlive:
    """One keep-alive HTTP(S) connection per thread to one server; send() retries once
    when a kept-alive connection was closed."""

    def __init__(self, endpoint, ca_file=None):
        parts = urlsplit(endpoint)
        self.https = parts.scheme == "https"
        self.hostname, self.port = parts.hostname, parts.port
        self.context = ssl.create_default_context(cafile=ca_file) if self.https else None
        self.local = threading.local()

    def _conn(self):
        if getattr(self.local, "conn", None) is None:
            if self.https:
                self.local.conn = http.client.HTTPSConnection(self.hostname, self.port,
                                                              context=self.context, timeout=60)
            else:
                self.local.conn = http.client.HTTPConnection(self.hostname, self.port,
                                                             timeout=60)
        return self.local.conn

    def send(self, method, url, body, headers):
        """(response, body bytes)."""
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, url, body, headers)
                resp = conn.getresponse()
                return resp, resp.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise


class S3Error(Exception):
    def __init__(self, status, body):
        code = ""
        try:
            code = ET.fromstring(body).findtext("Code") or ""
        except ET.ParseError:
            pass
        super().__init__(f"S3 {status} {code}".strip())
        self.status = status
        self.code = code


class S3(KeepAlive):
    """Path-style S3 client (endpoint without bucket). Thread-safe: one keep-alive
    connection per thread. For https the CA comes from ca_file, else from OpenSSL's
    defaults, which honour SSL_CERT_FILE and SSL_CERT_DIR."""

    def __init__(self, endpoint, access_key, secret_key, region="us-east-1", ca_file=None):
        super().__init__(endpoint, ca_file)
        self.host = urlsplit(endpoint).netloc
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.clock_skew = datetime.timedelta(0)   # tests sign with a wrong clock

    def request(self, method, bucket, key="", query=(), body=b"", headers=None,
                payload_sha256=None):
        """Returns (status, body bytes, response headers); raises S3Error for >= 300.
        payload_sha256 overrides the body's hash (only tests want that)."""
        path = f"/{bucket}" + (f"/{key}" if key else "")
        headers = dict(headers or {})
        headers.update(sigv4_headers(method, self.host, path, list(query), headers,
                                     payload_sha256 or hashlib.sha256(body).hexdigest(),
                                     self.access_key, self.secret_key, self.region,
                                     datetime.datetime.now(datetime.timezone.utc) +
                                     self.clock_skew))
        url = _uri_encode(path, True)
        if query:
            url += "?" + "&".join(f"{_uri_encode(k, False)}={_uri_encode(v, False)}"
                                  if v != "" else _uri_encode(k, False) for k, v in query)
        resp, data = self.send(method, url, body, headers)
        if resp.status >= 300:
            raise S3Error(resp.status, data)
        return resp.status, data, dict(resp.getheaders())

    def put(self, bucket, key, data):
        self.request("PUT", bucket, key, body=data)

    def get(self, bucket, key):
        return self.request("GET", bucket, key)[1]

    def head(self, bucket, key):
        return self.request("HEAD", bucket, key)[2]

    def create_bucket(self, bucket):
        self.request("PUT", bucket)

    def delete_bucket(self, bucket):
        self.request("DELETE", bucket)

    def list_buckets(self):
        _, data, _ = self.request("GET", "")
        ns = {"s": "http://s3.amazonaws.com/doc/2006-03-01/"}
        return [b.findtext("s:Name", namespaces=ns)
                for b in ET.fromstring(data).iter(f"{{{ns['s']}}}Bucket")]

    def list(self, bucket, prefix=""):
        """All objects under prefix: {key: size}. Follows continuation tokens."""
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        out, token = {}, None
        while True:
            query = [("list-type", "2"), ("prefix", prefix)]
            if token:
                query.append(("continuation-token", token))
            _, data, _ = self.request("GET", bucket, query=query)
            root = ET.fromstring(data)
            for item in root.iter(ns + "Contents"):
                out[item.findtext(ns + "Key")] = int(item.findtext(ns + "Size"))
            token = root.findtext(ns + "NextContinuationToken")
            if root.findtext(ns + "IsTruncated") != "true" or not token:
                return out

    def delete_many(self, bucket, keys):
        """Multi-object delete, 1000 keys per request."""
        keys = list(keys)
        for i in range(0, len(keys), 1000):
            root = ET.Element("Delete")
            ET.SubElement(root, "Quiet").text = "true"
            for key in keys[i:i + 1000]:
                ET.SubElement(ET.SubElement(root, "Object"), "Key").text = key
            body = ET.tostring(root)
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            self.request("POST", bucket, query=[("delete", "")], body=body,
                         headers={"Content-MD5": md5, "Content-Type": "application/xml"})


# --------------------------------------------------------------------------
# Azure Blob Storage with Shared Key
# --------------------------------------------------------------------------

AZURE_VERSION = "2021-08-06"


def sharedkey_string_to_sign(method, path, query, headers, account):
    """What Shared Key signs (Azure Storage, version 2009-09-19 and later): path as sent
    (percent-encoded), query a list of (name, value) unencoded, headers a dict."""
    h = {k.lower(): str(v) for k, v in headers.items()}
    length = h.get("content-length", "")
    standard = [method, h.get("content-encoding", ""), h.get("content-language", ""),
                "" if length == "0" else length, h.get("content-md5", ""),
                h.get("content-type", ""), h.get("date", ""), h.get("if-modified-since", ""),
                h.get("if-match", ""), h.get("if-none-match", ""),
                h.get("if-unmodified-since", ""), h.get("range", "")]
    canonical_headers = "".join(f"{k}:{' '.join(v.split())}\n" for k, v in sorted(h.items())
                                if k.startswith("x-ms-"))
    resource = f"/{account}{path}"
    params = {}
    for name, value in query:
        params.setdefault(name.lower(), []).append(value)
    for name in sorted(params):
        resource += f"\n{name}:{','.join(sorted(params[name]))}"
    return "\n".join(standard) + "\n" + canonical_headers + resource


def sharedkey_authorization(method, path, query, headers, account, key):
    to_sign = sharedkey_string_to_sign(method, path, query, headers, account)
    mac = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(mac).decode()}"


class AzureError(Exception):
    def __init__(self, status, code, body):
        super().__init__(f"Azure Storage {status} {code}".strip())
        self.status, self.code, self.body = status, code, body


class AzureBlob(KeepAlive):
    """Azure Blob Storage client for an account's endpoint (https://HOST/ACCOUNT with
    Azurite, https://ACCOUNT.blob.core.windows.net in Azure). Signs with Shared Key, or
    sends a Bearer token (token=...). One keep-alive connection per thread."""

    def __init__(self, endpoint, account, key=None, ca_file=None, token=None):
        super().__init__(endpoint, ca_file)
        self.base = urlsplit(endpoint).path.rstrip("/")
        self.account, self.key, self.token = account, key, token

    def request(self, method, container="", blob="", query=(), body=b"", headers=None):
        """Returns (status, body bytes, response headers with lower-case names); raises
        AzureError (with x-ms-error-code) for >= 300."""
        path = quote(f"{self.base}/{container}" + (f"/{blob}" if blob else ""), safe="/~")
        headers = dict(headers or {})
        headers.update({"x-ms-date": formatdate(usegmt=True), "x-ms-version": AZURE_VERSION,
                        "Content-Length": str(len(body))})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        else:
            headers["Authorization"] = sharedkey_authorization(method, path, query, headers,
                                                               self.account, self.key)
        url = path + ("?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                                     for k, v in query) if query else "")
        resp, data = self.send(method, url, body, headers)
        got = {k.lower(): v for k, v in resp.getheaders()}
        if resp.status >= 300:
            raise AzureError(resp.status, got.get("x-ms-error-code", ""), data)
        return resp.status, data, got

    def create_container(self, container):
        self.request("PUT", container, query=[("restype", "container")])

    def delete_container(self, container):
        self.request("DELETE", container, query=[("restype", "container")])

    def put(self, container, blob, data):
        self.request("PUT", container, blob, body=data,
                     headers={"x-ms-blob-type": "BlockBlob"})

    def get(self, container, blob):
        return self.request("GET", container, blob)[1]

    def delete(self, container, blob):
        self.request("DELETE", container, blob)

    def list(self, container, prefix=""):
        """All blobs under prefix: {name: size}. Follows markers."""
        out, marker = {}, ""
        while True:
            query = [("restype", "container"), ("comp", "list"), ("prefix", prefix)]
            if marker:
                query.append(("marker", marker))
            root = ET.fromstring(self.request("GET", container, query=query)[1])
            for item in root.iter("Blob"):
                out[item.findtext("Name")] = int(item.findtext("Properties/Content-Length"))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return out

    def list_containers(self):
        root = ET.fromstring(self.request("GET", query=[("comp", "list")])[1])
        return [c.findtext("Name") for c in root.iter("Container")]


def azure_blob_name(url):
    """The container and blob of a blob URL on a path-style endpoint, unencoded."""
    parts = urlsplit(url).path.strip("/").split("/", 2)
    return unquote(parts[1]), unquote(parts[2]) if len(parts) > 2 else ""


# --------------------------------------------------------------------------
# HashiCorp Vault (the stand-in's KV v2)
# --------------------------------------------------------------------------

class Vault:
    """KV v2 writes and reads with a Vault token, over HTTPS."""

    def __init__(self, address, ca_file, token):
        self.address, self.token = address.rstrip("/"), token
        self.context = ssl.create_default_context(cafile=ca_file)

    def request(self, method, path, body=None):
        parts = urlsplit(self.address)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443,
                                           context=self.context, timeout=30)
        try:
            conn.request(method, "/v1/" + path, json.dumps(body) if body is not None else None,
                         {"X-Vault-Token": self.token, "Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"Vault {method} {path}: HTTP {resp.status} {data[:200]!r}")
        return json.loads(data) if data else None

    def kv_put(self, mount, path, data):
        return self.request("POST", f"{mount}/data/{path}", {"data": data})


# --------------------------------------------------------------------------
# PostgreSQL through psql
# --------------------------------------------------------------------------

def psql_bin(env):
    candidate = os.path.join(env.get("MXPC_PG_BINDIR", ""), "psql")
    return candidate if os.access(candidate, os.X_OK) else "psql"


def conninfo(**params):
    return " ".join(f"{k}='{str(v)}'" for k, v in params.items() if v is not None)


def psql(env, info, sql, password, check=True, extra_env=None):
    """Run SQL through psql (stdin, stop at the first error); returns the
    CompletedProcess with unaligned, tuples-only output."""
    penv = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    penv.update(extra_env or {})
    proc = subprocess.run([psql_bin(env), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                           "-d", info], input=sql, text=True, capture_output=True, env=penv)
    if check and proc.returncode != 0:
        raise RuntimeError(f"psql failed ({info.split('password')[0]}): {proc.stderr.strip()}")
    return proc


# --------------------------------------------------------------------------
# Test bookkeeping: "ok - ..." / "FAIL - ..." lines and the closing "N passed, M failed"
# --------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, description, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"ok - {description}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {description}" + (f": {detail}" if detail else ""), flush=True)
        return condition

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)

    def abort(self, message):
        """A precondition failed (no env, server down): a failure, never a skip."""
        self.check(message, False)
        self.finish()


def stack_env_or_fail(checks):
    """The env named by MXPC_STACK_ENV; fails the test when it is unset or missing."""
    path = os.environ.get("MXPC_STACK_ENV")
    if not path:
        checks.abort("MXPC_STACK_ENV is set (path of the stack's env.sh)")
    if not os.path.exists(path):
        checks.abort(f"MXPC_STACK_ENV={path} exists")
    return load_env(path)


# --------------------------------------------------------------------------
# Stand-in daemons: their files and their HTTP(S) server
# --------------------------------------------------------------------------

def write_json(path, doc):
    """Replaces the file with `doc` as JSON, readable by the owner only."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


class JsonFile:
    """A JSON file read again whenever it changes (tests edit a running stand-in's
    configuration); `default` while it does not exist."""

    def __init__(self, path, default=None):
        self.path, self.default = path, default
        self.mtime, self.doc = None, default
        self.lock = threading.Lock()

    def get(self):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return self.default
        with self.lock:
            if mtime != self.mtime:
                with open(self.path) as f:
                    self.doc = json.load(f)
                self.mtime = mtime
            return self.doc

    def put(self, doc):
        with self.lock:
            write_json(self.path, doc)
            self.doc, self.mtime = doc, os.stat(self.path).st_mtime_ns


def serve(handler, port, attribute, value, cert=None, key=None):
    """Runs a stand-in until it is killed: a threading HTTP server on 127.0.0.1:port
    (HTTPS with cert and key) whose handlers find `value` as server.<attribute>."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    setattr(server, attribute, value)
    sys.stdout.flush()
    server.serve_forever()


def daemon_options(doc, *options):
    """The command line of a stack daemon: `serve DIR --port P` plus `options`, each
    (flag, argparse keywords)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("dir")
    p.add_argument("--port", type=int, required=True)
    for flag, kwargs in options:
        p.add_argument(flag, **kwargs)
    return parser.parse_args()
