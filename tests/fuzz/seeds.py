#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME/seed-*)
from the project's test data: the archive fixture and the malformed-archive
corpus (tests/archive), the SigV4 vectors (tests/unit/sigv4-vectors), the STS
answer of the AWS reference (tests/unit/test_aws.c), S3's answers as the
stack's stand-ins write them, and pg_restore's SQL of a small database
(tests/unit/sql_split_dump.sql). Regression inputs (crash-*) are kept as found.

usage: seeds.py   (from the source directory; rerun when the test data change)
"""
import gzip
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
MAX = 16 * 1024
UUID = "0d3e301f-5551-46f8-ad44-8de2be084c95"


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data[:MAX])


def archive_seeds():
    sample = open(os.path.join(ROOT, "tests/archive/fixtures/sample.backup"), "rb").read()
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in ((".metadata", b'{"duration":"0","dumpSize":"2387","modelVersion":"1.0.0.40",'
                            b'"databaseSize":"9730584","filesSize":"5"}'),
                           ("db/db.backup", sample), ("tree/0d/3e/" + UUID, b"hello")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    write("archive", "backup.tar", tar.getvalue())
    write("archive", "backup.tar.gz", gzip.compress(tar.getvalue(), mtime=0))
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/archive/corpus.py"), "/bin/true", ROOT,
                        "--keep", d], check=True, stdout=subprocess.DEVNULL)
        for f in sorted(os.listdir(d)):
            data = open(os.path.join(d, f), "rb").read()
            if len(data) <= MAX:
                write("archive", f, data)
    # the layout checks and the headers: first byte picks classify (0 directory, 4 file),
    # parse_metadata (1) or parse_dump_header (2)
    for i, name in enumerate(["tree/0d", "tree/0d/3e", "db", "tree/0d/3e/" + UUID, "db/db.backup", ".metadata",
                              "./tree/0D/3E/" + UUID.upper(), "tree/" + UUID]):
        write("backup_archive", "name-%d" % i, (b"\x04" if "/3e/" in name.lower() or "." in name else b"\x00")
              + name.encode())
    write("backup_archive", "metadata", b"\x01" + tar.getvalue()[512:512 + 104])
    write("backup_archive", "dump-header", b"\x02" + sample[:400])
    # whole archives through validate (pick 3 modulo 4; the pick also sets the pieces' size)
    write("backup_archive", "archive.tar", b"\x03" + tar.getvalue())
    write("backup_archive", "archive.tar.gz", b"\xff" + gzip.compress(tar.getvalue(), mtime=0))
    for f in ("seed-duplicate-uuid.tar.gz", "seed-metadata-not-json.tar.gz", "seed-outside.tar.gz",
              "seed-no-dump.tar.gz", "seed-tar-format-dump.tar.gz"):
        path = os.path.join(OUT, "archive", f)
        if os.path.exists(path):
            write("backup_archive", "archive-" + f[5:], b"\x07" + open(path, "rb").read())


def pgz_seeds():
    write("pgz", "text", b"\x06" + open(os.path.join(ROOT, "README.md"), "rb").read()[:6000])
    write("pgz", "zeros", b"\x19" + bytes(5000))
    write("pgz", "dump", b"\x01" + open(os.path.join(ROOT, "tests/archive/fixtures/sample.backup"), "rb").read())


def xml_seeds():
    src = open(os.path.join(ROOT, "tests/unit/test_aws.c")).read()
    m = re.search(r'sts_answer\[\] =\n(.*?);\n', src, re.S)
    sts = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))).encode().decode("unicode_escape")
    write("xml", "sts", "\x01" + sts)
    write("xml", "sts-error", '\x01<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
          '<Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized</Message></Error>'
          '<RequestId>x</RequestId></ErrorResponse>')
    x = '<?xml version="1.0" encoding="UTF-8"?>'
    write("xml", "s3-error", '\x00' + x + '<Error><Code>NoSuchKey</Code><Message>The specified key does not '
          'exist.</Message><Key>a&amp;b</Key><RequestId>tx</RequestId></Error>')
    write("xml", "s3-list", '\x00' + x + '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
          '<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>'
          '<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>'
          '<Contents><Key>p/' + UUID + '</Key><LastModified>2026-12-01T05:00:00.000Z</LastModified>'
          '<ETag>&quot;x&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>'
          '<Contents><Key>p/b</Key><Size>0</Size></Contents></ListBucketResult>')
    write("xml", "s3-initiate", '\x00' + x + '<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>'
          '<UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>')
    write("xml", "s3-complete", '\x00' + x + '<CompleteMultipartUploadResult><Location>l</Location>'
          '<Bucket>b</Bucket><Key>k</Key><ETag>"e-2"</ETag></CompleteMultipartUploadResult>')
    write("xml", "s3-delete", '\x00' + x + '<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key>'
          '<Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>')
    # the listing page's parser (3), DeleteObjects' (4), Entra ID's token answer (5)
    write("xml", "list-page", '\x03' + x + '<ListBucketResult><IsTruncated>true</IsTruncated>'
          '<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>'
          '<Contents><Key>p/' + UUID + '</Key><LastModified>2026-12-01T05:00:00.000Z</LastModified>'
          '<ETag>"x"</ETag><Size>5</Size></Contents><Contents><Key>p/b</Key><Size>0</Size></Contents>'
          '</ListBucketResult>')
    write("xml", "list-blobs", '\x03\ufeff' + x + '<EnumerationResults ServiceEndpoint="https://a.blob.core.windows.net/"'
          ' ContainerName="c"><Prefix>p/</Prefix><Blobs><Blob><Name>p/' + UUID + '</Name><Properties>'
          '<Last-Modified>Tue, 01 Dec 2026 05:00:00 GMT</Last-Modified><Etag>0x8DC1234567890AB</Etag>'
          '<Content-Length>5</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob></Blobs>'
          '<NextMarker>2!80!MDAwMDE2</NextMarker></EnumerationResults>')
    write("xml", "delete-result", '\x04' + x + '<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key>'
          '<Code>AccessDenied</Code><Message>Access Denied</Message></Error><Error><Key>c</Key>'
          '<Code>InternalError</Code></Error></DeleteResult>')
    write("xml", "entra-token", '\x05{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,'
          '"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3N0b3JhZ2UuYXp1cmUuY29tIiwi'
          'aXNzIjoiaHR0cHM6Ly9zdHMud2luZG93cy5uZXQvdCIsInN1YiI6InMiLCJleHAiOjE3MDAwMDM2MDB9.c2ln"}')
    write("xml", "entra-error", '\x05{"error":"invalid_client","error_description":"AADSTS700213: No matching '
          'federated identity record found\\r\\nTrace ID: x","error_codes":[700213],"timestamp":"2026-12-01"}')
    write("xml", "container", '\x02{"AccessKeyId":"ASIAX","SecretAccessKey":"s/k","Token":"t\\u0041",'
          '"Expiration":"2026-12-01T05:00:00Z"}')
    write("xml", "container-error", '\x02{"code":"AccessDenied","message":"no association"}')
    write("xml", "imds", '\x02{"Code":"Success","LastUpdated":"2026-12-01T04:00:00Z","Type":"AWS-HMAC",'
          '"AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-01T10:00:00.5+02:00"}')


def http_header_seeds():
    # header blocks as S3, MinIO and Azurite answer (tests/stack's servers)
    crlf = "\r\n"
    for name, lines in [
            ("s3-get", ["HTTP/1.1 200 OK", "Accept-Ranges: bytes", "Content-Length: 5",
                        'ETag: "5d41402abc4b2a76b9719d911017c592"', "Last-Modified: Tue, 01 Dec 2026 05:00:00 GMT",
                        "Server: MinIO", ""]),
            ("s3-range", ["HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-1048575/52428800",
                          'ETag: "9b2cf535f27731c974343645a3985328-10"', "Content-Length: 1048576", ""]),
            ("s3-416", ["HTTP/1.1 416 Requested Range Not Satisfiable", "Content-Range: bytes */0", ""]),
            ("continue", ["HTTP/1.1 100 Continue", "", "HTTP/1.1 200 OK", 'etag: "e"', ""]),
            ("azure-404", ["HTTP/1.1 404 The specified blob does not exist.", "Content-Length: 215",
                           "x-ms-error-code: BlobNotFound", "x-ms-version: 2021-08-06", ""]),
            ("azure-put", ["HTTP/1.1 201 Created", 'ETag: "0x8DC1234567890AB"', "Content-MD5: XrY7u+Ae7tCTyyK7j1rNww==",
                           "x-ms-request-server-encrypted: true", ""]),
            ("http2", ["HTTP/2 206", "content-range: bytes 10-19/20", "etag: W/\"w\"", ""])]:
        write("http_header", name, crlf.join(lines) + crlf)


def sigv4_seeds():
    base = os.path.join(ROOT, "tests/unit/sigv4-vectors")
    for v in sorted(os.listdir(base)):
        path = os.path.join(base, v, "request.txt")
        if not os.path.exists(path):
            continue
        lines = open(path, "rb").read().decode("utf-8", "replace").split("\n")
        method, target = lines[0].split(" ")[0], lines[0].split(" ")[1] if " " in lines[0] else "/"
        p, _, q = target.partition("?")
        fields = [method, p, q]
        for h in lines[1:]:
            if ":" in h:
                k, _, val = h.partition(":")
                fields += [k, val]
        write("sigv4", v, bytes([len(v) % 16]) + "\n".join(fields).encode())


def lua_seeds():
    for i, s in enumerate(["10MiB\n1GB\n2024-01-01T00:00:00Z\nSystem.FileDocument", "4096\n\n\n",
                           "1.5G", "\n512k\n2026-12-01\n", "3,000", "2026-02-29T23:59:60+01:00",
                           "10MB\n10MiB"]):
        write("selection", "%d" % i, s)
    for i, s in enumerate(["jdbc:postgresql://db.example.com:5432/app?sslmode=verify-full&ssl",
                           "jdbc:postgresql://[::1]:5433/app%20x?sslMode=require",
                           "jdbc:postgresql://x.abc.eu-west-1.rds.amazonaws.com/db",
                           '{"database-type":"PostgreSQL","database-jdbc-url":"jdbc:postgresql://h:5432/d",'
                           '"database-username":"u","database-password":"p","storage-service-name":'
                           '"com.mendix.storage.s3","storage-bucket-name":"b","storage-endpoint":'
                           '"https://s3.example.com","storage-access-key-id":"a","storage-secret-access-key":"s"}',
                           '{"config":"{\\"DatabaseType\\":\\"PostgreSQL\\",\\"DatabaseJdbcUrl\\":'
                           '\\"jdbc:postgresql://h/d\\",\\"com.mendix.storage.s3.BucketName\\":\\"b\\"}"}']):
        write("environment", "%d" % i, s)
    for i, s in enumerate(["backup\n-n\nns\n--files-larger-than\n10MiB\n--files-of\nSystem.FileDocument\nenv",
                           "verify\n--json\nbackup.tar.gz", "restore\n-n=ns\n--dry-run\n--\n-x",
                           "prune\n--keep-daily\n7\n--keep-within\n1y2m\ns3://b/p",
                           "backup\n-vv\n--files-changed-since\n2026-01-01T00:00:00Z\n--files-smaller-than\n1G"]):
        write("args", "%d" % i, s)
    for i, (head, lines) in enumerate([(b"\x00\x01\x93", ["NoSuchKey", "The specified key does not exist.", "s3://b/k"]),
                                       (b"\x00\x01\x9c", ["PreconditionFailed", "", "s3://b/k", "b", "", "\"e\""]),
                                       (b"\x08\x01\x9c", ["", "", "s3://b/k", "b", "", "\"e\""]),
                                       (b"\x03\x01\x93", ["AccessDenied", "Access Denied", "s3://b/p", "b", "p/", "",
                                                           "", "arn:aws:iam::1:role/r"]),
                                       (b"\x04\x00\xc8", ["AccessDenied", "x", "s3://b/k"]),
                                       (b"\x01\x00\x00", ["", "", "s3://b/k", "", "", "", "certificate verify failed"]),
                                       (b"\x11\x00\x00", ["", "", "s3://b/k"]),
                                       (b"\x02\x00\x00", ["", "", "s3://b/k", "", "", "", "Connection refused"])]):
        write("s3_api", "%d" % i, head + "\n".join(lines).encode())
    status = '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%s,"reason":"%s",' \
        '"details":{"name":"app","kind":"secrets"},"code":%d}'
    for i, (code, pick, body) in enumerate([
            (404, 0, status % ('"secrets \\"app\\" not found"', "NotFound", 404)),
            (403, 1, status % ('"forbidden: User \\"u\\" cannot get"', "Forbidden", 403)),
            (409, 2, status % ('"exists"', "AlreadyExists", 409)),
            (401, 3, '{"kind":"Status","message":"Unauthorized","code":401}'),
            (422, 2, status % ('"invalid"', "Invalid", 422)),
            (500, 0, "<html>oops</html>"),
            (200, 0, '{"kind":"Secret","data":{"password":"cw==","host":"aA=="},"type":"Opaque"}'),
            (200, 3, '{"kind":"List","items":[{"spec":{"replicas":3,"port":5432.0}}]}')]):
        s = (code - 100) % 500
        write("k8s_api", "%d" % i, bytes([s // 256, s % 256, pick]) + body.encode())

    for i, (head, lines) in enumerate([(b"\x00\x01\x94", ["BlobNotFound", "The specified blob does not exist.",
                                                           "azblob://c/b", "c", "b"]),
                                       (b"\x03\x01\x93", ["AuthorizationPermissionMismatch", "", "azblob://c/", "c",
                                                           "", "", "", "acct"]),
                                       (b"\x08\x01\x93", ["AuthenticationFailed", "Server failed to authenticate"
                                                           "\nthe request", "azblob://c/b", "c", "b", "", "", "acct"]),
                                       (b"\x24\x01\x9c", ["ConditionNotMet", "", "azblob://c/b", "c", "b", "\"0x8D\""]),
                                       (b"\x02\x00\x00", ["", "", "azblob://c/b", "c", "b", "", "Connection refused"])]):
        write("azure_api", "%d" % i, head + "\n".join(lines).encode())


def answers(*pairs):
    """lib/answers.lua's form: "STATUS\\nBODY" each, separated by 0x1E."""
    return "\x1e".join("%d\n%s" % (status, body) for status, body in pairs)


