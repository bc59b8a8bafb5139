#!/usr/bin/env python3
"""A stand-in for AWS Secrets Manager: GetSecretValue and DescribeSecret, as the Secrets
Store CSI Driver's AWS provider and the AWS SDKs call them (JSON 1.1 protocol:
POST / with X-Amz-Target: secretsmanager.ACTION).

Every request must be signed with AWS Signature Version 4 (service secretsmanager, the
stand-in's region); the signature is recomputed and checked. The keys it knows:
  - DIR/users.json: long-term keys of IAM users {ACCESS-KEY: {"secret", "arn"}};
  - the STS stand-in's live sessions (STS-DIR/sessions.json): temporary keys of assumed
    roles, whose X-Amz-Security-Token must be the session's; expired ones are refused.
Who may read which secret: DIR/policies.json {PRINCIPAL-ARN: [{"actions": [...],
"resources": [secret names, ARNs or "*"]}]} (an assumed role's principal is its role ARN).
The secrets: DIR/secrets.json {NAME: {"arn", "string", "created"}} (the seed writes it).
The three files are read again when they change. Refusals are Secrets Manager's
(__type and message); every decision goes to DIR/access.log.

    sm_standin.py serve DIR --port P --sts-dir STS-DIR [--region R]

Only the Python standard library is used.
"""

import datetime
import hashlib
import hmac
import http.server
import json
import os
import secrets
import sys
import time
from urllib.parse import quote

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stacklib  # noqa: E402

SERVICE = "secretsmanager"


class SmError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def canonical_headers(headers, names):
    return "".join(f"{n}:{' '.join(str(headers.get(n, '')).split())}\n" for n in names)


