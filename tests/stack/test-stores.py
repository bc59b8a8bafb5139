#!/usr/bin/python3
"""The secret-store part of the stack, checked with the real clients from Debian's
packages: python3-botocore (Secrets Manager), python3-hvac (Vault), azure-keyvault-secrets
and azure-identity from python3-azure (Key Vault); and what the Kubernetes emulator adds
for them: TokenRequest (audiences, expirationSeconds, `create serviceaccounts/token`
with resourceNames) and SecretProviderClass objects (strict validation).

Runs with Debian's /usr/bin/python3; needs a seeded stack (demo-sm, demo-vault, demo-kv).
"""

import json
import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oidc  # noqa: E402
import stacklib  # noqa: E402

t = stacklib.Checks()
env = stacklib.stack_env_or_fail(t)
with open(os.path.join(env["MXPC_STACK_DIR"], "seed.json")) as f:
    seed = json.load(f)["store_environments"]
admin = stacklib.K8s(env["MXPC_K8S_URL"], env["MXPC_K8S_CA"], token=env["MXPC_K8S_ADMIN_TOKEN"])
NS = "mendix"


def token_request(client, sa, audiences=None, seconds=None):
    spec = {}
    if audiences:
        spec["audiences"] = audiences
    if seconds:
        spec["expirationSeconds"] = seconds
    return client.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token",
                          {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                           "spec": spec})


def claims(token):
    return json.loads(oidc.b64u_decode(token.split(".")[1]))


# ---- Kubernetes: TokenRequest and SecretProviderClass --------------------------------

code, tr = token_request(admin, "demo-vault", ["vault"], 600)
c = claims(tr["status"]["token"]) if code == 201 else {}
t.check("TokenRequest: a JWT for the asked audience, lifetime and service account",
        code == 201 and c.get("aud") == ["vault"] and c.get("exp") - c.get("iat") == 600 and
        c.get("sub") == "system:serviceaccount:mendix:demo-vault", (code, c))
code, tr = token_request(admin, "demo-vault", ["vault"], 60)
t.check("TokenRequest: expirationSeconds below 10 minutes is invalid (422)", code == 422, tr)
code, tr = token_request(admin, "no-such-sa")
t.check("TokenRequest for a missing ServiceAccount: 404", code == 404, tr)
restricted = stacklib.K8s(env["MXPC_K8S_URL"], env["MXPC_K8S_CA"],
                          token=env["MXPC_K8S_RESTRICTED_TOKEN"])
code, tr = token_request(restricted, "demo-vault")
t.check("TokenRequest without create on serviceaccounts/token: 403 naming it",
        code == 403 and "serviceaccounts/token" in tr.get("message", ""), tr)
role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "test-stores-token"},
        "rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                   "verbs": ["create"], "resourceNames": ["demo-vault"]}]}
binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "test-stores-token"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                       "name": "test-stores-token"},
           "subjects": [{"kind": "User", "name": "mendix-backup-restore"}]}
admin.call("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles", role)
admin.call("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", binding)
try:
    code, tr = token_request(restricted, "demo-vault", ["vault"])
    t.check("a Role with resourceNames [demo-vault] allows that ServiceAccount's token",
            code == 201, tr)
    code, tr = token_request(restricted, "demo-sm", ["sts.amazonaws.com"])
    t.check("... and no other's (403)", code == 403, tr)
finally:
    admin.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings/"
                            "test-stores-token")
    admin.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/"
                            "test-stores-token")

spc_path = f"/apis/secrets-store.csi.x-k8s.io/v1/namespaces/{NS}/secretproviderclasses"
code, spc = admin.request("GET", spc_path + "/demo-vault")
t.check("the seed's SecretProviderClass demo-vault: vault provider, annotated",
        code == 200 and spc["spec"]["provider"] == "vault" and
        spc["metadata"]["annotations"].get("privatecloud.mendix.com/environment-class") == "true",
        spc)