def mendix_cloud_seeds():
    project = "5b6a8c1e-8e8d-4c52-9f3a-4a3e8f0b2a11"
    env = "7c2e0f4a-3b1d-4e5f-8a9b-0c1d2e3f4a5b"
    snap = '{"snapshot_id":"%s","model_version":"1.0.0.40","comment":"nightly","expires_at":' \
        '"2027-01-01T00:00:00Z","created_at":"2026-12-01T03:00:00Z","finished_at":"2026-12-01T03:01:00Z",' \
        '"updated_at":"2026-12-01T03:01:00Z","state":"%s","status_message":null}'
    job = '{"archive_id":"a1","snapshot_id":"%s","data_type":"files_and_database","state":"%s",' \
        '"status_message":%s,"url":%s,"created_at":"2026-12-01T04:00:00Z","finished_at":null}'
    apps = '[{"AppId":"myapp","ProjectId":"%s","Name":"Demo Shop","Url":"https://myapp.mendixcloud.com"}]' % project
    envs = '[{"EnvironmentId":"%s","Mode":"Production","Status":"Running","Url":"https://myapp.mendixcloud.com"}]' % env
    page = '{"limit":100,"offset":0,"total":2,"snapshots":[%s,%s]}' % (snap % (UUID, "completed"),
                                                                       snap % (env, "failed"))
    done = job % (UUID, "completed", "null", '"https://s3.example.com/a.tar.gz?X-Amz-Signature=abc"')
    for name, pick, data in [
            ("newest", 0, answers((200, apps), (200, envs), (200, page), (202, job % (UUID, "queued", "null", "null")),
                                  (200, done))),
            ("snapshot", 1, answers((200, snap % (UUID, "completed")), (202, job % (UUID, "running", "null", "null")),
                                    (200, done))),
            ("new-snapshot", 4, answers((200, apps), (200, envs), (201, snap % (UUID, "queued")),
                                        (200, snap % (UUID, "completed")), (202, done), (200, done))),
            ("failed", 3, answers((200, '{"AppId":"myapp","ProjectId":"%s"}' % project), (200, page),
                                  (202, job % (UUID, "queued", "null", "null")),
                                  (200, job % (UUID, "failed", '"the disk is full"', "null")))),
            ("no-access", 0, answers((403, '{"errorCode":"NO_ACCESS","errorMessage":"no access"}'))),
            ("unauthorized", 1, answers((401, ""))),
            ("busy", 1, answers((409, '{"errorCode":"ENVIRONMENT_BUSY","errorMessage":"busy"}'))),
            ("html", 2, answers((502, "<html>Bad Gateway</html>"))),
            ("location", 16, "mendix-cloud://myapp/Production/" + UUID)]:
        write("mendix_cloud", name, bytes([pick]) + data.encode())


