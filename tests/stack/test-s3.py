#!/usr/bin/env python3
"""The S3 server (Ceph RADOS Gateway) over http and https: SigV4 requests signed by curl
and by stacklib succeed, a wrong secret or key is refused, the payload hash and the date
are checked, https works with the stack's CA (--cacert, SSL_CERT_FILE, SSL_CERT_DIR) and
fails without it, multipart uploads work."""

import datetime
import hashlib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import S3, S3Error, Checks, stack_env_or_fail  # noqa: E402

t = Checks()
env = stack_env_or_fail(t)
HTTP, HTTPS = env["MXPC_S3_ENDPOINT"], env["MXPC_S3_HTTPS_ENDPOINT"]
AK, SK = env["MXPC_S3_ACCESS_KEY"], env["MXPC_S3_SECRET_KEY"]
REGION = env.get("MXPC_S3_REGION", "us-east-1")
BUCKET = f"stacktest-{os.getpid()}"
if not shutil.which("curl"):
    t.abort("curl is installed (Debian package curl)")
work = tempfile.mkdtemp()


def curl(url, user=f"{AK}:{SK}", method="GET", data=None, extra=()):
    """curl's own SigV4 signing; returns (exit code, HTTP status, body)."""
    cmd = ["curl", "-s", "-o", os.path.join(work, "body"), "-w", "%{http_code}",
           "--max-time", "10", "-X", method, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
           *extra, url]
    if user:
        cmd[1:1] = ["--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", user]
    if data is not None:
        path = os.path.join(work, "upload")
        with open(path, "wb") as f:
            f.write(data)
        cmd[1:1] = ["--data-binary", f"@{path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    body = b""
    if os.path.exists(os.path.join(work, "body")):
        with open(os.path.join(work, "body"), "rb") as f:
            body = f.read()
        os.unlink(os.path.join(work, "body"))
    return proc.returncode, proc.stdout, body


def in_subprocess(code, extra_env):
    """Run a stacklib snippet with a clean SSL environment plus extra_env: OpenSSL reads
    SSL_CERT_FILE / SSL_CERT_DIR at start-up, so each case needs its own process."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE",
                                                                  "SSL_CERT_DIR")}
    child_env.update(extra_env)
    prelude = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
               "from stacklib import S3\n")
    return subprocess.run([sys.executable, "-c", prelude + code], env=child_env,
                          capture_output=True, text=True)


rc, status, body = curl(f"{HTTP}/")
t.check("http: ListBuckets signed by curl --aws-sigv4", rc == 0 and status == "200" and
        b"ListAllMyBucketsResult" in body, f"curl {rc} HTTP {status}")
if rc != 0:
    t.abort(f"the S3 server at {HTTP} answers")

rc, status, _ = curl(f"{HTTP}/{BUCKET}", method="PUT")
t.check("http: create a bucket", status == "200", status)
payload = os.urandom(4096)
rc, status, _ = curl(f"{HTTP}/{BUCKET}/dir/object", method="PUT", data=payload)
t.check("http: put an object", status == "200", status)
rc, status, body = curl(f"{HTTP}/{BUCKET}/dir/object")
t.check("http: get it back byte for byte", status == "200" and body == payload, status)

rc, status, body = curl(f"{HTTP}/{BUCKET}/dir/object", user=f"{AK}:{SK}x")
t.check("wrong secret: 403 SignatureDoesNotMatch", status == "403" and
        b"SignatureDoesNotMatch" in body, (status, body[:200]))
rc, status, body = curl(f"{HTTP}/{BUCKET}/dir/object", user=f"NOSUCHKEY0000000:{SK}")
t.check("unknown access key: 403 InvalidAccessKeyId", status == "403" and
        b"InvalidAccessKeyId" in body, (status, body[:200]))
rc, status, body = curl(f"{HTTP}/{BUCKET}/dir/object", user=None)
t.check("anonymous: 403 AccessDenied", status == "403" and b"AccessDenied" in body, status)

# ---- stacklib's own SigV4 (what the seed uses), strictness of the server
s3 = S3(HTTP, AK, SK, REGION)
s3.put(BUCKET, "with space/ünïcode+plus", b"x")
t.check("stacklib: keys with spaces, unicode and '+' round-trip",
        s3.get(BUCKET, "with space/ünïcode+plus") == b"x")
t.check("stacklib: ListObjectsV2 with a prefix", set(s3.list(BUCKET, "dir/")) == {"dir/object"})
try:
    s3.request("PUT", BUCKET, "tampered", body=b"abc",
               payload_sha256=hashlib.sha256(b"abd").hexdigest())
    t.check("a body not matching x-amz-content-sha256: 400 XAmzContentSHA256Mismatch",
            False, "accepted")
except S3Error as e:
    t.check("a body not matching x-amz-content-sha256: 400 XAmzContentSHA256Mismatch",
            e.status == 400 and e.code == "XAmzContentSHA256Mismatch", str(e))
skewed = S3(HTTP, AK, SK, REGION)
skewed.clock_skew = datetime.timedelta(hours=-1)
try:
    skewed.get(BUCKET, "dir/object")
    t.check("a request dated an hour ago: 403 RequestTimeTooSkewed", False, "accepted")
except S3Error as e:
    t.check("a request dated an hour ago: 403 RequestTimeTooSkewed",
            e.status == 403 and e.code == "RequestTimeTooSkewed", str(e))

# multipart: 5 MiB + 1 KiB
big = os.urandom(5 * 1024 * 1024 + 1024)
_, data, _ = s3.request("POST", BUCKET, "multi", query=[("uploads", "")])
upload_id = data.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
etags = []
for n, chunk in enumerate((big[:5 * 1024 * 1024], big[5 * 1024 * 1024:]), 1):
    _, _, headers = s3.request("PUT", BUCKET, "multi", query=[("partNumber", str(n)),
                                                              ("uploadId", upload_id)],
                               body=chunk)
    etags.append({k.lower(): v for k, v in headers.items()}["etag"])
done = "<CompleteMultipartUpload>" + "".join(
    f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
    for n, e in enumerate(etags, 1)) + "</CompleteMultipartUpload>"
s3.request("POST", BUCKET, "multi", query=[("uploadId", upload_id)], body=done.encode())
t.check("multipart upload of two parts reads back intact", s3.get(BUCKET, "multi") == big)

# ---- https
rc, status, body = curl(f"{HTTPS}/{BUCKET}/dir/object", extra=["--cacert", env["MXPC_S3_CA"]])
t.check("https: get with curl --cacert MXPC_S3_CA", status == "200" and body == payload,
        (rc, status))
rc, status, _ = curl(f"{HTTPS}/{BUCKET}/dir/object")
t.check("https: without the CA the certificate is refused (curl exit 60)", rc == 60, rc)
rc, status, _ = curl(f"{HTTPS}/{BUCKET}/dir/object", extra=["--cacert", env["MXPC_PG_CA"]])
t.check("https: another CA is refused", rc == 60, rc)
rc, status, body = curl(f"https://localhost:{HTTPS.rsplit(':', 1)[1]}/{BUCKET}/dir/object",
                        extra=["--cacert", env["MXPC_S3_CA"]])
t.check("https: the certificate also names localhost", status == "200", (rc, status))

snippet = (f"s3 = S3({HTTPS!r}, {AK!r}, {SK!r}, {REGION!r})\n"
           f"print(len(s3.get({BUCKET!r}, 'dir/object')))\n")
proc = in_subprocess(snippet, {"SSL_CERT_FILE": env["MXPC_S3_CA"]})
t.check("https: OpenSSL's defaults with SSL_CERT_FILE=MXPC_S3_CA", proc.stdout.strip() == "4096",
        proc.stderr.strip()[-200:])
proc = in_subprocess(snippet, {"SSL_CERT_DIR": env["MXPC_S3_CA_DIR"]})
t.check("https: OpenSSL's defaults with SSL_CERT_DIR=MXPC_S3_CA_DIR",
        proc.stdout.strip() == "4096", proc.stderr.strip()[-200:])
proc = in_subprocess(snippet, {})
t.check("https: OpenSSL's defaults without either fail verification",
        proc.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in proc.stderr,
        proc.stderr.strip()[-200:])
try:
    S3(HTTPS, AK, SK, REGION, ca_file=env["MXPC_S3_CA"]).get(BUCKET, "dir/object")
    https_ok = True
except (S3Error, ssl.SSLError, OSError):
    https_ok = False
t.check("https: stacklib with the CA file", https_ok)
try:
    S3(HTTPS, AK, SK + "x", REGION, ca_file=env["MXPC_S3_CA"]).get(BUCKET, "dir/object")
    t.check("https: wrong secret is 403 there too", False, "accepted")
except S3Error as e:
    t.check("https: wrong secret is 403 there too", e.status == 403, str(e))

# ---- clean up
s3.delete_many(BUCKET, s3.list(BUCKET))
s3.delete_bucket(BUCKET)
t.check("the test bucket is removed", BUCKET not in s3.list_buckets())
shutil.rmtree(work, ignore_errors=True)
t.finish()