for what, spec, want in (
        ("an unknown field", {"provider": "vault", "parameter": {}}, 'unknown field "spec.parameter"'),
        ("a parameter that is not a string", {"provider": "vault", "parameters": {"x": 1}},
         "a map of strings"),
        ("an unknown provider", {"provider": "keepass", "parameters": {}}, "spec.provider")):
    code, st = admin.request("POST", spc_path, {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": "bad"}, "spec": spec})
    t.check(f"a SecretProviderClass with {what} is refused", code in (400, 422) and
            want in st.get("message", ""), (code, st))

# ---- Secrets Manager with botocore ----------------------------------------------------

import botocore.session  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402


def sm_client(key, secret, token=None):
    session = botocore.session.get_session()
    return session.create_client("secretsmanager", region_name="us-east-1",
                                 endpoint_url=env["MXPC_SM_ENDPOINT"], aws_access_key_id=key,
                                 aws_secret_access_key=secret, aws_session_token=token)


def sm_error(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


name = env["MXPC_SM_SECRET_NAME"]
sm = sm_client(env["MXPC_SM_ACCESS_KEY"], env["MXPC_SM_SECRET_KEY"])
value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
t.check("botocore GetSecretValue: the seed's JSON secret",
        value.get("database-name") == "demo_sm" and "mx-admin-password" in value)
desc = sm.describe_secret(SecretId=name)
t.check("botocore DescribeSecret by name and GetSecretValue by ARN",
        desc["Name"] == name and
        json.loads(sm.get_secret_value(SecretId=desc["ARN"])["SecretString"]) == value)
t.check("an unknown secret: ResourceNotFoundException",
        sm_error(lambda: sm.get_secret_value(SecretId="mendix/nothing")) ==
        "ResourceNotFoundException")
nothing = sm_client(env["MXPC_SM_NOTHING_ACCESS_KEY"], env["MXPC_SM_NOTHING_SECRET_KEY"])
t.check("a user without a policy: AccessDeniedException",
        sm_error(lambda: nothing.get_secret_value(SecretId=name)) == "AccessDeniedException")
bad = sm_client(env["MXPC_SM_ACCESS_KEY"], "wrong" + env["MXPC_SM_SECRET_KEY"])
t.check("a wrong secret key: InvalidSignatureException",
        sm_error(lambda: bad.get_secret_value(SecretId=name)) == "InvalidSignatureException")
unknown = sm_client("AKIANOTAKEY000000000", "x")
t.check("an unknown access key: UnrecognizedClientException",
        sm_error(lambda: unknown.get_secret_value(SecretId=name)) == "UnrecognizedClientException")

# demo-sm's own role, through STS with its ServiceAccount's token (what the tool does)
sts = botocore.session.get_session().create_client(
    "sts", region_name="us-east-1", endpoint_url=env["MXPC_STS_ENDPOINT"],
    aws_access_key_id="x", aws_secret_access_key="x")
_, tr = token_request(admin, "demo-sm", ["sts.amazonaws.com"])
creds = sts.assume_role_with_web_identity(
    RoleArn=env["MXPC_SM_ROLE_ARN"], RoleSessionName="test-stores",
    WebIdentityToken=tr["status"]["token"])["Credentials"]
role_sm = sm_client(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
t.check("demo-sm's role (web identity of its ServiceAccount) reads the secret",
        json.loads(role_sm.get_secret_value(SecretId=name)["SecretString"]) == value)
no_token = sm_client(creds["AccessKeyId"], creds["SecretAccessKey"], "forged")
t.check("temporary keys with another session token: UnrecognizedClientException",
        sm_error(lambda: no_token.get_secret_value(SecretId=name)) ==
        "UnrecognizedClientException")

# ---- Vault with hvac ----------------------------------------------------------------

import hvac  # noqa: E402
import hvac.exceptions  # noqa: E402

vault = hvac.Client(url=env["MXPC_VAULT_ADDR"], verify=env["MXPC_VAULT_CA"])
_, tr = token_request(admin, "demo-vault", ["vault"])
login = vault.auth.kubernetes.login("demo-vault", tr["status"]["token"])
t.check("hvac Kubernetes login as demo-vault: a token with its policy",
        "demo-vault" in login["auth"]["policies"] and vault.is_authenticated())
data = vault.secrets.kv.v2.read_secret_version(path="demo-vault", mount_point="secret")
t.check("hvac KV v2 read of secret/data/demo-vault",
        data["data"]["data"].get("database-name") == "demo_vault" and
        data["data"]["metadata"]["version"] >= 1)
try:
    vault.secrets.kv.v2.create_or_update_secret(path="demo-vault", secret={"x": "y"},
                                                mount_point="secret")
    t.check("the role's policy does not allow writing", False)
except hvac.exceptions.Forbidden:
    t.check("the role's policy does not allow writing", True)


def vault_refusal(call):
    try:
        call()
    except hvac.exceptions.VaultError as e:
        return type(e).__name__, str(e)
    return None, ""


other = hvac.Client(url=env["MXPC_VAULT_ADDR"], verify=env["MXPC_VAULT_CA"])
kind, msg = vault_refusal(lambda: other.auth.kubernetes.login("demo-app", tr["status"]["token"]))
t.check("a role bound to another ServiceAccount: Forbidden, service account name not authorized",
        kind == "Forbidden" and "service account name not authorized" in msg, (kind, msg))
_, tr2 = token_request(admin, "demo-vault", ["sts.amazonaws.com"])
kind, msg = vault_refusal(lambda: other.auth.kubernetes.login("demo-vault", tr2["status"]["token"]))
t.check("a token for another audience: refused", kind == "Forbidden", (kind, msg))
kind, msg = vault_refusal(lambda: other.auth.kubernetes.login("nope", tr["status"]["token"]))
t.check("an unknown role: InvalidRequest", kind == "InvalidRequest" and "invalid role" in msg,
        (kind, msg))
expired = stacklib.subprocess.run(
    [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_emulator.py"),
     "token", os.path.join(env["MXPC_STACK_DIR"], "k8s"), "--sa", "demo-vault", "--aud",
     "vault", "--lifetime", "-10"], capture_output=True, text=True).stdout.strip()
kind, msg = vault_refusal(lambda: other.auth.kubernetes.login("demo-vault", expired))
t.check("an expired service account token: Forbidden", kind == "Forbidden", (kind, msg))
nothing = hvac.Client(url=env["MXPC_VAULT_ADDR"], verify=env["MXPC_VAULT_CA"],
                      token=env["MXPC_VAULT_NOTHING_TOKEN"])
kind, msg = vault_refusal(lambda: nothing.secrets.kv.v2.read_secret_version(
    path="demo-vault", mount_point="secret"))
t.check("a token whose policies do not cover the path: Forbidden", kind == "Forbidden",
        (kind, msg))
tool = hvac.Client(url=env["MXPC_VAULT_ADDR"], verify=env["MXPC_VAULT_CA"],
                   token=env["MXPC_VAULT_TOOL_TOKEN"])
t.check("the tool's own token reads it",
        tool.secrets.kv.v2.read_secret_version(path="demo-vault", mount_point="secret")
        ["data"]["data"] == data["data"]["data"])

# ---- Key Vault with azure-keyvault-secrets -----------------------------------------------

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError  # noqa: E402
from azure.identity import ManagedIdentityCredential  # noqa: E402
from azure.keyvault.secrets import SecretClient  # noqa: E402

os.environ["REQUESTS_CA_BUNDLE"] = env["MXPC_AZURE_CA_BUNDLE"]


def workload_identity(client_id, token_file):
    """Workload Identity as azure-identity does it in a pod: the webhook's variables."""
    os.environ.update(AZURE_CLIENT_ID=client_id, AZURE_TENANT_ID=env["MXPC_AZURE_TENANT_ID"],
                      AZURE_FEDERATED_TOKEN_FILE=token_file,
                      AZURE_AUTHORITY_HOST=env["MXPC_AZURE_AUTHORITY_HOST"])
    return ManagedIdentityCredential()


_, tr = token_request(admin, "demo-kv", ["api://AzureADTokenExchange"])
tmp = tempfile.NamedTemporaryFile("w", delete=False)
tmp.write(tr["status"]["token"])
tmp.close()
try:
    cred = workload_identity(env["MXPC_AZURE_KV_CLIENT_ID"], tmp.name)
    kv = SecretClient(env["MXPC_KEYVAULT_URL"] + "/demo-kv", cred,
                      verify_challenge_resource=False)
    t.check("azure-keyvault-secrets get_secret as demo-kv's identity (challenge, then token)",
            kv.get_secret("database-name").value == "demo_kv")
    t.check("a constant stored with dashes",
            kv.get_secret("mx-const-MyFirstModule-ApiKey").value ==
            seed["demo-kv"]["never_read"]["mx-const-MyFirstModule.ApiKey"])
    try:
        kv.get_secret("no-such-secret")
        t.check("a missing secret: 404 SecretNotFound", False)
    except HttpResponseError as e:
        t.check("a missing secret: 404 SecretNotFound",
                e.status_code == 404 and "SecretNotFound" in str(e), e)
    try:
        kv.set_secret("database-name", "x")
        t.check("Key Vault Secrets User cannot write: 403 ForbiddenByRbac", False)
    except HttpResponseError as e:
        t.check("Key Vault Secrets User cannot write: 403 ForbiddenByRbac",
                e.status_code == 403 and "ForbiddenByRbac" in str(e), e)
    # the tool's own identity (the jump pod's), then without its role
    own = workload_identity(env["MXPC_AZURE_CLIENT_ID"], env["MXPC_AZURE_FEDERATED_TOKEN_FILE"])
    kv_own = SecretClient(env["MXPC_KEYVAULT_URL"] + "/demo-kv", own,
                          verify_challenge_resource=False)
    t.check("the tool's own identity reads it too",
            kv_own.get_secret("database-name").value == "demo_kv")
    conf_path = os.path.join(env["MXPC_KEYVAULT_DIR"], "config.json")
    with open(conf_path) as f:
        saved = f.read()
    conf = json.loads(saved)
    del conf["vaults"]["demo-kv"]["roles"][env["MXPC_AZURE_PRINCIPAL_ID"]]
    with open(conf_path, "w") as f:
        json.dump(conf, f)
    try:
        kv_own.get_secret("database-name")
        t.check("without a role on the vault: 403 ForbiddenByRbac", False)
    except HttpResponseError as e:
        t.check("without a role on the vault: 403 ForbiddenByRbac",
                e.status_code == 403 and "ForbiddenByRbac" in str(e), e)
    finally:
        with open(conf_path, "w") as f:
            f.write(saved)
    kv_none = SecretClient(env["MXPC_KEYVAULT_URL"] + "/demo-kv", type(
        "NoCred", (), {"get_token": lambda self, *s, **k: type("T", (), {
            "token": "garbage.token.x", "expires_on": int(time.time()) + 3600})()})(),
        verify_challenge_resource=False)
    try:
        kv_none.get_secret("database-name")
        t.check("a token that is not Entra's: 401", False)
    except (HttpResponseError, ClientAuthenticationError) as e:
        t.check("a token that is not Entra's: 401", getattr(e, "status_code", 401) == 401, e)
finally:
    os.unlink(tmp.name)

t.finish()
