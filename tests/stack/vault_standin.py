#!/usr/bin/env python3
"""A stand-in for HashiCorp Vault over HTTPS: the Kubernetes auth method and a KV
version 2 secrets engine, as the Secrets Store CSI Driver's Vault provider uses them.

  POST /v1/auth/MOUNT/login        {"role", "jwt"}: the service account token's RS256
       signature is checked against the cluster's JWKS (the Kubernetes emulator, as
       Vault does with a configured OIDC discovery / PEM keys), its expiry, the role's
       bound_service_account_names and _namespaces and its audience; the answer is a
       Vault token carrying the role's policies, valid the role's ttl.
  GET  /v1/auth/token/lookup-self  the caller's token.
  GET  /v1/MOUNT/data/PATH         KV v2 read (the latest version).
  POST|PUT /v1/MOUNT/data/PATH     KV v2 write {"data": {...}}.
Every other request needs a token (X-Vault-Token or Authorization: Bearer) whose
policies grant the path's capability (read; create/update for writes): policy paths
are exact or end in "*" as a prefix, as in Vault's ACLs. Refusals are Vault's:
{"errors": [...]}, 400 for a bad login, 403 "permission denied".

DIR/config.json (written by `up`, read again when it changes):
  {"root_token": T,
   "kubernetes": {MOUNT: {"issuer": I, "ca": CA-FILE,
       "roles": {NAME: {"bound_service_account_names": [...],
                        "bound_service_account_namespaces": [...],
                        "audience": AUD, "policies": [...], "ttl": SECONDS}}}},
   "policies": {NAME: {PATH: [CAPABILITIES]}},
   "tokens": {TOKEN: {"policies": [...], "expires": EPOCH, "display_name": N}}}
KV data lives in DIR/kv.json. Every decision goes to DIR/access.log (never a value).

    vault_standin.py serve DIR --port P --cert C --key K

Only the Python standard library (and oidc.py beside it) is used.
"""

import datetime
import http.server
import json
import os
import secrets
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oidc  # noqa: E402
import stacklib  # noqa: E402


class VaultError(Exception):
    def __init__(self, status, *errors):
        super().__init__("; ".join(errors))
        self.status, self.errors = status, list(errors)


def denied():
    return VaultError(403, "1 error occurred:\n\t* permission denied\n\n")


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


