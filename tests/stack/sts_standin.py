#!/usr/bin/env python3
"""A stand-in for AWS STS AssumeRoleWithWebIdentity in front of the stack's Ceph RGW.

It does what STS does with an EKS service account token: checks the JWT's RS256
signature against the issuer's JWKS (fetched from the issuer's
/.well-known/openid-configuration, over HTTPS), its expiry, and the role's trust policy
(issuer, audience, subject); then it hands out temporary credentials. They are real RGW
keys: an access key and secret added to the role's RGW user with radosgw-admin, removed
again when they expire, so RGW itself refuses them afterwards. The session token is
recorded but RGW does not check it.

Roles and sessions live in DIR (roles.json: read again when it changes, so tests can
change a role's duration or trust; sessions.json: the live credentials, for the RDS IAM
stand-in, which verifies token signatures with their secrets).

It also plays the EKS Pod Identity agent: GET /v1/credentials with the pod's service
account token (audience pods.eks.amazonaws.com) in Authorization answers with the
credentials of the role associated to the service account (roles.json "pod_identity":
subject -> role ARN), as AWS_CONTAINER_CREDENTIALS_FULL_URI expects. And the EC2
instance metadata service, IMDSv2 only (PUT /latest/api/token, then
/latest/meta-data/iam/security-credentials/[ROLE] with the session token), for the role
roles.json names as "instance_profile", as AWS_EC2_METADATA_SERVICE_ENDPOINT expects.

    sts_standin.py serve DIR --port P --ceph-conf CONF

Only the Python standard library (and oidc.py beside it) is used.
"""

import datetime
import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oidc  # noqa: E402
import stacklib  # noqa: E402

NS = "https://sts.amazonaws.com/doc/2011-06-15/"


