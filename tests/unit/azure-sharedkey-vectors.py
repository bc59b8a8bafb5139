#!/usr/bin/python3
"""Writes tests/unit/azure-sharedkey-vectors.txt: Azure Storage Shared Key signatures of a
table of Blob requests, made by the Azure SDK for Python's own signing policy
(azure.storage.blob._shared.authentication.SharedKeyCredentialPolicy, from Debian's
python3-azure; run with /usr/bin/python3). test_azure_sharedkey.c checks the C signer
against the file, so the unit test needs no Python; run this again only to add cases:

    tests/unit/azure-sharedkey-vectors.py > tests/unit/azure-sharedkey-vectors.txt

Two rules the SDK cannot show, because it never sends such requests, are generated with
the SDK's policy corrected to the documented rule and marked "rule documented":
  - a standard Range header is signed (the SDK's list names "byte_range", so it always
    signs an empty Range; it sends x-ms-range instead). Azurite and Azure sign Range.
  - a query parameter given several times is signed once with its values sorted and
    joined by commas (the SDK keeps only the last value of a repeated parameter).

File format: "account NAME" and "key BASE64" first; then per case "case NAME", "method",
"path" (as sent), "query" (as sent; absent when none), "header NAME: VALUE" lines in the
order sent, "sts" (the string to sign, newlines written as \\n), "auth" (the
Authorization header), "end".
"""

import base64
import sys
from urllib.parse import unquote, urlparse

from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
import azure.storage.blob._shared.authentication as authentication

ACCOUNT = "mxpcstack"
# a fixed, made-up key (64 bytes, as Azure's are)
KEY = base64.b64encode(bytes(range(7, 71))).decode()
DATE = "Sun, 06 Dec 2026 12:00:00 GMT"
VERSION = "2021-08-06"
BASE = "https://127.0.0.1:10000"


class DocumentedRange(authentication.SharedKeyCredentialPolicy):
    @staticmethod
    def _get_headers(request, headers_to_sign):
        return authentication.SharedKeyCredentialPolicy._get_headers(
            request, ["range" if h == "byte_range" else h for h in headers_to_sign])


class DocumentedRepeats(authentication.SharedKeyCredentialPolicy):
    @staticmethod
    def _get_canonicalized_resource_query(request):
        values = {}
        for pair in urlparse(request.http_request.url).query.split("&"):
            name, _, value = pair.partition("=")
            values.setdefault(name.lower(), []).append(unquote(value))
        return "".join(f"\n{name}:{','.join(sorted(v))}" for name, v in sorted(values.items()))


def sign(policy_class, method, path, query, headers):
    captured = {}
    real = authentication.sign_string

    def capture(key, string_to_sign):
        captured["sts"] = string_to_sign
        return real(key, string_to_sign)
    authentication.sign_string = capture
    try:
        url = BASE + path + (f"?{query}" if query else "")
        request = HttpRequest(method, url, headers=dict(headers))
        policy_class(ACCOUNT, KEY).on_request(PipelineRequest(request, PipelineContext(None)))
    finally:
        authentication.sign_string = real
    return captured["sts"], request.headers["Authorization"]


def ms(*extra):
    return [("x-ms-date", DATE), ("x-ms-version", VERSION), *extra]