def signing_key(secret, date, region, service):
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class SecretsManager:
    def __init__(self, directory, sts_dir, region):
        self.users = stacklib.JsonFile(os.path.join(directory, "users.json"), {})
        self.policies = stacklib.JsonFile(os.path.join(directory, "policies.json"), {})
        self.secrets = stacklib.JsonFile(os.path.join(directory, "secrets.json"), {})
        self.sessions = stacklib.JsonFile(os.path.join(sts_dir, "sessions.json"), {})
        self.region = region
        self.log_file = open(os.path.join(directory, "access.log"), "a", buffering=1)

    def log(self, line):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.log_file.write(f"{stamp} {line}\n")

    def principal(self, method, path, headers, body):
        """Checks the SigV4 signature; returns the caller's principal ARN."""
        auth = headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            raise SmError(400, "MissingAuthenticationTokenException",
                          "Missing Authentication Token")
        fields = {}
        for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = part.strip().partition("=")
            fields[k] = v
        try:
            access_key, date, region, service, term = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError):
            raise SmError(400, "IncompleteSignatureException",
                          "Authorization header requires Credential, SignedHeaders and "
                          "Signature")
        amz_date = headers.get("x-amz-date", "")
        if "host" not in signed or "x-amz-date" not in signed or amz_date[:8] != date:
            raise SmError(400, "IncompleteSignatureException",
                          "Host and X-Amz-Date must be signed, and the dates must agree")
        if service != SERVICE or term != "aws4_request" or region != self.region:
            raise SmError(400, "InvalidSignatureException",
                          f"Credential should be scoped to a valid region ('{self.region}') "
                          f"and service ('{SERVICE}'), not '{region}/{service}'")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            raise SmError(400, "IncompleteSignatureException", "X-Amz-Date is not a date")
        if abs(when - time.time()) > 300:
            raise SmError(400, "InvalidSignatureException",
                          f"Signature expired: {amz_date} is now earlier or later than "
                          "5 minutes from the current time")
        users = self.users.get()
        sessions = self.sessions.get()
        if access_key in users:
            secret, arn = users[access_key]["secret"], users[access_key]["arn"]
        elif access_key in sessions:
            s = sessions[access_key]
            if s["expiration"] <= time.time():
                raise SmError(400, "ExpiredTokenException",
                              "The security token included in the request is expired")
            if headers.get("x-amz-security-token") != s["token"]:
                raise SmError(400, "UnrecognizedClientException",
                              "The security token included in the request is invalid.")
            secret, arn = s["secret"], s["role"]
        else:
            raise SmError(400, "UnrecognizedClientException",
                          "The security token included in the request is invalid.")
        canonical = "\n".join([method, quote(path, safe="/-_.~"), "",
                               canonical_headers(headers, signed), ";".join(signed),
                               hashlib.sha256(body).hexdigest()])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{date}/{region}/{service}/{term}",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        want = hmac.new(signing_key(secret, date, region, service), to_sign.encode(),
                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, signature):
            raise SmError(400, "InvalidSignatureException",
                          "The request signature we calculated does not match the signature "
                          "you provided. Check your AWS Secret Access Key and signing method. "
                          "Consult the service documentation for details.")
        return arn

    def find(self, secret_id):
        for name, s in self.secrets.get().items():
            if secret_id in (name, s["arn"]):
                return name, s
        raise SmError(400, "ResourceNotFoundException",
                      "Secrets Manager can't find the specified secret.")

    def authorize(self, arn, action, name, secret):
        for stmt in self.policies.get().get(arn, []):
            if action in stmt["actions"] and \
                    {"*", name, secret["arn"]} & set(stmt["resources"]):
                return
        raise SmError(400, "AccessDeniedException",
                      f"User: {arn} is not authorized to perform: {action} on resource: "
                      f"{secret['arn']} because no identity-based policy allows "
                      f"the {action} action")

    def call(self, target, doc, arn):
        action = target.split(".", 1)[1] if target.startswith("secretsmanager.") else target
        if action not in ("GetSecretValue", "DescribeSecret"):
            raise SmError(400, "UnknownOperationException", f"Unknown operation {target}")
        secret_id = doc.get("SecretId")
        if not isinstance(secret_id, str) or not secret_id:
            raise SmError(400, "ValidationException",
                          "1 validation error detected: Value null at 'secretId' failed to "
                          "satisfy constraint: Member must not be null")
        name, secret = self.find(secret_id)
        self.authorize(arn, f"secretsmanager:{action}", name, secret)
        self.log(f"{action} secret={name} by={arn}")
        version = secret.get("version", "00000000-0000-0000-0000-000000000001")
        if action == "DescribeSecret":
            return {"ARN": secret["arn"], "Name": name, "LastChangedDate": secret["created"],
                    "CreatedDate": secret["created"],
                    "VersionIdsToStages": {version: ["AWSCURRENT"]}}
        return {"ARN": secret["arn"], "Name": name, "VersionId": version,
                "SecretString": secret["string"], "VersionStages": ["AWSCURRENT"],
                "CreatedDate": secret["created"]}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxpc-stack-secretsmanager"
    sys_version = ""

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        sm = self.server.sm
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            arn = sm.principal("POST", self.path.split("?")[0], headers, body)
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                raise SmError(400, "SerializationException", "The body is not JSON")
            self.answer(200, sm.call(headers.get("x-amz-target", ""), doc, arn))
        except SmError as e:
            sm.log(f"refused {e.code}: {e.message}")
            self.answer(e.status, {"__type": e.code, "message": e.message})
        except Exception as e:   # a bug here must still answer
            sm.log(f"internal error: {e!r}")
            self.answer(500, {"__type": "InternalServiceError", "message": repr(e)})

    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(404, {"__type": "UnknownOperationException", "message": "POST only"})

    def log_message(self, fmt, *args):
        pass


def main():
    args = stacklib.daemon_options(__doc__, ("--sts-dir", {"required": True}),
                                   ("--region", {"default": "us-east-1"}))
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    sm = SecretsManager(directory, os.path.abspath(args.sts_dir), args.region)
    sm.log(f"listening on http://127.0.0.1:{args.port}")
    stacklib.serve(Handler, args.port, "sm", sm)


if __name__ == "__main__":
    main()