def environment_resolve_seeds():
    import base64
    import json

    def secret(name, data):
        return json.dumps({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "namespace": "ns"},
                           "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})

    app = json.dumps({"apiVersion": "privatecloud.mendix.com/v1alpha1", "kind": "MendixApp",
                      "metadata": {"name": "app", "namespace": "ns"}, "spec": {"replicas": 1, "mendixRuntimeVersion":
                      "10.6.0"}})
    not_found = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message":
                            'secretproviderclasses "app" not found', "reason": "NotFound", "code": 404})

    def si(name, secret_name):
        return json.dumps({"apiVersion": "privatecloud.mendix.com/v1alpha1", "kind": "StorageInstance",
                           "metadata": {"name": name, "namespace": "ns"}, "spec": {"type": "database"},
                           "status": {"state": "Ready", "secretName": secret_name}})
    db = secret("app-database", {"database-type": "PostgreSQL", "database-jdbc-url":
                                 "jdbc:postgresql://db.example.com:5432/app?sslmode=verify-full",
                                 "database-username": "u", "database-password": "p", "database-host":
                                 "db.example.com:5432", "database-name": "app"})
    files = secret("app-file", {"storage-service-name": "com.mendix.storage.s3", "storage-endpoint":
                                "https://s3.example.com", "storage-bucket-name": "b", "storage-access-key-id": "a",
                                "storage-secret-access-key": "s", "storage-resource-name-prefix": "app/"})
    config = secret("app-database", {"config": json.dumps({"DatabaseType": "PostgreSQL", "DatabaseJdbcUrl":
                                     "jdbc:postgresql://h/d", "DatabaseUserName": "u", "DatabasePassword": "p"})})
    spc = json.dumps({"kind": "SecretProviderClass", "metadata": {"name": "app", "namespace": "ns", "annotations":
                      {"privatecloud.mendix.com/environment-class": "true"}}, "spec": {"provider": "vault",
                      "parameters": {"vaultAddress": "https://vault.example.com", "roleName": "app", "objects":
                                     "- objectName: database-host\n  secretPath: secret/data/app\n  secretKey: host\n"}}})
    for name, data in [
            ("keys", answers((200, app), (404, not_found), (200, si("app-database", "app-database")), (200, db),
                             (200, si("app-file", "app-file")), (200, files))),
            ("config", answers((200, app), (404, not_found), (200, si("app-database", "app-database")),
                               (200, config), (200, si("app-file", "app-file")), (200, files))),
            ("store", answers((200, app), (200, spc), (201, '{"status":{"token":"jwt"}}'),
                              (200, '{"auth":{"client_token":"t"}}'), (200, '{"data":{"data":{"host":"h"},"metadata":{"version":1}}}'))),
            ("no-app", answers((404, not_found))),
            ("forbidden", answers((200, app), (403, not_found.replace("404", "403"))))]:
        write("environment_resolve", name, data)


