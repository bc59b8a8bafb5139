"""RS256 JSON Web Tokens for the test stack, with the Python standard library and the
openssl command only: the Kubernetes emulator signs service account tokens with it (as
the OIDC issuer of an EKS cluster does), the STS stand-in verifies them against the
issuer's JWKS.

The RSA arithmetic is textbook PKCS #1 v1.5 (RFC 8017, section 8.2) on Python integers;
it is slow next to a real library but a token takes milliseconds.
"""

import base64
import hashlib
import json
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.request

# DER prefix of a SHA-256 DigestInfo (RFC 8017, section 9.2, note 1).
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_bytes(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def make_key(directory):
    """Writes oidc.key (RSA 2048), oidc.crt (self-signed, for the JWKS x5c) and
    oidc-key.json (the numbers) into directory."""
    key, crt = os.path.join(directory, "oidc.key"), os.path.join(directory, "oidc.crt")
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=mxpc-stack-oidc",
                    "-days", "3650", "-out", crt], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-text"], check=True,
                          capture_output=True, text=True).stdout

    def number(label):
        m = re.search(label + r":\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
        return int(re.sub(r"[\s:]", "", m.group(1)), 16)
    e = int(re.search(r"publicExponent: (\d+)", text).group(1))
    numbers = {"n": number("modulus"), "e": e, "d": number("privateExponent")}
    der = subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    numbers["x5c"] = base64.b64encode(der).decode()
    numbers["kid"] = b64u(hashlib.sha256(int_bytes(numbers["n"])).digest())[:16]
    path = os.path.join(directory, "oidc-key.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(numbers, f)
    return numbers


def load_key(directory):
    with open(os.path.join(directory, "oidc-key.json")) as f:
        return json.load(f)


def jwks(key):
    return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": key["kid"],
                      "n": b64u(int_bytes(key["n"])), "e": b64u(int_bytes(key["e"])),
                      "x5c": [key["x5c"]]}]}


class IssuerKeys:
    """The JWKS of OpenID issuers, fetched over HTTPS from the issuer's
    /.well-known/openid-configuration (whose "issuer" must be the issuer itself) and
    kept for `ttl` seconds. get() raises ValueError for a wrong configuration and
    OSError when the issuer does not answer."""

    def __init__(self, ttl=30):
        self.ttl = ttl
        self.cache = {}   # issuer -> (fetched at, keyset)
        self.lock = threading.Lock()

    def get(self, issuer, ca, metadata_url=None):
        with self.lock:
            cached = self.cache.get(issuer)
        if cached and time.time() - cached[0] < self.ttl:
            return cached[1]
        context = ssl.create_default_context(cafile=ca)

        def fetch(url):
            with urllib.request.urlopen(url, context=context, timeout=10) as r:
                return json.load(r)
        doc = fetch(metadata_url or issuer.rstrip("/") + "/.well-known/openid-configuration")
        if doc.get("issuer") != issuer:
            raise ValueError(f"the OpenID configuration of {issuer} names issuer "
                             f"{doc.get('issuer')}")
        keyset = fetch(doc["jwks_uri"])
        with self.lock:
            self.cache[issuer] = (time.time(), keyset)
        return keyset


def discovery(issuer):
    return {"issuer": issuer, "jwks_uri": issuer + "/openid/v1/jwks",
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]}


def _encoded_digest(message, size):
    t = SHA256_PREFIX + hashlib.sha256(message).digest()
    return b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t


def sign(key, claims):
    header = {"alg": "RS256", "typ": "JWT", "kid": key["kid"]}
    signing_input = (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64u(json.dumps(claims, separators=(",", ":")).encode())).encode()
    size = (key["n"].bit_length() + 7) // 8
    em = int.from_bytes(_encoded_digest(signing_input, size), "big")
    sig = pow(em, key["d"], key["n"]).to_bytes(size, "big")
    return signing_input.decode() + "." + b64u(sig)


def verify(token, keyset, now=None):
    """The claims of a token signed by a key of the JWKS `keyset`; ValueError with the
    reason otherwise. Checks the signature, exp and nbf (not iss/aud: the caller's)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    try:
        header = json.loads(b64u_decode(parts[0]))
        claims = json.loads(b64u_decode(parts[1]))
        sig = int.from_bytes(b64u_decode(parts[2]), "big")
    except ValueError as e:
        raise ValueError(f"malformed JWT: {e}")
    if header.get("alg") != "RS256":
        raise ValueError(f"algorithm {header.get('alg')!r} is not RS256")
    keys = [k for k in keyset.get("keys", []) if k.get("kty") == "RSA" and
            (header.get("kid") is None or k.get("kid") == header.get("kid"))]
    if not keys:
        raise ValueError(f"no key {header.get('kid')!r} in the issuer's JWKS")
    signing_input = (parts[0] + "." + parts[1]).encode()
    for k in keys:
        n = int.from_bytes(b64u_decode(k["n"]), "big")
        e = int.from_bytes(b64u_decode(k["e"]), "big")
        size = (n.bit_length() + 7) // 8
        if sig < n and pow(sig, e, n).to_bytes(size, "big") == _encoded_digest(signing_input, size):
            break
    else:
        raise ValueError("the signature does not verify")
    now = time.time() if now is None else now
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
        raise ValueError("the token has expired")
    if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + 60:
        raise ValueError("the token is not valid yet")
    return claims


def service_account_token(key, issuer, namespace, name, audience, lifetime):
    """A projected service account token as the kubelet mounts it."""
    now = int(time.time())
    return sign(key, {
        "aud": [audience], "exp": now + int(lifetime), "iat": now, "nbf": now, "iss": issuer,
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}},
    })
