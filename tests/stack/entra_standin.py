#!/usr/bin/env python3
"""A stand-in for Microsoft Entra ID's token endpoint, as Azure Workload Identity uses it.

A pod of a ServiceAccount annotated `azure.workload.identity/client-id` gets
AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST;
the Azure SDKs then POST the projected service account token (audience
api://AzureADTokenExchange) as a client assertion to
AZURE_AUTHORITY_HOST/TENANT/oauth2/v2.0/token and get an access token for a resource.
This stand-in is that AZURE_AUTHORITY_HOST, over HTTPS:

  POST /TENANT/oauth2/v2.0/token   grant_type=client_credentials, client_id,
       client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer,
       client_assertion, scope=RESOURCE/.default
     The assertion's RS256 signature is checked against its issuer's JWKS (the
     Kubernetes emulator, over HTTPS), its expiry, and the application's federated
     identity credentials (issuer, subject, audience). The answer is an access token in
     Entra's v1 format: iss https://sts.windows.net/TENANT/, aud the resource, appid,
     oid, tid; RS256-signed with this stand-in's own key; valid config.json's
     "token_lifetime" seconds. Refusals are Entra's: a JSON error with an AADSTS code.
  GET  /common/discovery/instance          instance discovery (MSAL)
  GET  /TENANT/v2.0/.well-known/openid-configuration, /TENANT/.well-known/openid-configuration
  GET  /common/discovery/keys, /TENANT/discovery/keys, /TENANT/discovery/v2.0/keys  (JWKS)

Resources: https://storage.azure.com (Blob Storage; Azurite checks the issuer's prefix
and the audience only) and https://ossrdbms-aad.database.windows.net (Azure Database
for PostgreSQL; the stack's Entra PostgreSQL front checks the signature too) and
https://vault.azure.net (Key Vault; the Key Vault stand-in checks the signature too).

DIR/config.json (written by `up`, read again when it changes, so tests can shorten the
token lifetime or change a federated credential):
  {"tenant": ID, "token_lifetime": SECONDS,
   "providers": {ISSUER: {"ca": CA-FILE}},
   "applications": {CLIENT-ID: {"name": N, "oid": PRINCIPAL-ID,
       "federated": [{"issuer": I, "subject": S, "audience": "api://AzureADTokenExchange"}]}}}
Every decision goes to DIR/access.log.

    entra_standin.py serve DIR --port P --cert C --key K

Only the Python standard library (and oidc.py beside it) is used.
"""

import datetime
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oidc  # noqa: E402
import stacklib  # noqa: E402

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# resource (the scope without /.default) -> the access token's audience
RESOURCES = {
    "https://storage.azure.com": "https://storage.azure.com",
    "https://ossrdbms-aad.database.windows.net": "https://ossrdbms-aad.database.windows.net",
    "https://vault.azure.net": "https://vault.azure.net",
}


def issuer_for(tenant):
    """The issuer of Entra's v1 access tokens (those Storage and PostgreSQL accept)."""
    return f"https://sts.windows.net/{tenant}/"


class EntraError(Exception):
    def __init__(self, status, error, code, message):
        super().__init__(message)
        self.status, self.error, self.code, self.message = status, error, code, message


