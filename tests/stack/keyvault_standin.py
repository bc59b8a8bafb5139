#!/usr/bin/env python3
"""A stand-in for Azure Key Vault's secrets over HTTPS, several vaults on one port by
path (https://127.0.0.1:PORT/VAULT stands for https://VAULT.vault.azure.net):

  GET  /VAULT/secrets/NAME[/VERSION]?api-version=7.x   the secret's value
  PUT  /VAULT/secrets/NAME?api-version=7.x             {"value": ...}: a new version
A request without a bearer token gets Key Vault's challenge (401, WWW-Authenticate:
Bearer authorization="AUTHORITY/TENANT", resource="https://vault.azure.net"), as the
Azure SDKs expect. A token must be an Entra v1 access token of the vault's tenant for
https://vault.azure.net: RS256-signed by the Entra ID stand-in (its JWKS over HTTPS),
unexpired. Access is Azure RBAC: the token's oid must hold a role on the vault ("Key
Vault Secrets User" reads, "Key Vault Secrets Officer" also writes). Refusals are Key
Vault's: {"error": {"code", "message", "innererror"}}.

DIR/config.json (written by `up`, read again when it changes):
  {"authority": URL, "ca": ENTRA-CA,
   "vaults": {VAULT: {"tenant": ID, "roles": {OID: ROLE}}}}
Secrets live in DIR/secrets.json {"VAULT/NAME": {VERSION: {"value", "created"}}} (the seed
writes it; read again when it changes). Every decision goes to DIR/access.log (never a value).

    keyvault_standin.py serve DIR --port P --cert C --key K

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
from urllib.parse import parse_qs, unquote, urlsplit

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oidc  # noqa: E402
import stacklib  # noqa: E402

RESOURCE = "https://vault.azure.net"
READERS = {"Key Vault Secrets User", "Key Vault Secrets Officer", "Key Vault Administrator"}
WRITERS = {"Key Vault Secrets Officer", "Key Vault Administrator"}


class KvError(Exception):
    def __init__(self, status, code, message, inner=None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner


class KeyVault:
    def __init__(self, directory, url):
        self.url = url
        self.lock = threading.Lock()
        self.conf = stacklib.JsonFile(os.path.join(directory, "config.json"), {})
        self.issuer_keys = oidc.IssuerKeys()
        self.secrets = stacklib.JsonFile(os.path.join(directory, "secrets.json"), {})
        self.log_file = open(os.path.join(directory, "access.log"), "a", buffering=1)

    def log(self, line):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.log_file.write(f"{stamp} {line}\n")

    def config(self):
        return self.conf.get()

    def challenge(self, vault):
        conf = self.config()
        return (f'Bearer authorization="{conf["authority"]}/{vault["tenant"]}", '
                f'resource="{RESOURCE}"')

    def caller(self, vault, authorization):
        """The verified claims of the bearer token."""
        conf = self.config()
        if not authorization or not authorization.lower().startswith("bearer "):
            raise KvError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP "
                                               "token.")
        token = authorization[7:].strip()
        tenant = vault["tenant"]
        issuer = f"https://sts.windows.net/{tenant}/"
        try:
            keys = self.issuer_keys.get(
                issuer, conf["ca"], f"{conf['authority']}/{tenant}/.well-known/openid-configuration")
            claims = oidc.verify(token, keys)
        except ValueError as e:
            if "expired" in str(e):
                raise KvError(401, "Unauthorized", "[TokenExpired] Error validating token: "
                                                   "'S2S12086'.")
            raise KvError(401, "Unauthorized", f"AKV10031: Invalid token: {e}")
        if claims.get("iss") != issuer:
            raise KvError(401, "Unauthorized", f"AKV10032: Invalid issuer. Expected one of "
                                               f"{issuer}, found {claims.get('iss')}.")
        if claims.get("aud") not in (RESOURCE, RESOURCE + "/"):
            raise KvError(401, "Unauthorized", f"AKV10022: Invalid audience. Expected "
                                               f"{RESOURCE}, found: {claims.get('aud')}.")
        return claims

    def authorize(self, vault_name, vault, claims, action, name):
        role = vault.get("roles", {}).get(claims.get("oid"))
        if role in (WRITERS if action == "setSecret" else READERS):
            return
        raise KvError(403, "Forbidden",
                      "Caller is not authorized to perform action on resource.\r\nIf role "
                      "assignments, deny assignments or role definitions were changed "
                      "recently, please observe propagation time.\r\n"
                      f"Caller: appid={claims.get('appid')};oid={claims.get('oid')};"
                      f"iss={claims.get('iss')}\r\n"
                      f"Action: 'Microsoft.KeyVault/vaults/secrets/{action}/action'\r\n"
                      f"Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/"
                      f"resourcegroups/mxpc-stack/providers/microsoft.keyvault/vaults/"
                      f"{vault_name}/secrets/{name}'\r\nAssignment: (not found)\r\n"
                      "DenyAssignmentId: null\r\nDecisionReason: null \r\n",
                      {"code": "ForbiddenByRbac"})

    def secret_doc(self, vault_name, name, version, entry):
        # the id without the vault's path: the SDKs parse it as https://HOST/secrets/N/V
        return {"value": entry["value"],
                "id": f"{self.url}/secrets/{name}/{version}",
                "attributes": {"enabled": True, "created": entry["created"],
                               "updated": entry["created"],
                               "recoveryLevel": "Recoverable+Purgeable",
                               "recoverableDays": 90},
                "tags": {}}

    def handle(self, method, path, query, headers, body):
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if not query.get("api-version"):
            raise KvError(400, "BadParameter", "The 'api-version' query parameter is missing.")
        if len(parts) not in (3, 4) or parts[1] != "secrets":
            raise KvError(404, "NotFound", "The requested resource was not found.")
        vault_name, name = parts[0], parts[2]
        vault = self.config()["vaults"].get(vault_name)
        if vault is None:
            raise KvError(404, "VaultNotFound", f"The vault {vault_name} does not exist.")
        try:
            claims = self.caller(vault, headers.get("authorization"))
        except KvError as e:
            e.challenge = self.challenge(vault)
            raise
        action = "getSecret" if method == "GET" else "setSecret"
        self.authorize(vault_name, vault, claims, action, name)
        key = f"{vault_name}/{name}"
        if method == "GET":
            versions = self.secrets.get().get(key, {})
            version = parts[3] if len(parts) == 4 else max(
                versions, key=lambda v: versions[v]["created"], default=None)
            if version not in versions:
                raise KvError(404, "SecretNotFound",
                              f"A secret with (name/id) {name}"
                              f"{'/' + parts[3] if len(parts) == 4 else ''} was not found in "
                              "this key vault. If you recently deleted this secret you may be "
                              "able to recover it using the correct recovery command. For "
                              "help resolving this issue, please see "
                              "https://go.microsoft.com/fwlink/?linkid=2125182")
            self.log(f"getSecret {key} by oid={claims.get('oid')}")
            return self.secret_doc(vault_name, name, version, versions[version])
        try:
            value = json.loads(body or b"{}").get("value")
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str):
            raise KvError(400, "BadParameter", "Property 'value' is required.")
        version = secrets.token_hex(16)
        entry = {"value": value, "created": int(time.time() * 1000) / 1000}
        with self.lock:
            doc = dict(self.secrets.get())
            doc[key] = dict(doc.get(key, {}), **{version: entry})
            self.secrets.put(doc)
        self.log(f"setSecret {key} by oid={claims.get('oid')}")
        return self.secret_doc(vault_name, name, version, entry)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxpc-stack-keyvault"
    sys_version = ""

    def serve(self, method):
        kv = self.server.kv
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        extra = {}
        try:
            status, doc = 200, kv.handle(method, url.path, parse_qs(url.query), headers, body)
        except KvError as e:
            kv.log(f"refused {method} {url.path} {e.code}: {e.message.splitlines()[0]}")
            status = e.status
            doc = {"error": {"code": e.code, "message": e.message}}
            if e.inner:
                doc["error"]["innererror"] = e.inner
            if getattr(e, "challenge", None):
                extra["WWW-Authenticate"] = e.challenge
        except Exception as e:   # a bug here must still answer
            kv.log(f"internal error: {e!r}")
            status, doc = 500, {"error": {"code": "InternalError", "message": repr(e)}}
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("x-ms-request-id", secrets.token_hex(16))
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.serve("GET")

    def do_PUT(self):
        self.serve("PUT")

    def log_message(self, fmt, *args):
        pass


def main():
    opts = stacklib.daemon_options(__doc__, ("--cert", {"required": True}),
                                   ("--key", {"required": True}))
    kv = KeyVault(os.path.abspath(opts.dir), f"https://127.0.0.1:{opts.port}")
    kv.log(f"listening on {kv.url}")
    stacklib.serve(Handler, opts.port, "kv", kv, opts.cert, opts.key)


if __name__ == "__main__":
    main()