class Vault:
    def __init__(self, directory):
        self.lock = threading.Lock()
        self.conf = stacklib.JsonFile(os.path.join(directory, "config.json"), {})
        self.issued = {}   # tokens from logins: token -> {"policies", "expires", ...}
        self.issuer_keys = oidc.IssuerKeys()
        self.kv_file = stacklib.JsonFile(os.path.join(directory, "kv.json"), {})
        self.kv = dict(self.kv_file.get())
        self.log_file = open(os.path.join(directory, "access.log"), "a", buffering=1)

    def log(self, line):
        self.log_file.write(f"{iso(time.time())} {line}\n")

    def config(self):
        return self.conf.get()

    # --- auth -----------------------------------------------------------------------

    def login(self, mount, doc):
        conf = self.config()
        method = conf.get("kubernetes", {}).get(mount)
        if method is None:
            raise VaultError(400, f"no handler for route \"auth/{mount}/login\". route "
                                  "entry not found.")
        role_name, jwt = doc.get("role"), doc.get("jwt")
        if not role_name:
            raise VaultError(400, "missing role")
        if not jwt:
            raise VaultError(400, "missing jwt")
        role = method.get("roles", {}).get(role_name)
        if role is None:
            raise VaultError(400, f'invalid role name "{role_name}"')
        try:
            claims = oidc.verify(jwt, self.issuer_keys.get(method["issuer"], method["ca"]))
        except (ValueError, OSError) as e:
            self.log(f"login refused role={role_name}: {e}")
            raise denied()
        if claims.get("iss") != method["issuer"]:
            self.log(f"login refused role={role_name}: issuer {claims.get('iss')}")
            raise denied()
        sa = (claims.get("kubernetes.io") or {})
        ns, name = sa.get("namespace"), (sa.get("serviceaccount") or {}).get("name")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if role.get("audience") and role["audience"] not in auds:
            self.log(f"login refused role={role_name}: audience {auds}")
            raise VaultError(403, f"invalid audience (aud) claim: audience claim does not "
                                  f"match any expected audience")
        if name not in role.get("bound_service_account_names", []) and \
                "*" not in role.get("bound_service_account_names", []):
            self.log(f"login refused role={role_name}: service account {ns}/{name}")
            raise VaultError(403, "service account name not authorized")
        if ns not in role.get("bound_service_account_namespaces", []) and \
                "*" not in role.get("bound_service_account_namespaces", []):
            self.log(f"login refused role={role_name}: namespace {ns}")
            raise VaultError(403, "namespace not authorized")
        ttl = int(role.get("ttl", 3600))
        token = "hvs." + secrets.token_urlsafe(24)
        policies = sorted(set(role.get("policies", [])) | {"default"})
        meta = {"role": role_name, "service_account_name": name,
                "service_account_namespace": ns,
                "service_account_uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ns}/{name}"))}
        with self.lock:
            self.issued[token] = {"policies": policies, "expires": time.time() + ttl,
                                  "display_name": f"{mount}-{ns}-{name}", "meta": meta}
        self.log(f"login role={role_name} sa={ns}/{name} policies={','.join(policies)} "
                 f"ttl={ttl}")
        return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                "lease_duration": 0, "data": None, "wrap_info": None, "warnings": None,
                "auth": {"client_token": token, "accessor": secrets.token_urlsafe(18),
                         "policies": policies, "token_policies": policies, "metadata": meta,
                         "lease_duration": ttl, "renewable": True, "entity_id": "",
                         "token_type": "service", "orphan": True}}

    def token_info(self, token):
        """The token's entry, or a 403 (unknown or expired)."""
        conf = self.config()
        if token and token == conf.get("root_token"):
            return {"policies": ["root"], "expires": None, "display_name": "root"}
        with self.lock:
            info = self.issued.get(token) or conf.get("tokens", {}).get(token)
        if not info or (info.get("expires") is not None and info["expires"] <= time.time()):
            raise VaultError(403, "permission denied")
        return info

    def allowed(self, info, path, capability):
        if "root" in info["policies"]:
            return True
        policies = self.config().get("policies", {})
        for name in info["policies"]:
            for pattern, caps in policies.get(name, {}).items():
                match = path.startswith(pattern[:-1]) if pattern.endswith("*") \
                    else path == pattern
                if match and capability in caps and "deny" not in caps:
                    return True
        return False

    # --- KV v2 ------------------------------------------------------------------------

    def kv_read(self, info, mount, path):
        if not self.allowed(info, f"{mount}/data/{path}", "read"):
            self.log(f"read refused {mount}/data/{path} by {info['display_name']}")
            raise denied()
        with self.lock:
            entry = self.kv.get(f"{mount}/{path}")
        if entry is None:
            raise VaultError(404)
        self.log(f"read {mount}/data/{path} by {info['display_name']}")
        latest = entry["versions"][-1]
        return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                "lease_duration": 0, "wrap_info": None, "warnings": None, "auth": None,
                "data": {"data": latest["data"],
                         "metadata": {"created_time": latest["created_time"],
                                      "custom_metadata": None, "deletion_time": "",
                                      "destroyed": False, "version": len(entry["versions"])}}}

    def kv_write(self, info, mount, path, doc):
        key = f"{mount}/{path}"
        with self.lock:
            exists = key in self.kv
        if not self.allowed(info, f"{mount}/data/{path}", "update" if exists else "create"):
            self.log(f"write refused {mount}/data/{path} by {info['display_name']}")
            raise denied()
        data = doc.get("data")
        if not isinstance(data, dict):
            raise VaultError(400, "no data provided")
        now = iso(time.time())
        with self.lock:
            entry = self.kv.setdefault(key, {"versions": []})
            entry["versions"].append({"data": data, "created_time": now})
            version = len(entry["versions"])
            self.kv_file.put(self.kv)
        self.log(f"write {mount}/data/{path} version={version} by {info['display_name']}")
        return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                "lease_duration": 0, "wrap_info": None, "warnings": None, "auth": None,
                "data": {"created_time": now, "custom_metadata": None, "deletion_time": "",
                         "destroyed": False, "version": version}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxpc-stack-vault"
    sys_version = ""

    def answer(self, status, doc):
        data = json.dumps(doc).encode() if doc is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def token(self):
        token = self.headers.get("X-Vault-Token")
        auth = self.headers.get("Authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        return token

    def serve(self, method):
        vault = self.server.vault
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        try:
            if method != "GET":
                try:
                    doc = json.loads(body or b"{}")
                except ValueError:
                    raise VaultError(400, "failed to parse JSON input")
            if path == "/v1/sys/health":
                return self.answer(200, {"initialized": True, "sealed": False,
                                         "standby": False, "version": "1.15.0"})
            parts = path.split("/")
            if len(parts) == 5 and parts[:3] == ["", "v1", "auth"] and parts[4] == "login" \
                    and method != "GET" and parts[3] != "token":
                return self.answer(200, vault.login(parts[3], doc))
            info = vault.token_info(self.token())
            if path == "/v1/auth/token/lookup-self":
                return self.answer(200, {"data": {
                    "policies": info["policies"], "display_name": info["display_name"],
                    "ttl": int(info["expires"] - time.time()) if info.get("expires") else 0,
                    "meta": info.get("meta")}})
            if len(parts) >= 5 and parts[:2] == ["", "v1"] and parts[3] == "data":
                mount, sub = parts[2], "/".join(parts[4:])
                if method == "GET":
                    return self.answer(200, vault.kv_read(info, mount, sub))
                return self.answer(200, vault.kv_write(info, mount, sub, doc))
            raise VaultError(404, f"no handler for route \"{path[4:]}\". route entry not "
                                  "found.")
        except VaultError as e:
            self.answer(e.status, {"errors": e.errors})
        except Exception as e:   # a bug here must still answer
            vault.log(f"internal error: {e!r}")
            self.answer(500, {"errors": [repr(e)]})

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")

    def do_PUT(self):
        self.serve("PUT")

    def log_message(self, fmt, *args):
        pass


def main():
    args = stacklib.daemon_options(__doc__, ("--cert", {"required": True}),
                                   ("--key", {"required": True}))
    vault = Vault(os.path.abspath(args.dir))
    vault.log(f"listening on https://127.0.0.1:{args.port}")
    stacklib.serve(Handler, args.port, "vault", vault, args.cert, args.key)


if __name__ == "__main__":
    main()
