#!/usr/bin/python3
"""The Azure part of the stack, checked with Microsoft's own clients from Debian's
packages (python3-azure: azure-identity, msal, azure-storage-blob; azure-cli's `az`):

  - the Entra ID stand-in: discovery as MSAL does it, Workload Identity token exchange
    with azure-identity (ManagedIdentityCredential / DefaultAzureCredential with
    AZURE_FEDERATED_TOKEN_FILE, and WorkloadIdentityCredential where the installed
    azure-identity has it) and with MSAL; the tokens' claims; Entra's refusals (wrong
    service account, audience, expired or forged assertion, unknown client, resource);
  - Azurite over https: upload, list, download, delete with a Workload Identity token and
    with the account key (azure-storage-blob, and `az storage blob`); what its OAuth
    check refuses (expired token, foreign issuer or audience) and what it does not
    (the signature); an expiring token refreshed by the SDK; stacklib's Shared Key
    signer agrees;
  - the Azure RBAC front of Azurite: a Storage Blob Data Reader downloads and lists but
    its upload, delete and block list get Azure's 403 AuthorizationPermissionMismatch
    (headers and XML body as Azure's), a Contributor writes (blocks and their list),
    an identity without a role is refused a listing, a forged token is refused,
    Shared Key passes untouched;
  - the Entra PostgreSQL front: psql logs in with an Entra token for
    ossrdbms-aad as demo-azure-wi's identity; a Storage token, another identity's,
    an expired one, garbage and a connection without TLS are refused.

Runs with Debian's /usr/bin/python3 (where python3-azure lives); needs a seeded stack.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import ssl
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import oidc  # noqa: E402
from stacklib import (AzureBlob, AzureError, Checks, conninfo, psql,  # noqa: E402
                      stack_env_or_fail)

t = Checks()
env = stack_env_or_fail(t)
for var in ("MXPC_AZURE_BLOB_ENDPOINT", "MXPC_AZURE_AUTHORITY_HOST", "MXPC_ENTRA_PG_PORT"):
    if var not in env:
        t.abort(f"the stack's env.sh has {var} (a stack started before Azure was added?)")
try:
    import azure.identity
    import msal
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.storage.blob import BlobServiceClient
except ImportError as e:
    t.abort(f"the Azure SDK for Python is installed (Debian package python3-azure): {e}")

ENDPOINT = env["MXPC_AZURE_BLOB_ENDPOINT"]
ACCOUNT, KEY = env["MXPC_AZURE_ACCOUNT_NAME"], env["MXPC_AZURE_ACCOUNT_KEY"]
AUTHORITY = env["MXPC_AZURE_AUTHORITY_HOST"]
TENANT = env["MXPC_AZURE_TENANT_ID"]
STORAGE = "https://storage.azure.com/.default"
OSSRDBMS = "https://ossrdbms-aad.database.windows.net/.default"
K8S_DIR = os.path.dirname(env["MXPC_K8S_STATE_FILE"])
CONFIG = os.path.join(env["MXPC_ENTRA_DIR"], "config.json")
CONTAINER = f"stacktest-{os.getpid()}"
work = tempfile.mkdtemp()

# Every Azure client here trusts the stack's CAs the way requests does.
os.environ["REQUESTS_CA_BUNDLE"] = env["MXPC_AZURE_CA_BUNDLE"]
os.environ["AZURE_CORE_COLLECT_TELEMETRY"] = "false"
os.environ["AZURE_CONFIG_DIR"] = os.path.join(work, "az")
for name in ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME",
             "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
    os.environ.pop(name, None)


def sa_token(sa, aud="api://AzureADTokenExchange", lifetime=3600):
    """A projected service account token from the Kubernetes emulator's issuer."""
    return subprocess.run([sys.executable, os.path.join(HERE, "k8s_emulator.py"), "token",
                           K8S_DIR, "--sa", sa, "--aud", aud, "--lifetime", str(lifetime)],
                          check=True, capture_output=True, text=True).stdout.strip()


def token_file(name, token):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(token)
    return path


def workload_identity(client_id, federated_file):
    """The variables the Workload Identity webhook injects into a pod."""
    os.environ.update(AZURE_CLIENT_ID=client_id, AZURE_TENANT_ID=TENANT,
                      AZURE_FEDERATED_TOKEN_FILE=federated_file,
                      AZURE_AUTHORITY_HOST=AUTHORITY)


def claims(token):
    return json.loads(oidc.b64u_decode(token.split(".")[1]))