class StsError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Sts:
    def __init__(self, directory, ceph_conf):
        self.dir = directory
        self.ceph_conf = ceph_conf
        self.lock = threading.Lock()
        self.roles = stacklib.JsonFile(os.path.join(directory, "roles.json"))
        self.issuer_keys = oidc.IssuerKeys()
        self.sessions_path = os.path.join(directory, "sessions.json")
        self.sessions = {}
        stacklib.write_json(self.sessions_path, self.sessions)
        self.log_file = open(os.path.join(directory, "access.log"), "a", buffering=1)

    def log(self, line):
        self.log_file.write(f"{iso(time.time())} {line}\n")

    def config(self):
        return self.roles.get()

    def keyset(self, issuer, ca):
        try:
            return self.issuer_keys.get(issuer, ca)
        except ValueError as e:
            raise StsError(400, "InvalidIdentityToken", str(e))

    def radosgw_admin(self, *args):
        r = subprocess.run(["radosgw-admin", "-c", self.ceph_conf, "-n", "client.rgw", *args],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"radosgw-admin {args[0]} {args[1]}: {r.stderr.strip()[-300:]}")

    def assume(self, form):
        def param(name):
            v = form.get(name, [""])[0]
            if not v:
                raise StsError(400, "MissingParameter",
                               f"The request must contain the parameter {name}")
            return v
        if param("Action") != "AssumeRoleWithWebIdentity":
            raise StsError(400, "InvalidAction", f"Could not find operation {form['Action'][0]}")
        if param("Version") != "2011-06-15":
            raise StsError(400, "InvalidParameterValue", "Version must be 2011-06-15")
        role_arn, session, token = param("RoleArn"), param("RoleSessionName"), \
            param("WebIdentityToken")
        if not 2 <= len(session) <= 64:
            raise StsError(400, "ValidationError", "RoleSessionName must have 2 to 64 characters")
        conf = self.config()
        claims, auds, issuer = self.verify(conf, token, None)
        role = conf["roles"].get(role_arn)
        trust = (role or {}).get("trust", {})
        if (role is None or trust.get("iss") != issuer or trust.get("aud") not in auds or
                trust.get("sub") != claims.get("sub")):
            raise StsError(403, "AccessDenied",
                           "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        duration = int(role.get("duration", 3600))
        if form.get("DurationSeconds"):
            duration = min(duration, int(form["DurationSeconds"][0]))
        access_key, secret_key, session_token, expires = self.issue(
            "AssumeRoleWithWebIdentity", role_arn, role, session, claims, duration)
        return f"""<AssumeRoleWithWebIdentityResponse xmlns="{NS}">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>{escape(claims.get('sub', ''))}</SubjectFromWebIdentityToken>
    <Audience>{escape(str(auds[0]))}</Audience>
    <AssumedRoleUser>
      <Arn>{escape(role_arn.replace(':iam:', ':sts:').replace(':role/', ':assumed-role/'))}/{escape(session)}</Arn>
      <AssumedRoleId>AROA{secrets.token_hex(8).upper()}:{escape(session)}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{session_token}</SessionToken>
      <SecretAccessKey>{escape(secret_key)}</SecretAccessKey>
      <Expiration>{iso(expires)}</Expiration>
      <AccessKeyId>{access_key}</AccessKeyId>
    </Credentials>
    <Provider>{escape(issuer)}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"""

    def verify(self, conf, token, audiences):
        """The verified claims, audiences and issuer of a service account token;
        `audiences` None = the provider's."""
        # Which issuer: the token says; it must be a registered OIDC provider.
        try:
            unverified = json.loads(oidc.b64u_decode(token.split(".")[1]))
        except (ValueError, IndexError):
            raise StsError(400, "InvalidIdentityToken", "The web identity token is not a JWT")
        issuer = unverified.get("iss")
        provider = conf["providers"].get(issuer)
        if provider is None:
            raise StsError(400, "InvalidIdentityToken",
                           f"No OpenIDConnect provider found in your account for {issuer}")
        try:
            claims = oidc.verify(token, self.keyset(issuer, provider["ca"]))
        except ValueError as e:
            code = "ExpiredTokenException" if "expired" in str(e) else "InvalidIdentityToken"
            raise StsError(400, code, f"The web identity token is not valid: {e}")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not set(auds) & set(audiences or provider["audiences"]):
            raise StsError(400, "InvalidIdentityToken",
                           f"Incorrect token audience {','.join(map(str, auds))}")
        return claims, auds, issuer

    def issue(self, what, role_arn, role, session, claims, duration):
        """Real RGW keys for the role's user, valid `duration` seconds."""
        access_key = "ASIA" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        session_token = "mxpc-sts-" + secrets.token_urlsafe(48)
        expires = int(time.time()) + duration
        self.radosgw_admin("key", "create", f"--uid={role['uid']}", "--key-type=s3",
                           f"--access-key={access_key}", f"--secret-key={secret_key}")
        with self.lock:
            self.sessions[access_key] = {"secret": secret_key, "token": session_token,
                                         "expiration": expires, "role": role_arn,
                                         "uid": role["uid"], "session": session,
                                         "sub": claims.get("sub")}
            stacklib.write_json(self.sessions_path, self.sessions)
        self.log(f"{what} role={role_arn} session={session} "
                 f"sub={claims.get('sub')} token_iat={claims.get('iat')} key={access_key} "
                 f"duration={duration}")
        return access_key, secret_key, session_token, expires

    def pod_identity(self, authorization):
        """The EKS Pod Identity agent: the pod's service account token (audience
        pods.eks.amazonaws.com) in Authorization -> the associated role's credentials."""
        if not authorization:
            raise StsError(400, "InvalidParameterException", "Authorization header is missing")
        conf = self.config()
        claims, _, _ = self.verify(conf, authorization.strip(), ["pods.eks.amazonaws.com"])
        role_arn = conf.get("pod_identity", {}).get(claims.get("sub"))
        role = conf["roles"].get(role_arn)
        if role is None:
            raise StsError(403, "AccessDeniedException",
                           f"no pod identity association for {claims.get('sub')}")
        access_key, secret_key, session_token, expires = self.issue(
            "PodIdentity", role_arn, role, "eks-pod-identity", claims,
            int(role.get("duration", 3600)))
        return {"AccessKeyId": access_key, "SecretAccessKey": secret_key,
                "Token": session_token, "AccountId": role_arn.split(":")[4],
                "Expiration": iso(expires)}

    def reap(self):
        """Removes expired credentials from RGW, so they really stop working."""
        while True:
            time.sleep(0.5)
            now = time.time()
            with self.lock:
                expired = [(k, s) for k, s in self.sessions.items() if s["expiration"] <= now]
            for key, s in expired:
                try:
                    self.radosgw_admin("key", "rm", f"--uid={s['uid']}", "--key-type=s3",
                                       f"--access-key={key}")
                    self.log(f"expired key={key} role={s['role']}")
                except RuntimeError as e:
                    self.log(f"cannot remove key={key}: {e}")
                with self.lock:
                    self.sessions.pop(key, None)
                    stacklib.write_json(self.sessions_path, self.sessions)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxpc-stack-sts"
    sys_version = ""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8",
                                                                                     "replace")
        form = parse_qs(body, keep_blank_values=True)
        sts = self.server.sts
        try:
            xml, status = sts.assume(form), 200
        except StsError as e:
            status = e.status
            xml = (f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{e.code}</Code>'
                   f"<Message>{escape(e.message)}</Message></Error>"
                   f"<RequestId>{secrets.token_hex(16)}</RequestId></ErrorResponse>\n")
            sts.log(f"refused {e.code}: {e.message} (fields {','.join(sorted(form))})")
        except Exception as e:   # a bug here must still answer
            status = 500
            xml = (f'<ErrorResponse xmlns="{NS}"><Error><Type>Receiver</Type>'
                   f"<Code>InternalFailure</Code><Message>{escape(repr(e))}</Message></Error>"
                   "</ErrorResponse>\n")
            sts.log(f"internal error: {e!r}")
        data = xml.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self, status, data, ctype="application/json"):
        data = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        """IMDSv2: a session token for the instance metadata."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/latest/api/token" or \
                not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.answer(400, b"", "text/plain")
        token = secrets.token_urlsafe(32)
        self.server.imds_tokens.add(token)
        self.answer(200, token.encode(), "text/plain")

    def do_GET(self):
        sts = self.server.sts
        prefix = "/latest/meta-data/iam/security-credentials/"
        if self.path.startswith(prefix):
            # IMDSv2 only: without the session token, 401 (as with HttpTokens=required)
            if self.headers.get("X-aws-ec2-metadata-token") not in self.server.imds_tokens:
                return self.answer(401, b"", "text/plain")
            role_arn = sts.config().get("instance_profile")
            name = role_arn.split("/")[-1] if role_arn else None
            if not name:
                return self.answer(404, b"", "text/plain")
            if self.path == prefix:
                return self.answer(200, name.encode(), "text/plain")
            if self.path != prefix + name:
                return self.answer(404, b"", "text/plain")
            role = sts.config()["roles"][role_arn]
            access_key, secret_key, session_token, expires = sts.issue(
                "InstanceProfile", role_arn, role, "i-0123456789abcdef0", {},
                int(role.get("duration", 3600)))
            return self.answer(200, {"Code": "Success", "Type": "AWS-HMAC",
                                     "LastUpdated": iso(time.time()), "AccessKeyId": access_key,
                                     "SecretAccessKey": secret_key, "Token": session_token,
                                     "Expiration": iso(expires)})
        if self.path != "/v1/credentials":
            return self.answer(404, b"", "text/plain")
        try:
            status, doc = 200, sts.pod_identity(self.headers.get("Authorization"))
        except StsError as e:
            status, doc = e.status, {"code": e.code, "message": e.message}
            sts.log(f"pod identity refused {e.code}: {e.message}")
        self.answer(status, doc)

    def log_message(self, fmt, *args):
        pass


def main():
    args = stacklib.daemon_options(__doc__, ("--ceph-conf", {"required": True}))
    directory = os.path.abspath(args.dir)
    if not os.path.exists(os.path.join(directory, "roles.json")):
        stacklib.write_json(os.path.join(directory, "roles.json"), {"providers": {}, "roles": {}})
    sts = Sts(directory, args.ceph_conf)
    threading.Thread(target=sts.reap, daemon=True).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.sts = sts
    server.imds_tokens = set()
    sts.log(f"listening on http://127.0.0.1:{args.port}")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
