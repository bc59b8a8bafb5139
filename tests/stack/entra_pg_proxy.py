#!/usr/bin/env python3
"""A stand-in for Azure Database for PostgreSQL Flexible Server with Microsoft Entra
authentication, in front of the stack's PostgreSQL.

It is a pg_front.PgFront (TLS only; the password is a token), whose password must be an
Entra access token:

  - RS256-signed by a key of the Entra stand-in's JWKS (found through its OpenID
    metadata, over HTTPS), not expired, not before its nbf;
  - issued by https://sts.windows.net/TENANT/ for the audience
    https://ossrdbms-aad.database.windows.net (a token for Storage is refused);
  - for the principal mapped to the database user: DIR/users.json's "oid" for the user,
    as `SECURITY LABEL for "pgaadauth" ON ROLE ... IS 'aadauth,oid=...,type=service'`
    maps a managed identity to its role.

A refusal is FATAL 28P01 `password authentication failed for user "..."`; the reason
goes to DIR/access.log only.

    entra_pg_proxy.py serve DIR --port P --upstream-port P --cert C --key K
                      --entra-url URL --entra-ca CA --tenant ID
"""

import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oidc  # noqa: E402
import pg_front  # noqa: E402
from pg_front import PgFront, Refused  # noqa: E402

AUDIENCE = "https://ossrdbms-aad.database.windows.net"


class EntraPgProxy(PgFront):
    def __init__(self, opts):
        super().__init__(opts)
        self.tenant = opts.tenant
        self.issuer = f"https://sts.windows.net/{opts.tenant}/"
        self.metadata = (f"{opts.entra_url.rstrip('/')}/{opts.tenant}"
                         "/.well-known/openid-configuration")
        self.entra_ca = opts.entra_ca
        self.issuer_keys = oidc.IssuerKeys()

    def refusal(self, user):
        return f'password authentication failed for user "{user}"'

    def verify(self, token, user):
        if token.count(".") != 2:
            raise Refused("the password is not a JWT (an Entra access token)")
        try:
            keys = self.issuer_keys.get(self.issuer, self.entra_ca, self.metadata)
            claims = oidc.verify(token, keys)
        except (ValueError, OSError) as e:
            raise Refused(f"the token is not valid: {e}")
        if claims.get("iss") != self.issuer:
            raise Refused(f"the token's issuer is {claims.get('iss')}, not {self.issuer}")
        if claims.get("aud") != AUDIENCE:
            raise Refused(f"the token is for {claims.get('aud')}, not {AUDIENCE}")
        mapped = pg_front.load(os.path.join(self.dir, "users.json")).get(user, {}).get("oid")
        if not mapped:
            raise Refused(f"no Entra principal is mapped to the role {user}")
        if claims.get("oid") != mapped:
            raise Refused(f"the token is for principal {claims.get('oid')} "
                          f"(app {claims.get('appid')}), the role {user} for {mapped}")
        return f"oid={claims['oid']} appid={claims.get('appid')}"


if __name__ == "__main__":
    pg_front.main(EntraPgProxy, __doc__, ("--entra-url", {"required": True}),
                  ("--entra-ca", {"required": True}), ("--tenant", {"required": True}))