def entra_post(form, tenant=TENANT):
    """POST to the token endpoint; (status, JSON answer)."""
    req = urllib.request.Request(f"{AUTHORITY}/{tenant}/oauth2/v2.0/token",
                                 urllib.parse.urlencode(form).encode())
    context = ssl.create_default_context(cafile=env["MXPC_ENTRA_CA"])
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def exchange(assertion, client_id=env["MXPC_AZURE_CLIENT_ID"], scope=STORAGE):
    return entra_post({"grant_type": "client_credentials", "client_id": client_id,
                       "client_assertion_type":
                           "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                       "client_assertion": assertion, "scope": scope})


def set_lifetime(seconds):
    with open(CONFIG) as f:
        conf = json.load(f)
    conf["token_lifetime"] = seconds
    with open(CONFIG + ".tmp", "w") as f:
        json.dump(conf, f)
    os.replace(CONFIG + ".tmp", CONFIG)


# ---- the Entra ID stand-in: discovery, as MSAL does it
ctx = ssl.create_default_context(cafile=env["MXPC_ENTRA_CA"])
with urllib.request.urlopen(f"{AUTHORITY}/{TENANT}/v2.0/.well-known/openid-configuration",
                            context=ctx) as r:
    conf = json.load(r)
t.check("openid-configuration names the token endpoint",
        conf["token_endpoint"] == f"{AUTHORITY}/{TENANT}/oauth2/v2.0/token", conf)
with urllib.request.urlopen(f"{AUTHORITY}/{TENANT}/.well-known/openid-configuration",
                            context=ctx) as r:
    v1 = json.load(r)
t.check("v1 metadata: issuer https://sts.windows.net/TENANT/ (that of access tokens)",
        v1["issuer"] == f"https://sts.windows.net/{TENANT}/", v1.get("issuer"))

# ---- Workload Identity with azure-identity
jump_token = env["MXPC_AZURE_FEDERATED_TOKEN_FILE"]
workload_identity(env["MXPC_AZURE_CLIENT_ID"], jump_token)
try:
    credential = azure.identity.ManagedIdentityCredential()
    tok = credential.get_token(STORAGE)
    c = claims(tok.token)
    t.check("ManagedIdentityCredential exchanges the federated token (AZURE_FEDERATED_TOKEN_FILE)",
            c["aud"] == "https://storage.azure.com" and c["appid"] == env["MXPC_AZURE_CLIENT_ID"]
            and c["iss"] == f"https://sts.windows.net/{TENANT}/" and c["tid"] == TENANT
            and c["oid"] == env["MXPC_AZURE_PRINCIPAL_ID"], c)
    t.check("... the token expires in the configured hour",
            3500 < tok.expires_on - time.time() <= 3600 and c["exp"] - c["iat"] == 3600,
            tok.expires_on - time.time())
except ClientAuthenticationError as e:
    t.check("ManagedIdentityCredential exchanges the federated token", False, str(e)[:300])
    credential = None
try:
    default_tok = azure.identity.DefaultAzureCredential(
        exclude_shared_token_cache_credential=True, exclude_visual_studio_code_credential=True,
        exclude_cli_credential=True, exclude_powershell_credential=True).get_token(STORAGE)
    t.check("DefaultAzureCredential (Mendix's use-default-azure-credential) gets one too",
            claims(default_tok.token)["appid"] == env["MXPC_AZURE_CLIENT_ID"])
except ClientAuthenticationError as e:
    t.check("DefaultAzureCredential gets a token", False, str(e)[:300])
if hasattr(azure.identity, "WorkloadIdentityCredential"):
    wi_tok = azure.identity.WorkloadIdentityCredential().get_token(STORAGE)
    t.check("WorkloadIdentityCredential gets a token", claims(wi_tok.token)["tid"] == TENANT)
else:
    print(f"# azure-identity {azure.identity.__version__} has no WorkloadIdentityCredential "
          "(1.13.0b4 and later); ManagedIdentityCredential is its Workload Identity path")

# ---- MSAL, with instance discovery and tenant discovery against the stand-in
app = msal.ConfidentialClientApplication(
    env["MXPC_AZURE_CLIENT_ID"], authority=f"{AUTHORITY}/{TENANT}",
    client_credential={"client_assertion": open(jump_token).read()},
    instance_discovery=f"{AUTHORITY}/common/discovery/instance")
result = app.acquire_token_for_client(scopes=[OSSRDBMS])
t.check("MSAL: discovery, then a token for ossrdbms-aad with the client assertion",
        "access_token" in result and
        claims(result["access_token"])["aud"] == "https://ossrdbms-aad.database.windows.net",
        {k: v for k, v in result.items() if k != "access_token"})

# ---- Entra's refusals
status, doc = exchange(sa_token("nobody"))
t.check("a service account without a federated credential: AADSTS700213 (subject)",
        status == 400 and "AADSTS700213" in doc.get("error_description", ""), doc)
status, doc = exchange(sa_token("mendix-backup-restore", aud="sts.amazonaws.com"))
t.check("a token for another audience: AADSTS700212",
        status == 400 and "AADSTS700212" in doc.get("error_description", ""), doc)
status, doc = exchange(sa_token("mendix-backup-restore", lifetime=-10))
t.check("an expired service account token: AADSTS700024",
        status == 400 and "AADSTS700024" in doc.get("error_description", ""), doc)
good = sa_token("mendix-backup-restore").split(".")
forged_claims = dict(json.loads(oidc.b64u_decode(good[1])), sub="system:serviceaccount:x:y")
forged = ".".join([good[0], oidc.b64u(json.dumps(forged_claims).encode()), good[2]])
status, doc = exchange(forged)
t.check("a service account token whose signature does not verify: refused (AADSTS700027)",
        status == 401 and "AADSTS700027" in doc.get("error_description", ""), doc)
status, doc = exchange(sa_token("mendix-backup-restore") + "\n")
t.check("a token file with a trailing newline is a malformed JWT: AADSTS50027",
        status == 400 and "AADSTS50027" in doc.get("error_description", ""), doc)
status, doc = exchange(sa_token("mendix-backup-restore"), client_id=str(uuid.uuid4()))
t.check("an unknown client id: AADSTS700016",
        status == 400 and "AADSTS700016" in doc.get("error_description", ""), doc)
status, doc = exchange(sa_token("mendix-backup-restore"),
                       scope="https://management.azure.com/.default")
t.check("a resource the stand-in does not know: AADSTS500011",
        status == 400 and "AADSTS500011" in doc.get("error_description", ""), doc)
status, doc = exchange(sa_token("mendix-backup-restore"), scope="https://storage.azure.com/user")
t.check("a scope without /.default: invalid_scope", status == 400 and
        doc.get("error") == "invalid_scope", doc)
workload_identity(env["MXPC_AZURE_CLIENT_ID"], token_file("wrong-sa", sa_token("nobody")))
try:
    azure.identity.ManagedIdentityCredential().get_token(STORAGE)
    t.check("azure-identity reports Entra's refusal", False, "got a token")
except ClientAuthenticationError as e:
    t.check("azure-identity reports Entra's refusal with its AADSTS code", "AADSTS700213" in str(e),
            str(e)[:300])

# ---- Azurite with the Workload Identity token
workload_identity(env["MXPC_AZURE_CLIENT_ID"], jump_token)
payload = os.urandom(3 * 1024 * 1024 + 17)
if credential:
    svc = BlobServiceClient(ENDPOINT, credential=credential)
    try:
        container = svc.create_container(CONTAINER)
        container.upload_blob("wi/ümlaut blob+1", payload)
        names = [b.name for b in container.list_blobs(name_starts_with="wi/")]
        got = container.download_blob("wi/ümlaut blob+1").readall()
        container.delete_blob("wi/ümlaut blob+1")
        left = [b.name for b in container.list_blobs(name_starts_with="wi/")]
        t.check("Azurite over https with a Workload Identity token: upload, list, download, "
                "delete", names == ["wi/ümlaut blob+1"] and got == payload and left == [],
                (names, len(got), left))
    except HttpResponseError as e:
        t.check("Azurite with a Workload Identity token", False, str(e)[:300])

# ---- Azurite with the account key
key_svc = BlobServiceClient(ENDPOINT, credential={"account_name": ACCOUNT, "account_key": KEY})
key_container = key_svc.get_container_client(CONTAINER)
if not credential:
    key_container.create_container()
key_container.upload_blob("key/a b.bin", payload[:1000])
t.check("Azurite with the account key (Shared Key): upload and list",
        [b.name for b in key_container.list_blobs(name_starts_with="key/")] == ["key/a b.bin"])
t.check("... download a range", key_container.download_blob("key/a b.bin", offset=10,
                                                            length=20).readall() == payload[10:30])
bad = BlobServiceClient(ENDPOINT, credential={"account_name": ACCOUNT,
                                              "account_key": base64.b64encode(b"x" * 64).decode()})
try:
    list(bad.get_container_client(CONTAINER).list_blobs())
    t.check("a wrong account key is refused", False, "listed")
except HttpResponseError as e:
    # Azure answers 403 AuthenticationFailed; Azurite with --oauth tries the token check
    # after the Shared Key one and answers 400 InvalidAuthenticationInfo
    t.check("a wrong account key is refused (Azurite with OAuth: 400 InvalidAuthenticationInfo)",
            e.status_code == 400 and e.error_code == "InvalidAuthenticationInfo",
            (e.status_code, e.error_code))

# stacklib's own Shared Key signer (the seed's) against the SDK, both ways
ours = AzureBlob(ENDPOINT, ACCOUNT, KEY, env["MXPC_AZURE_CA"])
ours.put(CONTAINER, "stacklib/x y+ü%.bin", b"from stacklib")
t.check("stacklib's Shared Key signer: what it writes the SDK reads",
        key_container.download_blob("stacklib/x y+ü%.bin").readall() == b"from stacklib")
t.check("... and it lists what the SDK wrote", ours.list(CONTAINER, "key/") == {"key/a b.bin": 1000})

# ---- Azure RBAC: the front of Azurite checks the token and the identity's role
RBAC = env["MXPC_AZURE_RBAC_ENDPOINT"]
workload_identity(env["MXPC_AZURE_READER_CLIENT_ID"],
                  token_file("demo-azure-reader", sa_token("demo-azure-reader")))
reader = BlobServiceClient(RBAC, credential=azure.identity.ManagedIdentityCredential(),
                           max_single_put_size=256 * 1024, max_block_size=256 * 1024
                           ).get_container_client(CONTAINER)


def refusal(call):
    """The HttpResponseError of call(), or None when it succeeds."""
    try:
        call()
        return None
    except HttpResponseError as e:
        return e


try:
    t.check("Storage Blob Data Reader downloads through the RBAC front",
            reader.download_blob("key/a b.bin").readall() == payload[:1000])
    t.check("... and lists", [b.name for b in reader.list_blobs(name_starts_with="key/")] ==
            ["key/a b.bin"])
except HttpResponseError as e:
    t.check("Storage Blob Data Reader downloads and lists", False, str(e)[:300])
e = refusal(lambda: reader.upload_blob("rbac/reader.bin", b"not allowed"))
t.check("... its upload: HttpResponseError, 403 AuthorizationPermissionMismatch",
        e is not None and e.status_code == 403 and
        e.error_code == "AuthorizationPermissionMismatch", e and (e.status_code, e.error_code))
if e is not None:
    body = e.response.text()
    t.check("... as Azure answers: x-ms-error-code, x-ms-request-id, the XML <Error> whose "
            "Message names the permission, the request id and the time",
            e.response.headers.get("x-ms-error-code") == "AuthorizationPermissionMismatch" and
            e.response.headers.get("x-ms-request-id") and
            "<Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not "
            "authorized to perform this operation using this permission.\nRequestId:" in body
            and "\nTime:" in body and e.response.headers.get("Content-Type") == "application/xml",
            (dict(e.response.headers), body[:300]))
e = refusal(lambda: reader.upload_blob("rbac/reader-blocks.bin", payload))
t.check("... a block upload (Put Block) is refused too",
        e is not None and e.error_code == "AuthorizationPermissionMismatch", e and e.error_code)
key_container.get_blob_client("rbac/staged.bin").stage_block("block-1", b"staged with the key")
e = refusal(lambda: reader.get_blob_client("rbac/staged.bin").commit_block_list(["block-1"]))
t.check("... and Put Block List of blocks staged with the key",
        e is not None and e.error_code == "AuthorizationPermissionMismatch", e and e.error_code)
e = refusal(lambda: reader.delete_blob("key/a b.bin"))
t.check("... and a delete", e is not None and e.error_code == "AuthorizationPermissionMismatch",
        e and e.error_code)
listed = sorted(b.name for b in key_container.list_blobs())
t.check("... none of them wrote or deleted a blob",
        "key/a b.bin" in listed and not any(n.startswith("rbac/") for n in listed), listed)
workload_identity(env["MXPC_AZURE_CLIENT_ID"], jump_token)
writer = BlobServiceClient(RBAC, credential=azure.identity.ManagedIdentityCredential(),
                           max_single_put_size=256 * 1024, max_block_size=256 * 1024
                           ).get_container_client(CONTAINER)
try:
    writer.upload_blob("rbac/contributor.bin", payload)
    t.check("Storage Blob Data Contributor uploads blocks and their list through the front, "
            "streamed both ways", writer.download_blob("rbac/contributor.bin").readall() ==
            payload and key_container.download_blob("rbac/contributor.bin").readall() == payload)
    writer.delete_blob("rbac/contributor.bin")
except HttpResponseError as e:
    t.check("Storage Blob Data Contributor writes through the front", False, str(e)[:300])
workload_identity(env["MXPC_AZURE_KV_CLIENT_ID"], token_file("demo-kv", sa_token("demo-kv")))
nobody = BlobServiceClient(RBAC, credential=azure.identity.ManagedIdentityCredential()
                           ).get_container_client(CONTAINER)
e = refusal(lambda: list(nobody.list_blobs()))
t.check("an identity without a role on the account is refused a listing "
        "(AuthorizationPermissionMismatch)",
        e is not None and e.status_code == 403 and
        e.error_code == "AuthorizationPermissionMismatch", e and (e.status_code, e.error_code))
e = refusal(lambda: nobody.get_blob_client("key/a b.bin").get_blob_properties())
t.check("... and a HEAD (no body: the code in x-ms-error-code)",
        e is not None and e.status_code == 403 and
        e.error_code == "AuthorizationPermissionMismatch", e and (e.status_code, e.error_code))
rbac_key = BlobServiceClient(RBAC, credential={"account_name": ACCOUNT, "account_key": KEY})
t.check("Shared Key passes the front untouched (RBAC governs tokens only)",
        rbac_key.get_container_client(CONTAINER).download_blob("key/a b.bin").readall() ==
        payload[:1000])

# ---- what Azurite's OAuth check looks at (--oauth basic)
def bearer_status(token):
    try:
        AzureBlob(ENDPOINT, ACCOUNT, ca_file=env["MXPC_AZURE_CA"], token=token).list(CONTAINER)
        return 200, ""
    except AzureError as e:
        return e.status, e.code


now = int(time.time())
base_claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{TENANT}/",
               "iat": now, "nbf": now, "exp": now + 600}
entra_key = oidc.load_key(env["MXPC_ENTRA_DIR"])
t.check("Azurite refuses an expired token (403 AuthenticationFailed)",
        bearer_status(oidc.sign(entra_key, dict(base_claims, exp=now - 5))) ==
        (403, "AuthenticationFailed"))
t.check("Azurite refuses an issuer outside Entra's (https://sts.windows.net/...)",
        bearer_status(oidc.sign(entra_key, dict(base_claims, iss=AUTHORITY + "/"))) ==
        (403, "AuthenticationFailed"))
t.check("Azurite refuses a token for another audience",
        bearer_status(oidc.sign(entra_key, dict(base_claims,
                                                aud="https://vault.azure.net"))) ==
        (403, "AuthenticationFailed"))
# another key under the stand-in's key id: only the signature gives it away
other_key = dict(oidc.make_key(work), kid=entra_key["kid"])
t.check("known limit: Azurite does not check the signature (a token signed by any key passes)",
        bearer_status(oidc.sign(other_key, base_claims)) == (200, ""))
try:
    AzureBlob(RBAC, ACCOUNT, ca_file=env["MXPC_AZURE_CA"],
              token=oidc.sign(other_key, dict(base_claims, oid=env["MXPC_AZURE_PRINCIPAL_ID"]))
              ).list(CONTAINER)
    forged_status = (200, "")
except AzureError as e:
    forged_status = (e.status, e.code)
t.check("... the RBAC front does: 403 AuthenticationFailed", forged_status ==
        (403, "AuthenticationFailed"), forged_status)

# ---- an expiring token: Azurite refuses it, the SDK's credential gets a new one
set_lifetime(3)
try:
    workload_identity(env["MXPC_AZURE_CLIENT_ID"], jump_token)
    short = azure.identity.ManagedIdentityCredential()
    first = short.get_token(STORAGE)
    t.check("a short token lifetime is honoured", claims(first.token)["exp"] -
            claims(first.token)["iat"] == 3)
    time.sleep(4)
    t.check("... Azurite refuses the token once it has expired",
            bearer_status(first.token) == (403, "AuthenticationFailed"))
    second = short.get_token(STORAGE)
    t.check("... the credential gets a new one, which works",
            second.token != first.token and bearer_status(second.token) == (200, ""))
finally:
    set_lifetime(3600)

# ---- az storage blob (azure-cli) with the account key
az = shutil.which("az")
if not az:
    t.check("az is installed (Debian package azure-cli)", False)
else:
    conn = (f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={ENDPOINT};")
    src = token_file("az-upload.bin", "uploaded by az\n")
    up = subprocess.run([az, "storage", "blob", "upload", "--connection-string", conn,
                         "--container-name", CONTAINER, "--name", "az/file.txt", "--file", src,
                         "--only-show-errors"], capture_output=True, text=True)
    t.check("az storage blob upload", up.returncode == 0, up.stderr.strip()[-300:])
    ls = subprocess.run([az, "storage", "blob", "list", "--connection-string", conn,
                         "--container-name", CONTAINER, "--prefix", "az/", "--output", "json",
                         "--only-show-errors"], capture_output=True, text=True)
    try:
        listed = [b["name"] for b in json.loads(ls.stdout)]
    except ValueError:
        listed = None
    t.check("az storage blob list", ls.returncode == 0 and listed == ["az/file.txt"],
            ls.stderr.strip()[-300:])
    t.check("... and the SDK reads what az wrote",
            key_container.download_blob("az/file.txt").readall() == b"uploaded by az\n")

# ---- PostgreSQL with Entra tokens
ENTRA_PG = int(env["MXPC_ENTRA_PG_PORT"])
USERS = os.path.join(env["MXPC_ENTRA_PG_DIR"], "users.json")
with open(USERS) as f:
    if "demo_azure_wi" not in json.load(f):
        t.abort("the stack is seeded (tests/stack/seed): demo_azure_wi is in the Entra "
                "front's users.json")
wi_file = token_file("demo-azure-wi", sa_token("demo-azure-wi"))
workload_identity(env["MXPC_AZURE_WI_CLIENT_ID"], wi_file)
db_token = azure.identity.ManagedIdentityCredential().get_token(OSSRDBMS).token


def login(password, sslmode="require"):
    info = conninfo(host="127.0.0.1", port=ENTRA_PG, dbname="demo_azure_wi",
                    user="demo_azure_wi", sslmode=sslmode)
    return psql(env, info, 'SELECT count(*) FROM "system$filedocument";', password, check=False)


proc = login(db_token)
t.check("psql logs in with demo-azure-wi's Entra token as the password (sslmode=require)",
        proc.returncode == 0 and proc.stdout.strip().isdigit(), proc.stderr.strip()[-300:])
proc = login(credential.get_token(OSSRDBMS).token if credential else "x")
t.check("another identity's token (not mapped to the role) is refused",
        proc.returncode != 0 and 'password authentication failed for user "demo_azure_wi"'
        in proc.stderr, proc.stderr.strip()[-300:])
workload_identity(env["MXPC_AZURE_WI_CLIENT_ID"], wi_file)
storage_token = azure.identity.ManagedIdentityCredential().get_token(STORAGE).token
proc = login(storage_token)
t.check("a token for Storage is refused", proc.returncode != 0, proc.stderr.strip()[-300:])
wi_claims = claims(db_token)
forged = oidc.sign(other_key, dict(wi_claims, exp=int(time.time()) + 600))
proc = login(forged)
t.check("a token signed by another key is refused", proc.returncode != 0)
expired = oidc.sign(entra_key, dict(wi_claims, exp=int(time.time()) - 5))
proc = login(expired)
t.check("an expired token is refused", proc.returncode != 0)
proc = login("not a token")
t.check("a password that is no token is refused", proc.returncode != 0)
proc = login(db_token, sslmode="disable")
t.check("without TLS the front refuses (pg_hba: no encryption)", proc.returncode != 0 and
        "no encryption" in proc.stderr, proc.stderr.strip()[-300:])
with open(os.path.join(env["MXPC_ENTRA_PG_DIR"], "access.log")) as f:
    log = f.read()
t.check("the front's log says why (mapped principal, audience, signature, expiry)",
        all(s in log for s in ("the role demo_azure_wi for", "not https://ossrdbms-aad",
                               "the signature does not verify", "the token has expired")))
t.check("... and never holds a token", db_token not in log and db_token[:40] not in log)

# ---- clean up
key_svc.delete_container(CONTAINER)
t.check("the test container is removed", CONTAINER not in ours.list_containers())
shutil.rmtree(work, ignore_errors=True)
t.finish()
