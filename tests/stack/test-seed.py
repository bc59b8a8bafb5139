#!/usr/bin/env python3
"""The seed tool: after `seed`, everything seed.json describes is really there, found the
way the migration tool will find it (restricted Kubernetes user -> StorageInstance ->
Secret -> database and bucket); re-seeding gives the same result; the size knobs work.
Leaves the stack seeded with the defaults."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit, parse_qs

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from stacklib import (K8s, S3, S3Error, AzureBlob, Checks, conninfo,  # noqa: E402
                      core_path, mendix_path, psql, stack_env_or_fail)

t = Checks()
env = stack_env_or_fail(t)
ENV_FILE = os.environ["MXPC_STACK_ENV"]
SEED_JSON = os.path.join(os.path.dirname(os.path.abspath(ENV_FILE)), "seed.json")


def seed(*args):
    proc = subprocess.run([os.path.join(HERE, "seed"), "--env-file", ENV_FILE, *args],
                          capture_output=True, text=True)
    report = None
    if proc.returncode == 0:
        with open(SEED_JSON) as f:
            report = json.load(f)
    return proc, report


proc, report = seed()
t.check("seed (defaults) succeeds", proc.returncode == 0, proc.stderr.strip()[-300:])
if report is None:
    t.finish()
t.check("seed prints a summary", "seeded namespace mendix" in proc.stdout, proc.stdout)
t.check("seed.json has demo-app, demo-copy, demo-https",
        set(report["environments"]) == {"demo-app", "demo-copy", "demo-https"})

restricted = K8s(env["MXPC_K8S_URL"], env["MXPC_K8S_CA"], token=env["MXPC_K8S_RESTRICTED_TOKEN"])
admin = K8s(env["MXPC_K8S_URL"], env["MXPC_K8S_CA"], token=env["MXPC_K8S_ADMIN_TOKEN"])
NS = report["namespace"]


def secret_settings(instance):
    """StorageInstance -> Secret (status.secretName, else the instance's own name) ->
    decoded settings, flattened for both layouts."""
    si = restricted.call("GET", mendix_path(NS, "storageinstances", instance))
    name = si.get("status", {}).get("secretName") or instance
    data = restricted.call("GET", core_path(NS, "secrets", name))["data"]
    values = {k: base64.b64decode(v).decode() for k, v in data.items()}
    layout = "config" if "config" in values else "keys"
    if layout == "config":
        values = json.loads(values["config"])
    return name, layout, values


def database_from(values):
    if "database-jdbc-url" in values:
        url, user, password = (values["database-jdbc-url"], values["database-username"],
                               values["database-password"])
        name, host = values["database-name"], values["database-host"]
    else:
        url, user, password = (values["DatabaseJdbcUrl"], values["DatabaseUserName"],
                               values["DatabasePassword"])
        name, host = values["DatabaseName"], values["DatabaseHost"]
    parts = urlsplit(url[len("jdbc:"):])
    sslmode = parse_qs(parts.query).get("sslmode", ["prefer"])[0]
    h, _, p = host.rpartition(":")
    return {"host": h, "port": int(p), "name": name, "user": user, "password": password,
            "sslmode": sslmode, "jdbc_host": parts.netloc, "jdbc_db": parts.path.lstrip("/")}


def storage_from(values):
    if "storage-endpoint" in values:
        endpoint, bucket_name = values["storage-endpoint"], values["storage-bucket-name"]
        ak, sk = values["storage-access-key-id"], values["storage-secret-access-key"]
    else:
        endpoint = values["com.mendix.storage.s3.EndPoint"]
        bucket_name = values["com.mendix.storage.s3.BucketName"]
        ak = values["com.mendix.storage.s3.AccessKeyId"]
        sk = values["com.mendix.storage.s3.SecretAccessKey"]
    parts = urlsplit(endpoint)
    # MENDIX.md section 3: an endpoint naming the bucket makes bucket-name a key prefix.
    if parts.path.strip("/"):
        bucket, prefix = parts.path.strip("/"), bucket_name + "/"
    else:
        bucket, prefix = bucket_name, ""
    return {"endpoint": f"{parts.scheme}://{parts.netloc}", "bucket": bucket,
            "prefix": prefix, "ak": ak, "sk": sk, "https": parts.scheme == "https"}


def query(db, sql):
    info = conninfo(host=db["host"], port=db["port"], dbname=db["name"], user=db["user"],
                    sslmode=db["sslmode"],
                    sslrootcert=env["MXPC_PG_CA"] if db["sslmode"].startswith("verify")
                    else None)
    return psql(env, info, sql, db["password"]).stdout


for name, e in report["environments"].items():
    app = restricted.call("GET", mendix_path(NS, "mendixapps", name))
    t.check(f"{name}: MendixApp readable by the restricted user, replicas {e['replicas']}",
            app["spec"]["replicas"] == e["replicas"])
    pods = admin.call("GET", core_path(NS, "pods") +
                      f"?labelSelector=privatecloud.mendix.com%2Fapp%3D{name}")["items"]
    t.check(f"{name}: {e['replicas']} pod(s) labelled privatecloud.mendix.com/app={name}",
            len(pods) == e["replicas"] == e["pods"], len(pods))

    db_secret, db_layout, db_values = secret_settings(f"{name}-database")
    file_secret, file_layout, file_values = secret_settings(f"{name}-file")
    t.check(f"{name}: StorageInstances lead to the secrets seed.json names",
            (db_secret, file_secret) == (e["storage_instances"]["database"]["secret"],
                                         e["storage_instances"]["file"]["secret"]))
    t.check(f"{name}: secrets in the {e['secret_layout']} layout",
            db_layout == file_layout == e["secret_layout"])

    db = database_from(db_values)
    want = e["database"]
    t.check(f"{name}: database settings match (host, port, name, user, sslmode)",
            (db["host"], db["port"], db["name"], db["user"], db["sslmode"], db["password"]) ==
            (want["host"], want["port"], want["name"], want["user"], want["sslmode"],
             want["password"]) and db["jdbc_host"] == f"{db['host']}:{db['port']}" and
            db["jdbc_db"] == db["name"], db)
    try:
        rows = query(db, "SELECT count(*) FROM public.\"myfirstmodule$customer\"")
        connected = True
    except RuntimeError as err:
        connected, rows = False, str(err)
    t.check(f"{name}: the environment's own role connects with sslmode={db['sslmode']}",
            connected, rows)
    if not connected:
        continue
    tables = query(db, "SELECT table_name FROM information_schema.tables WHERE "
                       "table_schema = 'public' ORDER BY 1").split()
    t.check(f"{name}: the tables are those in seed.json", tables == sorted(want["tables"]),
            tables)
    mismatched = []
    for table, info in want["tables"].items():
        got = query(db, f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY "
                        f"x::text), '')) FROM public.\"{table}\" x").strip()
        if got != f"{info['rows']}|{info['md5']}":
            mismatched.append((table, got))
    t.check(f"{name}: every table's row count and md5 match seed.json", not mismatched,
            mismatched)
    t.check(f"{name}: model version {want['model_version']} in mendixsystem$version",
            query(db, "SELECT modelversion FROM \"mendixsystem$version\"").strip() ==
            want["model_version"])
    in_use = query(db, "SELECT __uuid__, size FROM \"system$filedocument\" WHERE hascontents "
                       "AND __uuid__ IS NOT NULL ORDER BY 1").split()
    t.check(f"{name}: files in use in the database = seed.json's files ({len(e['files'])})",
            in_use == sorted(f"{f['uuid']}|{f['size']}" for f in e["files"]))
    nulls = query(db, "SELECT count(*) FILTER (WHERE name IS NULL AND hascontents), "
                      "count(*) FILTER (WHERE __uuid__ IS NULL), count(*) FILTER (WHERE NOT "
                      "hascontents) FROM \"system$filedocument\"").strip()
    t.check(f"{name}: NULL name / NULL uuid / no-contents rows as seed.json says",
            nulls == f"{1 if name == 'demo-app' else 0}|{len(e['file_rows_without_uuid'])}|"
                     f"{len(e['file_rows_without_contents'])}", nulls)

    st = storage_from(file_values)
    t.check(f"{name}: bucket {st['bucket']} and key prefix {st['prefix']!r} from the secret",
            (st["bucket"], st["prefix"], st["https"]) ==
            (e["storage"]["bucket"], e["storage"]["key_prefix"], e["storage"]["https"]))
    s3 = S3(st["endpoint"], st["ak"], st["sk"], env.get("MXPC_S3_REGION", "us-east-1"),
            ca_file=env["MXPC_S3_CA"] if st["https"] else None)
    bad = []
    for f in e["files"]:
        try:
            data = s3.get(st["bucket"], st["prefix"] + f["uuid"])
        except S3Error as err:
            bad.append((f["uuid"], str(err)))
            continue
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            bad.append((f["uuid"], len(data)))
    t.check(f"{name}: every file's object has the size and sha256 in seed.json", not bad, bad)
    first = e["files"][0]
    t.check(f"{name}: object bytes follow the documented rule (SHAKE-256 of seed/uuid)",
            s3.get(st["bucket"], first["key"]) ==
            hashlib.shake_256(f"{report['seed']}/{first['uuid']}".encode()).digest(first["size"]))
    listed = s3.list(st["bucket"], st["prefix"])
    expected = {f["key"] for f in e["files"]} | {u["key"] for u in e["unreferenced_objects"]}
    t.check(f"{name}: under the prefix are exactly the files and the unreferenced objects",
            set(listed) == expected, set(listed) ^ expected)

source, target = report["environments"]["demo-app"], report["environments"]["demo-copy"]
t.check("demo-copy's data differs from demo-app's (a restore is observable)",
        source["database"]["tables"]["myfirstmodule$customer"]["md5"] !=
        target["database"]["tables"]["myfirstmodule$customer"]["md5"] and
        source["database"]["model_version"] != target["database"]["model_version"])
t.check("demo-app has unreferenced objects, one for a row without contents",
        any(u["reason"] == "hascontents false" for u in source["unreferenced_objects"]))
shared = S3(env["MXPC_S3_ENDPOINT"], env["MXPC_S3_ACCESS_KEY"], env["MXPC_S3_SECRET_KEY"])
foreign = report["foreign_objects"]
t.check("another environment's objects share demo-app's bucket under their own prefix",
        all(hashlib.sha256(shared.get(o["bucket"], o["key"])).hexdigest() == o["sha256"]
            for o in foreign) and all(o["key"].startswith("other-app/") for o in foreign))
twin = [o for o in foreign if o["key"].split("/", 1)[1] in {f["uuid"] for f in source["files"]}]
t.check("one of them has a demo-app file's uuid but other bytes",
        len(twin) == 1 and twin[0]["sha256"] not in {f["sha256"] for f in source["files"]})

# ---- Azure: demo-azure (account key), demo-azure-wi and demo-azure-reader (Workload
# Identity; the reader's endpoint is the RBAC front)
azure_envs = report.get("azure_environments", {})
t.check("seed.json describes demo-azure, demo-azure-wi and demo-azure-reader under "
        "azure_environments",
        set(azure_envs) == {"demo-azure", "demo-azure-wi", "demo-azure-reader"}, set(azure_envs))
IDENTITY = {"demo-azure-wi": "WI", "demo-azure-reader": "READER"}
store = AzureBlob(env["MXPC_AZURE_BLOB_ENDPOINT"], env["MXPC_AZURE_ACCOUNT_NAME"],
                  env["MXPC_AZURE_ACCOUNT_KEY"], env["MXPC_AZURE_CA"])
for name, e in azure_envs.items():
    _, _, db_values = secret_settings(f"{name}-database")
    _, _, st = secret_settings(f"{name}-file")
    wi = name in IDENTITY
    endpoint = env["MXPC_AZURE_RBAC_ENDPOINT" if name == "demo-azure-reader" else
                   "MXPC_AZURE_BLOB_ENDPOINT"]
    t.check(f"{name}: file Secret as Mendix documents Azure Blob Storage",
            st["storage-service-name"] == "com.mendix.storage.azure" and
            st["storage-azure-container"] == e["storage"]["bucket"] and
            st["storage-azure-blob-endpoint"] == endpoint and
            st["storage-azure-use-https"] == "true", st)
    if wi:
        t.check(f"{name}: no account key, use-default-azure-credential; no database password",
                "storage-azure-account-key" not in st and
                st.get("storage-azure-use-default-azure-credential") == "true" and
                "database-password" not in db_values and
                db_values["database-host"].endswith(f":{env['MXPC_ENTRA_PG_PORT']}"),
                (sorted(st), sorted(db_values)))
        sa = admin.call("GET", core_path(NS, "serviceaccounts", name))
        t.check(f"{name}: its ServiceAccount carries the managed identity's client id",
                sa["metadata"]["annotations"].get("azure.workload.identity/client-id") ==
                env[f"MXPC_AZURE_{IDENTITY[name]}_CLIENT_ID"], sa["metadata"].get("annotations"))
    else:
        t.check(f"{name}: account name and key in the Secret",
                (st["storage-azure-account-name"], st["storage-azure-account-key"]) ==
                (env["MXPC_AZURE_ACCOUNT_NAME"], env["MXPC_AZURE_ACCOUNT_KEY"]))
        db = database_from(db_values)
        t.check(f"{name}: the role connects with sslmode={db['sslmode']}",
                query(db, 'SELECT count(*) FROM "myfirstmodule$customer"').strip() ==
                str(e["database"]["tables"]["myfirstmodule$customer"]["rows"]))
    listed = store.list(e["storage"]["bucket"])
    expected = {f["key"] for f in e["files"]} | {u["key"] for u in e["unreferenced_objects"]}
    t.check(f"{name}: the container holds exactly the files (blob = uuid) and the orphans",
            set(listed) == expected and all(f["key"] == f["uuid"] for f in e["files"]),
            set(listed) ^ expected)
    bad = [f["uuid"] for f in e["files"] if hashlib.sha256(
        store.get(e["storage"]["bucket"], f["key"])).hexdigest() != f["sha256"]]
    t.check(f"{name}: every blob has the sha256 in seed.json", not bad, bad)

# ---- determinism, knobs, and back to the defaults
proc, again = seed()
t.check("seeding again gives an identical seed.json", proc.returncode == 0 and again == report,
        proc.stderr[-300:])
proc, small = seed("--seed", "2", "--files", "6", "--other-files", "3", "--rows", "3", "--file-size-dist", "10:1")
ok = proc.returncode == 0 and small is not None
t.check("seed --seed 2 --files 6 --other-files 3 --rows 3 --file-size-dist 10:1", ok, proc.stderr[-300:])
if ok:
    files = small["environments"]["demo-app"]["files"]
    t.check("--files: 6 files in use in demo-app", len(files) == 6)
    others = {name: len(e["files"]) for section in ("environments", "irsa_environments", "azure_environments",
                                                    "store_environments")
              for name, e in small[section].items() if name != "demo-app"}
    t.check("--other-files 3: 3 files in use in each other environment", len(others) == 9 and
            set(others.values()) == {3}, others)
    t.check("--file-size-dist 10:1: sizes between 5 and 10 (one empty file on purpose)",
            sorted(f["size"] for f in files)[1:] == sorted(f["size"] for f in files if f["size"])
            and all(5 <= f["size"] <= 10 for f in files if f["size"]))
    t.check("--rows 3: 3 customers", small["environments"]["demo-app"]["database"]["tables"]
            ["myfirstmodule$customer"]["rows"] == 3)
    t.check("--seed 2: other uuids", not {f["uuid"] for f in files} &
            {f["uuid"] for f in source["files"]})
    t.check("re-seeding removed the previous seed's objects",
            report["buckets"] != small["buckets"] and
            small["buckets"]["mendix-shared"]["objects"] ==
            6 + len(small["environments"]["demo-app"]["unreferenced_objects"]) + 4)
proc, back = seed()
t.check("seeding with the defaults again restores the same state", back == report,
        proc.stderr[-300:])
proc = subprocess.run([os.path.join(HERE, "seed"), "--env-file", ENV_FILE, "--files", "1"],
                      capture_output=True, text=True)
t.check("bad options are refused with a message", proc.returncode != 0 and
        "--files" in proc.stderr, proc.stderr)
proc = subprocess.run([os.path.join(HERE, "seed"), "--env-file", ENV_FILE, "--other-files", "1"],
                      capture_output=True, text=True)
t.check("--other-files 1 is refused with a message", proc.returncode != 0 and
        "--other-files" in proc.stderr, proc.stderr)
t.finish()