def secret_stores_seeds():
    aws_db = '{"ARN":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-db","Name":"app-db",' \
        '"SecretString":"{\\"database-host\\":\\"db.example.com\\",\\"password\\":\\"pw\\"}",' \
        '"VersionId":"v1","CreatedDate":1.7e9}'
    aws_storage = '{"Name":"app-storage","SecretString":"s3cr3t","VersionId":"v1"}'
    login = '{"auth":{"client_token":"hvs.x","accessor":"a","policies":["app"],"lease_duration":3600,' \
        '"renewable":true}}'
    kv2 = '{"data":{"data":{"host":"db.example.com","password":"pw"},"metadata":{"version":1}}}'
    kv1 = '{"data":{"key":"s3cr3t"},"lease_duration":2764800}'
    token = '{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.eyJ1.c2ln"}'
    secret = '{"value":"%s","id":"https://kv-app.vault.azure.net/secrets/x/1","attributes":{"enabled":true}}'
    for name, pick, data in [
            ("aws", 0, answers((200, aws_db), (200, aws_storage))),
            ("aws-denied", 0, answers((400, '{"__type":"AccessDeniedException","Message":"User is not authorized"}'))),
            ("aws-binary", 0, answers((200, '{"Name":"app-db","SecretBinary":"AAEC"}'))),
            ("vault", 1, answers((200, login), (200, kv2), (200, kv1))),
            ("vault-denied", 1, answers((403, '{"errors":["permission denied"]}'))),
            ("vault-login", 1, answers((400, '{"errors":["invalid role name \\"app\\""]}'))),
            ("azure", 2, answers((200, token), (200, secret % "db.example.com"), (200, secret % "pw"))),
            ("azure-entra", 2, answers((400, '{"error":"invalid_client","error_description":"AADSTS700016: no app\\r\\nTrace"}'))),
            ("azure-denied", 2, answers((200, token), (403, '{"error":{"code":"Forbidden","message":"Caller is not '
                                                             'authorized","innererror":{"code":"ForbiddenByRbac"}}}')))]:
        write("secret_stores", name, bytes([pick]) + data.encode())


