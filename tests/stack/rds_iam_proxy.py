#!/usr/bin/env python3
"""A stand-in for Amazon RDS IAM database authentication, in front of the stack's
PostgreSQL.

It is a pg_front.PgFront (TLS only; the password is a token), whose password must be
an RDS IAM token (a SigV4-presigned rds-db:connect request):

  - for this endpoint (host:port), Action=connect, DBUser = the user logging in;
  - signed with AWS4-HMAC-SHA256 for rds-db in the configured region, X-Amz-Expires at
    most 900, not expired;
  - by temporary credentials the STS stand-in handed out and that are still live
    (sessions.json), with their session token;
  - whose role may rds-db:connect as that user (roles.json: the role's rds_users).

A refusal is RDS's: FATAL 28P01 `PAM authentication failed for user "..."`; the reason
goes to DIR/access.log only.

    rds_iam_proxy.py serve DIR --port P --upstream-port P --cert C --key K
                     --sts-dir D [--region R]

DIR/users.json (written by the seed) maps database users to their real passwords.
Only the Python standard library is used.
"""

import datetime
import hashlib
import hmac
import os
import sys
import time
from urllib.parse import quote, unquote

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg_front  # noqa: E402
from pg_front import PgFront, Refused  # noqa: E402

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class RdsIamProxy(PgFront):
    def __init__(self, opts):
        super().__init__(opts)
        self.sts_dir = os.path.abspath(opts.sts_dir)
        self.region = opts.region

    def refusal(self, user):
        return f'PAM authentication failed for user "{user}"'

    # ---- the token ---------------------------------------------------------

    def verify(self, token, user):
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
        session = pg_front.load(os.path.join(self.sts_dir, "sessions.json")).get(access_key)
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
        roles = pg_front.load(os.path.join(self.sts_dir, "roles.json"))["roles"]
        role = roles.get(session["role"], {})
        if user not in role.get("rds_users", []):
            raise Refused(f"role {session['role']} is not allowed rds-db:connect as {user}")
        return f"role={session['role']}"


if __name__ == "__main__":
    pg_front.main(RdsIamProxy, __doc__, ("--sts-dir", {"required": True}),
                  ("--region", {"default": "us-east-1"}))