class Entra:
    def __init__(self, directory, url):
        self.dir = directory
        self.url = url
        self.key = oidc.load_key(directory) if os.path.exists(
            os.path.join(directory, "oidc-key.json")) else oidc.make_key(directory)
        self.issuer_keys = oidc.IssuerKeys()
        self.conf = stacklib.JsonFile(os.path.join(directory, "config.json"))
        self.lock = threading.Lock()
        self.log_file = open(os.path.join(directory, "access.log"), "a", buffering=1)

    def log(self, line):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.lock:
            self.log_file.write(f"{now} {line}\n")

    def config(self):
        return self.conf.get()

    # ---- discovery ---------------------------------------------------------------

    def openid_configuration(self, tenant, v2):
        base = f"{self.url}/{tenant}"
        return {
            "issuer": f"{self.url}/{tenant}/v2.0" if v2 else issuer_for(tenant),
            "token_endpoint": f"{base}/oauth2/v2.0/token" if v2 else f"{base}/oauth2/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize" if v2 else
                                      f"{base}/oauth2/authorize",
            "jwks_uri": f"{base}/discovery/v2.0/keys" if v2 else f"{base}/discovery/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "private_key_jwt",
                                                      "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def instance_discovery(self, query):
        """For ?authorization_endpoint=https://HOST/TENANT/oauth2/v2.0/authorize: where
        that tenant's OpenID metadata is."""
        host = urlsplit(self.url).netloc
        endpoint = parse_qs(query).get("authorization_endpoint", [""])[0]
        tenant = (urlsplit(endpoint).path.strip("/").split("/") + [""])[0] or "common"
        return {"tenant_discovery_endpoint":
                f"{self.url}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host,
                              "aliases": [host]}]}

    # ---- the token endpoint -----------------------------------------------------------

    def token(self, tenant, form):
        def param(name):
            return form.get(name, [""])[0]
        conf = self.config()
        if tenant != conf["tenant"]:
            raise EntraError(400, "invalid_request", "AADSTS90002",
                             f"Tenant '{tenant}' not found. Check to make sure you have the "
                             f"correct tenant ID and are signing into the correct cloud.")
        if param("grant_type") != "client_credentials":
            raise EntraError(400, "unsupported_grant_type", "AADSTS70003",
                             f"The app requested an unsupported grant type "
                             f"'{param('grant_type')}'.")
        client_id = param("client_id")
        app = conf["applications"].get(client_id)
        if app is None:
            raise EntraError(400, "unauthorized_client", "AADSTS700016",
                             f"Application with identifier '{client_id}' was not found in "
                             f"the directory '{tenant}'.")
        if param("client_assertion_type") != ASSERTION_TYPE or not param("client_assertion"):
            raise EntraError(401, "invalid_client", "AADSTS7000216",
                             "'client_assertion', 'client_secret' or 'request' is required "
                             "for the 'client_credentials' grant type.")
        scopes = param("scope").split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise EntraError(400, "invalid_scope", "AADSTS1002012",
                             f"The provided value for scope {param('scope')} is not valid. "
                             f"Client credential flows must have a scope value with "
                             f"/.default suffixed to the resource identifier.")
        resource = scopes[0][:-len("/.default")].rstrip("/")
        audience = RESOURCES.get(resource)
        if audience is None:
            raise EntraError(400, "invalid_resource", "AADSTS500011",
                             f"The resource principal named {resource} was not found in the "
                             f"tenant named {tenant}.")
        claims = self.check_assertion(conf, app, param("client_assertion"))
        lifetime = int(app.get("token_lifetime", conf.get("token_lifetime", 3600)))
        now = int(time.time())
        token = oidc.sign(self.key, {
            "aud": audience, "iss": issuer_for(tenant), "iat": now, "nbf": now,
            "exp": now + lifetime, "aio": secrets.token_urlsafe(24), "appid": client_id,
            "appidacr": "2", "idp": issuer_for(tenant), "idtyp": "app", "oid": app["oid"],
            "rh": secrets.token_urlsafe(16), "sub": app["oid"], "tid": tenant,
            "uti": secrets.token_urlsafe(16), "ver": "1.0",
            "xms_mirid": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups"
                         f"/mxpc-stack/providers/Microsoft.ManagedIdentity/"
                         f"userAssignedIdentities/{app['name']}"})
        self.log(f"issued app={app['name']} client_id={client_id} resource={resource} "
                 f"sub={claims.get('sub')} lifetime={lifetime}")
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": token}

    def check_assertion(self, conf, app, assertion):
        try:
            unverified = json.loads(oidc.b64u_decode(assertion.split(".")[1]))
        except (ValueError, IndexError):
            raise EntraError(400, "invalid_client", "AADSTS50027",
                             "JWT token is invalid or malformed.")
        issuer = unverified.get("iss")
        federated = [f for f in app.get("federated", []) if f["issuer"] == issuer]
        provider = conf.get("providers", {}).get(issuer)
        if not federated or provider is None:
            raise EntraError(400, "invalid_request", "AADSTS700211",
                             f"No matching federated identity record found for presented "
                             f"assertion issuer '{issuer}'. Please check your federated "
                             f"identity credential Subject, Audience and Issuer against the "
                             f"presented assertion.")
        try:
            claims = oidc.verify(assertion, self.issuer_keys.get(issuer, provider["ca"]))
        except ValueError as e:
            if "expired" in str(e):
                raise EntraError(400, "invalid_client", "AADSTS700024",
                                 "Client assertion is not within its valid time range.")
            if "malformed" in str(e) or "not a JWT" in str(e):
                raise EntraError(400, "invalid_client", "AADSTS50027",
                                 f"JWT token is invalid or malformed ({e}).")
            raise EntraError(401, "invalid_client", "AADSTS700027",
                             f"The certificate with identifier used to sign the client "
                             f"assertion is not registered on application ({e}).")
        except OSError as e:
            raise EntraError(400, "invalid_request", "AADSTS700212",
                             f"The issuer {issuer} of the assertion does not answer: {e}")
        subject = claims.get("sub")
        federated = [f for f in federated if f["subject"] == subject]
        if not federated:
            raise EntraError(400, "invalid_request", "AADSTS700213",
                             f"No matching federated identity record found for presented "
                             f"assertion subject '{subject}'. Please check your federated "
                             f"identity credential Subject, Audience and Issuer against the "
                             f"presented assertion.")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(f.get("audience", EXCHANGE_AUDIENCE) in auds for f in federated):
            raise EntraError(400, "invalid_request", "AADSTS700212",
                             f"No matching federated identity record found for presented "
                             f"assertion audience '{','.join(map(str, auds))}'. Please check "
                             f"your federated identity credential Subject, Audience and "
                             f"Issuer against the presented assertion.")
        return claims


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxpc-stack-entra"
    sys_version = ""

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store, no-cache")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, e):
        now = datetime.datetime.now(datetime.timezone.utc)
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        self.server.entra.log(f"refused {e.code}: {e.message}")
        self.answer(e.status, {
            "error": e.error,
            "error_description": f"{e.code}: {e.message} Trace ID: {trace} Correlation ID: "
                                 f"{correlation} Timestamp: {now:%Y-%m-%d %H:%M:%SZ}",
            "error_codes": [int(e.code[len("AADSTS"):])],
            "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}", "trace_id": trace,
            "correlation_id": correlation})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode(
            "utf-8", "replace")
        parts = urlsplit(self.path).path.strip("/").split("/")
        entra = self.server.entra
        if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            return self.answer(404, {"error": "not_found", "error_description": self.path})
        try:
            self.answer(200, entra.token(parts[0], parse_qs(body, keep_blank_values=True)))
        except EntraError as e:
            self.error(e)
        except Exception as e:   # a bug here must still answer
            entra.log(f"internal error: {e!r}")
            self.answer(500, {"error": "server_error", "error_description": repr(e)})

    def do_GET(self):
        entra = self.server.entra
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        tenant = entra.config()["tenant"]
        if parts == ["common", "discovery", "instance"]:
            return self.answer(200, entra.instance_discovery(url.query))
        if parts[-2:] == [".well-known", "openid-configuration"] and len(parts) in (3, 4):
            if parts[0] not in (tenant, "common", "organizations"):
                return self.error(EntraError(400, "invalid_tenant", "AADSTS90002",
                                             f"Tenant '{parts[0]}' not found."))
            return self.answer(200, entra.openid_configuration(
                tenant, v2=len(parts) == 4 and parts[1] == "v2.0"))
        if parts[-1] == "keys" and "discovery" in parts:
            return self.answer(200, oidc.jwks(entra.key))
        if parts == [""]:
            return self.answer(200, {"service": "mxpc-stack Entra ID stand-in"})
        self.answer(404, {"error": "not_found", "error_description": self.path})

    def log_message(self, fmt, *args):
        pass


def main():
    opts = stacklib.daemon_options(__doc__, ("--cert", {"required": True}),
                                   ("--key", {"required": True}))
    directory = os.path.abspath(opts.dir)
    entra = Entra(directory, f"https://127.0.0.1:{opts.port}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(opts.cert, opts.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.entra = entra
    entra.log(f"listening on {entra.url}")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