def k8s_config_seeds():
    # kubeconfigs (even first byte) and exec plugins' answers (odd)
    base = os.path.join(ROOT, "tests/k8s/fixtures")
    for f in sorted(os.listdir(base)):
        if f.endswith(".yaml"):
            data = open(os.path.join(base, f), "rb").read()
            if b"exec" not in data:
                write("k8s_config", f, b"\x00" + data)
    write("k8s_config", "token.yaml", b"\x00apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n"
          b"- name: c\n  context: {cluster: k, user: u, namespace: ns}\nclusters:\n- name: k\n  cluster:\n"
          b"    server: https://127.0.0.1:6443/\n    certificate-authority-data: aGVsbG8=\n"
          b"    tls-server-name: kubernetes\nusers:\n- name: u\n  user:\n    token: t0k3n\n"
          b"    client-certificate-data: aGVsbG8=\n    client-key-data: aGVsbG8=\n")
    write("k8s_config", "exec-token", b'\x01{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
          b'"status":{"token":"t0k3n","expirationTimestamp":"2026-12-01T05:00:00Z"}}')
    write("k8s_config", "exec-cert", b'\x01kind: ExecCredential\nstatus:\n  clientCertificateData: "-----BEGIN'
          b' CERTIFICATE-----"\n  clientKeyData: k\n')