CASES = [
    # (name, method, path, query, headers[, policy])
    ("get blob", "GET", "/mxpcstack/files/6f1c3e2a-0b7d-4c57-9a57-0c1d2e3f4a5b", "",
     ms()),
    ("get blob, a range (x-ms-range, as the SDK sends it)", "GET", "/mxpcstack/files/a", "",
     ms(("x-ms-range", "bytes=1048576-2097151"))),
    ("put blob, empty: Content-Length 0 signs as empty", "PUT", "/mxpcstack/files/empty", "",
     ms(("x-ms-blob-type", "BlockBlob"), ("Content-Length", "0"),
        ("Content-Type", "application/octet-stream"))),
    ("put blob with Content-MD5 and metadata (names: case, '-', '_', digits)", "PUT",
     "/mxpcstack/files/with-meta", "",
     ms(("x-ms-blob-type", "BlockBlob"), ("Content-Length", "1234"),
        ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="), ("Content-Type", "text/plain; charset=utf-8"),
        ("x-ms-meta-Name", "Caf\u00e9 menu"), ("x-ms-meta-a_b", "1"), ("x-ms-meta-a1", "2"),
        ("x-ms-meta-a-b", "3"), ("x-ms-meta-ab", "4"))),
    ("put block: blockid URL-encoded in the query", "PUT", "/mxpcstack/files/big",
     "comp=block&blockid=MDAwMDA%2BMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA%3D",
     ms(("Content-Length", "4194304"))),
    ("put block list", "PUT", "/mxpcstack/files/big", "comp=blocklist",
     ms(("Content-Length", "210"), ("Content-Type", "application/xml"),
        ("x-ms-blob-content-type", "application/octet-stream"))),
    ("copy blob from URL", "PUT", "/mxpcstack/copy/6f1c3e2a",
     "",
     ms(("x-ms-copy-source", "https://src.blob.core.windows.net/files/a%20b?sv=2021-08-06&sig=x%2By"),
        ("x-ms-requires-sync", "true"), ("Content-Length", "0"))),
    ("list blobs: prefix and marker decoded, parameters sorted", "GET", "/mxpcstack/files",
     "restype=container&comp=list&prefix=dir%2Fsub%20dir%2F&marker=2%21120%21MDAwMDA%3D&maxresults=5000",
     ms()),
    ("list blobs: include with two comma-separated values", "GET", "/mxpcstack/files",
     "restype=container&comp=list&include=snapshots%2Cmetadata", ms()),
    ("list containers, path-style account (Azurite)", "GET", "/mxpcstack", "comp=list", ms()),
    ("list containers, account host (Azure)", "GET", "/", "comp=list", ms()),
    ("create container", "PUT", "/mxpcstack/new-container", "restype=container",
     ms(("Content-Length", "0"))),
    ("delete blob with snapshots", "DELETE", "/mxpcstack/files/x",
     "", ms(("x-ms-delete-snapshots", "include"))),
    ("URL-encoded blob name: space, umlaut, '+', '%'", "GET",
     "/mxpcstack/files/dir/%C3%BCml%20aut%2B%25.bin", "", ms()),
    ("URL-encoded blob name: ~ ! ' ( ) *", "HEAD", "/mxpcstack/files/~a%21%27%28%29%2A",
     "", ms()),
    ("conditional: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since",
     "GET", "/mxpcstack/files/a", "",
     ms(("If-Match", '"0x8DB1C2D3E4F5A6B"'), ("If-None-Match", "*"),
        ("If-Modified-Since", "Sat, 05 Dec 2026 10:00:00 GMT"),
        ("If-Unmodified-Since", "Sun, 06 Dec 2026 11:00:00 GMT"))),
    ("Content-Encoding and Content-Language", "PUT", "/mxpcstack/files/gz", "",
     ms(("x-ms-blob-type", "BlockBlob"), ("Content-Encoding", "gzip"),
        ("Content-Language", "nl-NL"), ("Content-Length", "77"))),
    ("an x-ms header with an empty value", "PUT", "/mxpcstack/files/m", "comp=metadata",
     ms(("x-ms-meta-empty", ""), ("Content-Length", "0"))),
    ("a query parameter without a value", "GET", "/mxpcstack/files", "restype=container&comp",
     ms()),
    ("a standard Range header (rule documented)", "GET", "/mxpcstack/files/a", "",
     ms(("Range", "bytes=0-1023")), DocumentedRange),
    ("a query parameter given twice (rule documented)", "GET", "/mxpcstack/files",
     "restype=container&comp=list&include=snapshots&include=metadata", ms(),
     DocumentedRepeats),
]


def main():
    out = sys.stdout
    out.write("# Generated by tests/unit/azure-sharedkey-vectors.py with "
              "azure-storage-blob's SharedKeyCredentialPolicy; do not edit.\n")
    out.write(f"account {ACCOUNT}\nkey {KEY}\n")
    for case in CASES:
        name, method, path, query, headers = case[:5]
        policy = case[5] if len(case) > 5 else authentication.SharedKeyCredentialPolicy
        sts, auth = sign(policy, method, path, query, headers)
        out.write(f"\ncase {name}\nmethod {method}\npath {path}\n")
        if query:
            out.write(f"query {query}\n")
        for k, v in headers:
            out.write(f"header {k}: {v}\n")
        out.write("sts " + sts.replace("\\", "\\\\").replace("\n", "\\n") + "\n")
        out.write(f"auth {auth}\nend\n")


if __name__ == "__main__":
    main()