def sql_split_seeds():
    # the first byte chooses the reads' sizes, the second the batch size (fuzz_sql_split.c)
    dump = open(os.path.join(ROOT, "tests/unit/sql_split_dump.sql"), "rb").read()
    write("sql_split", "pg-restore-output", b"\x00\x01" + dump)
    write("sql_split", "pg-restore-output-whole", b"\x05\x02" + dump)
    write("sql_split", "quotes", b"\x03\x00CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  COPY x FROM stdin;\n"
          b"  RETURN 1;\nEND $$ LANGUAGE plpgsql;\nDO $body$ BEGIN PERFORM $q$;$q$; END $body$;\n"
          b"SELECT E'it\\'s;', 'it''s;', \"a;b\", a$b, $1; /* c; /* d; */ */ -- e;\n")
    write("sql_split", "copy-marks", b"\x02\x01COPY t FROM stdin;\n\\\\.\na\\.\n\\.x\n\\.\n"
          b"COPY u (a) FROM stdin;  \n\\.\nSELECT 1")
    write("sql_split", "connect", b"\x01\x03\\connect db\n")


archive_seeds()
k8s_config_seeds()
pgz_seeds()
xml_seeds()
http_header_seeds()
sigv4_seeds()
lua_seeds()
mendix_cloud_seeds()
secret_stores_seeds()
environment_resolve_seeds()
sql_split_seeds()
